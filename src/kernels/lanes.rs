//! Elementwise passes over paired slices that the compiler can vectorise: a per-element
//! function applied in blocks of [`LANES`] elements, its terms summed in f64 lane
//! accumulators (one independent sum per lane, so the adds do not form one serial chain; f64,
//! so a chunk's sum keeps full precision whatever its length).

use super::math::Real;

/// Elements per block: two SSE/NEON registers of f32, one AVX register.
const LANES: usize = 8;

/// `sum_i f(x_i, y_i)` (K sums at once) over paired slices of equal length.
#[inline(always)]
pub(crate) fn sum<F: Real, const K: usize>(
    x: &[F],
    y: &[F],
    f: impl Fn(F, F) -> [F; K],
) -> [f64; K] {
    debug_assert_eq!(x.len(), y.len());
    let mut acc = [[0.0_f64; LANES]; K];
    let (xb, yb) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
    let (xr, yr) = (xb.remainder(), yb.remainder());
    for (xs, ys) in xb.zip(yb) {
        let mut terms = [[F::ZERO; LANES]; K];
        for j in 0..LANES {
            let t = f(xs[j], ys[j]);
            for k in 0..K {
                terms[k][j] = t[k];
            }
        }
        for k in 0..K {
            for j in 0..LANES {
                acc[k][j] += terms[k][j].to_f64();
            }
        }
    }
    for (&xi, &yi) in xr.iter().zip(yr) {
        let t = f(xi, yi);
        for k in 0..K {
            acc[k][0] += t[k].to_f64();
        }
    }
    acc.map(|lanes| lanes.iter().sum())
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
    let mut acc = [[0.0_f64; LANES]; K];
    let (xb, yb) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
    let (xr, yr) = (xb.remainder(), yb.remainder());
    let mut ob = out.chunks_exact_mut(LANES);
    for ((xs, ys), os) in xb.zip(yb).zip(&mut ob) {
        let mut terms = [[F::ZERO; LANES]; K];
        for j in 0..LANES {
            let (t, o) = f(xs[j], ys[j]);
            os[j] = o;
            for k in 0..K {
                terms[k][j] = t[k];
            }
        }
        for k in 0..K {
            for j in 0..LANES {
                acc[k][j] += terms[k][j].to_f64();
            }
        }
    }
    for ((&xi, &yi), oi) in xr.iter().zip(yr).zip(ob.into_remainder()) {
        let (t, o) = f(xi, yi);
        *oi = o;
        for k in 0..K {
            acc[k][0] += t[k].to_f64();
        }
    }
    acc.map(|lanes| lanes.iter().sum())
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
