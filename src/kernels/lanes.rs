//! Elementwise passes over paired slices that the compiler vectorises: blocks of [`BLOCK`]
//! elements go through a plain map loop (the per-element function, its terms stored in small
//! buffers: a loop the compiler turns into SIMD code), then each buffer is summed in f64 over
//! [`LANES`] independent lane accumulators (no serial chain of adds; f64, so a chunk's sum
//! keeps full precision whatever its length).

use super::math::Real;

/// Elements per block: the term buffers stay in L1 cache.
const BLOCK: usize = 512;
/// Independent accumulators of a block sum.
const LANES: usize = 8;

/// `sum_i f(x_i, y_i)` (K sums at once) over paired slices of equal length.
#[inline(always)]
pub(crate) fn sum<F: Real, const K: usize>(
    x: &[F],
    y: &[F],
    f: impl Fn(F, F) -> [F; K],
) -> [f64; K] {
    debug_assert_eq!(x.len(), y.len());
    let mut total = [0.0_f64; K];
    let mut terms = [[F::ZERO; BLOCK]; K];
    for (xs, ys) in x.chunks(BLOCK).zip(y.chunks(BLOCK)) {
        let n = xs.len().min(ys.len());
        for i in 0..n {
            let t = f(xs[i], ys[i]);
            for k in 0..K {
                terms[k][i] = t[k];
            }
        }
        for k in 0..K {
            total[k] += block_sum(&terms[k][..n]);
        }
    }
    total
}

/// Like [`sum`], and also writes `out_i` (the gradient) from the same evaluation:
/// `f(x_i, y_i) = (terms, out_i)`.
#[inline(always)]
pub(crate) fn sum_and_write<F: Real, const K: usize>(
    x: &[F],
    y: &[F],
    out: &mut [F],
    f: impl Fn(F, F) -> ([F; K], F),
) -> [f64; K] {
    debug_assert!(x.len() == y.len() && x.len() == out.len());
    let mut total = [0.0_f64; K];
    let mut terms = [[F::ZERO; BLOCK]; K];
    for ((xs, ys), os) in x
        .chunks(BLOCK)
        .zip(y.chunks(BLOCK))
        .zip(out.chunks_mut(BLOCK))
    {
        let n = xs.len().min(ys.len()).min(os.len());
        for i in 0..n {
            let (t, o) = f(xs[i], ys[i]);
            os[i] = o;
            for k in 0..K {
                terms[k][i] = t[k];
            }
        }
        for k in 0..K {
            total[k] += block_sum(&terms[k][..n]);
        }
    }
    total
}

/// The f64 sum of at most [`BLOCK`] values over [`LANES`] accumulators.
#[inline(always)]
fn block_sum<F: Real>(values: &[F]) -> f64 {
    let (blocks, rest) = values.as_chunks::<LANES>();
    let mut lanes = [0.0_f64; LANES];
    for block in blocks {
        for j in 0..LANES {
            lanes[j] += block[j].to_f64();
        }
    }
    lanes.iter().sum::<f64>() + rest.iter().map(|v| v.to_f64()).sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_writes_every_element_including_the_remainder() {
        for n in [0, 1, 7, 8, 9, 100] {
            let x: Vec<f64> = (0..n).map(f64::from).collect();
            let y = vec![2.0; n as usize];
            let expected = f64::from(n * (n - 1).max(0)) / 2.0;
            assert_eq!(sum(&x, &y, |a, b| [a, a * b]), [expected, 2.0 * expected]);
            let mut out = vec![0.0; n as usize];
            let s = sum_and_write(&x, &y, &mut out, |a, b| ([a], a + b));
            assert_eq!(s, [expected]);
            assert!(out.iter().enumerate().all(|(i, &o)| o == i as f64 + 2.0));
        }
    }
}
