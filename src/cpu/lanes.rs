//! Elementwise passes over paired slices that the compiler vectorises: blocks of [`BLOCK`]
//! elements go through a plain map loop (the per-element function, its terms stored in small
//! buffers: a loop the compiler turns into SIMD code), then each buffer is summed in f64 over
//! [`LANES`] independent lane accumulators (no serial chain of adds; f64, so a chunk's sum
//! keeps full precision whatever its length).
//!
//! The crate is built for baseline x86-64 (SSE2), where these loops vectorise four f32 wide at
//! best. On x86-64 every pass is also compiled for AVX2+FMA and for AVX-512 and the widest one
//! the CPU supports is picked at run time ([`simd_level`], detected once). The passes do the
//! same operations in the same order at every level (no FMA contraction, same lane sums), so
//! results are bit-identical whichever level runs.

use super::math::Real;

/// Elements per block: the term buffers stay in L1 cache.
const BLOCK: usize = 512;
/// Independent accumulators of a block sum.
const LANES: usize = 8;

/// `sum_i f(x_i, y_i)` (K sums at once) over paired slices of equal length.
#[inline]
pub(crate) fn sum<F: Real, const K: usize>(
    x: &[F],
    y: &[F],
    f: impl Fn(F, F) -> [F; K],
) -> [f64; K] {
    sum_impl::<F, K, false, false>(x, y, &[], f).0
}

/// Like [`sum`] (`sum_i w_i f(x_i, y_i)` with pixel weights `w`, a slice as long as `x`, when
/// given), and also whether some `y_i` lies outside `[0, 1]` (NaN does not): the binary
/// kernels' targets check, a compare-and-or over each block of `y` while it is in L1. Not a
/// count summed as one more term: that costs a store, a conversion and an f64 add per element
/// (`benches/results/reliability_round_two.md`).
#[inline]
pub(crate) fn weighted_sum_checking_unit_y<F: Real, const K: usize>(
    x: &[F],
    y: &[F],
    w: Option<&[F]>,
    f: impl Fn(F, F) -> [F; K],
) -> ([f64; K], bool) {
    match w {
        Some(w) => sum_impl::<F, K, true, true>(x, y, w, f),
        None => sum_impl::<F, K, true, false>(x, y, &[], f),
    }
}

/// [`sum`], with `CHECK` the targets check of [`weighted_sum_checking_unit_y`], and with `W` each
/// element's terms multiplied by `w_i` (`w` is not read without `W`).
#[inline]
fn sum_impl<F: Real, const K: usize, const CHECK: bool, const W: bool>(
    x: &[F],
    y: &[F],
    w: &[F],
    f: impl Fn(F, F) -> [F; K],
) -> ([f64; K], bool) {
    // A real check, once per call: a shorter slice would otherwise end the sum early, without
    // a word, in release builds.
    assert_eq!(
        x.len(),
        y.len(),
        "lanes::sum: paired slices of different lengths"
    );
    assert!(
        !W || w.len() == x.len(),
        "lanes::sum: weights of another length"
    );
    #[cfg(target_arch = "x86_64")]
    match simd_level() {
        // SAFETY: the CPU supports the features these copies were compiled for.
        SimdLevel::Avx512 => return unsafe { x86::sum_avx512::<F, K, CHECK, W>(x, y, w, f) },
        SimdLevel::Avx2 => return unsafe { x86::sum_avx2::<F, K, CHECK, W>(x, y, w, f) },
        SimdLevel::Baseline => {}
    }
    sum_body::<F, K, CHECK, W>(x, y, w, f)
}

/// Like [`sum`], and also writes `g_i` (the gradient) from the same evaluation,
/// `f(x_i, y_i) = (terms, g_i)`: `out_i = g_i`, or `out_i += g_i` when `accumulate` (a term
/// of a sum of losses). `out` has the length of `x`. With pixel weights `w`, element `i`'s
/// terms and gradient are multiplied by `w_i`.
#[inline]
pub(crate) fn weighted_sum_and_write<F: Real, const K: usize>(
    x: &[F],
    y: &[F],
    w: Option<&[F]>,
    out: &mut [F],
    accumulate: bool,
    f: impl Fn(F, F) -> ([F; K], F),
) -> [f64; K] {
    match w {
        Some(w) => sum_and_write_impl::<F, K, false, true>(x, y, w, out, accumulate, f).0,
        None => sum_and_write_impl::<F, K, false, false>(x, y, &[], out, accumulate, f).0,
    }
}

/// Like [`weighted_sum_and_write`], with the targets check of
/// [`weighted_sum_checking_unit_y`].
#[inline]
pub(crate) fn weighted_sum_and_write_checking_unit_y<F: Real, const K: usize>(
    x: &[F],
    y: &[F],
    w: Option<&[F]>,
    out: &mut [F],
    accumulate: bool,
    f: impl Fn(F, F) -> ([F; K], F),
) -> ([f64; K], bool) {
    match w {
        Some(w) => sum_and_write_impl::<F, K, true, true>(x, y, w, out, accumulate, f),
        None => sum_and_write_impl::<F, K, true, false>(x, y, &[], out, accumulate, f),
    }
}

/// [`weighted_sum_and_write`], with `CHECK` the targets check of
/// [`weighted_sum_checking_unit_y`] and with `W` the weights.
#[inline]
fn sum_and_write_impl<F: Real, const K: usize, const CHECK: bool, const W: bool>(
    x: &[F],
    y: &[F],
    w: &[F],
    out: &mut [F],
    accumulate: bool,
    f: impl Fn(F, F) -> ([F; K], F),
) -> ([f64; K], bool) {
    // Real checks, once per call (as in `sum`): a gradient slice of another length would leave
    // part of the gradient unwritten.
    assert_eq!(
        x.len(),
        y.len(),
        "lanes::sum_and_write: x and y of different lengths"
    );
    assert_eq!(
        x.len(),
        out.len(),
        "lanes::sum_and_write: x and out of different lengths"
    );
    assert!(
        !W || w.len() == x.len(),
        "lanes::sum_and_write: weights of another length"
    );
    #[cfg(target_arch = "x86_64")]
    match simd_level() {
        // SAFETY: the CPU supports the features these copies were compiled for.
        SimdLevel::Avx512 => {
            return unsafe {
                x86::sum_and_write_avx512::<F, K, CHECK, W>(x, y, w, out, accumulate, f)
            };
        }
        SimdLevel::Avx2 => {
            return unsafe {
                x86::sum_and_write_avx2::<F, K, CHECK, W>(x, y, w, out, accumulate, f)
            };
        }
        SimdLevel::Baseline => {}
    }
    sum_and_write_body::<F, K, CHECK, W>(x, y, w, out, accumulate, f)
}

/// Whether a block of `y` holds a value outside `[0, 1]` (NaN compares false: not outside):
/// integer ors of two comparisons, which vectorise with no store and no conversion.
#[inline(always)]
fn outside_unit_block<F: Real>(ys: &[F]) -> bool {
    let mut outside = 0_u8;
    for &v in ys {
        outside |= u8::from(v < F::ZERO) | u8::from(v > F::ONE);
    }
    outside != 0
}

#[inline(always)]
fn sum_body<F: Real, const K: usize, const CHECK: bool, const W: bool>(
    x: &[F],
    y: &[F],
    w: &[F],
    f: impl Fn(F, F) -> [F; K],
) -> ([f64; K], bool) {
    let mut total = [0.0_f64; K];
    let mut outside = false;
    let mut terms = [[F::ZERO; BLOCK]; K];
    // Without weights `y` stands in for them (never read), so the zips below run full length.
    let w = if W { w } else { y };
    // Full blocks as arrays: a loop of constant length is one vector loop, with no scalar
    // copy of the whole term beside it, which LLVM otherwise often runs
    // (`benches/results/kernel_notes.md#full-blocks-as-arrays`).
    let (x_blocks, x_rest) = x.as_chunks::<BLOCK>();
    let (y_blocks, y_rest) = y.as_chunks::<BLOCK>();
    let (w_blocks, w_rest) = w.as_chunks::<BLOCK>();
    for ((xs, ys), ws) in x_blocks.iter().zip(y_blocks).zip(w_blocks) {
        sum_block::<F, K, W>(xs, ys, ws, &mut terms, &mut total, &f);
        outside |= CHECK && outside_unit_block(ys);
    }
    sum_block::<F, K, W>(x_rest, y_rest, w_rest, &mut terms, &mut total, &f);
    outside |= CHECK && outside_unit_block(y_rest);
    (total, outside)
}

/// One block of [`sum_body`]. A function rather than a closure: forced inline, it is compiled
/// with the target features of the pass it is inlined into (a closure would not be).
#[inline(always)]
fn sum_block<F: Real, const K: usize, const W: bool>(
    xs: &[F],
    ys: &[F],
    ws: &[F],
    terms: &mut [[F; BLOCK]; K],
    total: &mut [f64; K],
    f: &impl Fn(F, F) -> [F; K],
) {
    let n = xs.len().min(ys.len()).min(ws.len());
    for i in 0..n {
        let t = f(xs[i], ys[i]);
        for k in 0..K {
            terms[k][i] = if W { t[k] * ws[i] } else { t[k] };
        }
    }
    for k in 0..K {
        total[k] += block_sum(&terms[k][..n]);
    }
}

#[inline(always)]
fn sum_and_write_body<F: Real, const K: usize, const CHECK: bool, const W: bool>(
    x: &[F],
    y: &[F],
    w: &[F],
    out: &mut [F],
    accumulate: bool,
    f: impl Fn(F, F) -> ([F; K], F),
) -> ([f64; K], bool) {
    // The choice is made once, outside the loop, so that each loop stays a plain map.
    if accumulate {
        write_body::<F, K, true, CHECK, W>(x, y, w, out, f)
    } else {
        write_body::<F, K, false, CHECK, W>(x, y, w, out, f)
    }
}

#[inline(always)]
fn write_body<F: Real, const K: usize, const ADD: bool, const CHECK: bool, const W: bool>(
    x: &[F],
    y: &[F],
    w: &[F],
    out: &mut [F],
    f: impl Fn(F, F) -> ([F; K], F),
) -> ([f64; K], bool) {
    let mut total = [0.0_f64; K];
    let mut outside = false;
    let mut terms = [[F::ZERO; BLOCK]; K];
    // Full blocks as arrays, and `y` standing in for absent weights, as in `sum_body`.
    let w = if W { w } else { y };
    let (x_blocks, x_rest) = x.as_chunks::<BLOCK>();
    let (y_blocks, y_rest) = y.as_chunks::<BLOCK>();
    let (w_blocks, w_rest) = w.as_chunks::<BLOCK>();
    let (o_blocks, o_rest) = out.as_chunks_mut::<BLOCK>();
    for (((xs, ys), ws), os) in x_blocks.iter().zip(y_blocks).zip(w_blocks).zip(o_blocks) {
        write_block::<F, K, ADD, W>(xs, ys, ws, os, &mut terms, &mut total, &f);
        outside |= CHECK && outside_unit_block(ys);
    }
    write_block::<F, K, ADD, W>(x_rest, y_rest, w_rest, o_rest, &mut terms, &mut total, &f);
    outside |= CHECK && outside_unit_block(y_rest);
    (total, outside)
}

/// One block of [`write_body`] (a function for the reason given at [`sum_block`]).
#[inline(always)]
fn write_block<F: Real, const K: usize, const ADD: bool, const W: bool>(
    xs: &[F],
    ys: &[F],
    ws: &[F],
    os: &mut [F],
    terms: &mut [[F; BLOCK]; K],
    total: &mut [f64; K],
    f: &impl Fn(F, F) -> ([F; K], F),
) {
    let n = xs.len().min(ys.len()).min(ws.len()).min(os.len());
    for i in 0..n {
        let (t, o) = f(xs[i], ys[i]);
        let o = if W { o * ws[i] } else { o };
        os[i] = if ADD { os[i] + o } else { o };
        for k in 0..K {
            terms[k][i] = if W { t[k] * ws[i] } else { t[k] };
        }
    }
    for k in 0..K {
        total[k] += block_sum(&terms[k][..n]);
    }
}

/// Runs `f` compiled for the widest instruction set this CPU has (as [`sum`] does for its
/// loops): for kernels whose passes are not a map over paired slices. `f` must be an
/// `#[inline(always)]` closure calling only `#[inline(always)]` functions, so that all of it
/// is inlined into, and vectorised for, the copy that runs.
#[inline]
pub(crate) fn widest<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    match simd_level() {
        // SAFETY: the CPU supports the features these copies were compiled for.
        SimdLevel::Avx512 => return unsafe { x86::run_avx512(f) },
        SimdLevel::Avx2 => return unsafe { x86::run_avx2(f) },
        SimdLevel::Baseline => {}
    }
    f()
}

/// The f64 sum of `values` over [`LANES`] accumulators (a fixed order of additions, so the
/// same bits at every SIMD level).
#[inline(always)]
pub(crate) fn block_sum<F: Real>(values: &[F]) -> f64 {
    let (blocks, rest) = values.as_chunks::<LANES>();
    let mut lanes = [0.0_f64; LANES];
    for block in blocks {
        for j in 0..LANES {
            lanes[j] += block[j].to_f64();
        }
    }
    lanes.iter().sum::<f64>() + rest.iter().map(|v| v.to_f64()).sum::<f64>()
}

/// The widest instruction set the passes run with on this CPU.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SimdLevel {
    Baseline,
    Avx2,
    Avx512,
}

/// Detected once per process (the detection reads CPUID).
#[cfg(target_arch = "x86_64")]
fn simd_level() -> SimdLevel {
    static LEVEL: std::sync::OnceLock<SimdLevel> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        let avx512 = avx2
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512dq");
        if avx512 {
            SimdLevel::Avx512
        } else if avx2 {
            SimdLevel::Avx2
        } else {
            SimdLevel::Baseline
        }
    })
}

/// The passes compiled for wider instruction sets: the same bodies, inlined into functions
/// whose target features let the compiler use 256- and 512-bit vectors.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Real, sum_and_write_body, sum_body};

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn run_avx2<R>(f: impl FnOnce() -> R) -> R {
        f()
    }

    #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx2,fma")]
    pub(super) unsafe fn run_avx512<R>(f: impl FnOnce() -> R) -> R {
        f()
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn sum_avx2<F: Real, const K: usize, const CHECK: bool, const W: bool>(
        x: &[F],
        y: &[F],
        w: &[F],
        f: impl Fn(F, F) -> [F; K],
    ) -> ([f64; K], bool) {
        sum_body::<F, K, CHECK, W>(x, y, w, f)
    }

    #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx2,fma")]
    pub(super) unsafe fn sum_avx512<F: Real, const K: usize, const CHECK: bool, const W: bool>(
        x: &[F],
        y: &[F],
        w: &[F],
        f: impl Fn(F, F) -> [F; K],
    ) -> ([f64; K], bool) {
        sum_body::<F, K, CHECK, W>(x, y, w, f)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn sum_and_write_avx2<
        F: Real,
        const K: usize,
        const CHECK: bool,
        const W: bool,
    >(
        x: &[F],
        y: &[F],
        w: &[F],
        out: &mut [F],
        accumulate: bool,
        f: impl Fn(F, F) -> ([F; K], F),
    ) -> ([f64; K], bool) {
        sum_and_write_body::<F, K, CHECK, W>(x, y, w, out, accumulate, f)
    }

    #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx2,fma")]
    pub(super) unsafe fn sum_and_write_avx512<
        F: Real,
        const K: usize,
        const CHECK: bool,
        const W: bool,
    >(
        x: &[F],
        y: &[F],
        w: &[F],
        out: &mut [F],
        accumulate: bool,
        f: impl Fn(F, F) -> ([F; K], F),
    ) -> ([f64; K], bool) {
        sum_and_write_body::<F, K, CHECK, W>(x, y, w, out, accumulate, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real checks, in release builds too (CI runs these with the crate built as in release):
    // a shorter slice would otherwise end the pass early without a word.
    #[test]
    #[should_panic(expected = "paired slices of different lengths")]
    fn a_sum_over_slices_of_different_lengths_is_refused() {
        sum(&[1.0_f32; 8], &[1.0_f32; 7], |x, y| [x * y]);
    }

    #[test]
    #[should_panic(expected = "x and out of different lengths")]
    fn a_gradient_slice_of_another_length_is_refused() {
        let mut out = [0.0_f32; 7];
        weighted_sum_and_write(
            &[1.0_f32; 8],
            &[1.0_f32; 8],
            None,
            &mut out,
            false,
            |x, y| ([x], y),
        );
    }

    #[test]
    fn sums_and_writes_every_element_including_the_remainder() {
        for n in [0, 1, 7, 8, 9, 100, 1500] {
            let x: Vec<f64> = (0..n).map(f64::from).collect();
            let y = vec![2.0; n as usize];
            let expected = f64::from(n * (n - 1).max(0)) / 2.0;
            assert_eq!(sum(&x, &y, |a, b| [a, a * b]), [expected, 2.0 * expected]);
            let mut out = vec![0.0; x.len()];
            let s = weighted_sum_and_write(&x, &y, None, &mut out, false, |a, b| ([a], a + b));
            assert_eq!(s, [expected]);
            assert!(out.iter().enumerate().all(|(i, &o)| o == i as f64 + 2.0));
            weighted_sum_and_write(&x, &y, None, &mut out, true, |a, _| ([a], a));
            assert!(
                out.iter()
                    .enumerate()
                    .all(|(i, &o)| o == 2.0 * i as f64 + 2.0)
            );
        }
    }

    #[test]
    fn every_simd_level_gives_the_same_bits() {
        // A transcendental term (the kernels' exp and ln polynomials) over 3 blocks and a
        // remainder: each level this CPU has must agree with the baseline bit for bit.
        let x: Vec<f32> = (0..1600).map(|i| (i as f32 - 800.0) * 0.013).collect();
        let y: Vec<f32> = (0..1600).map(|i| (i % 3) as f32 / 2.0).collect();
        let term = |a: f32, b: f32| {
            let e = (-a.abs()).exp_nonpositive();
            [e.ln_1p_unit() * b + a.max(0.0)]
        };
        let baseline = sum_body::<f32, 1, true, false>(&x, &y, &[], term);
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                // SAFETY: the features were just detected.
                assert_eq!(
                    unsafe { x86::sum_avx2::<f32, 1, true, false>(&x, &y, &[], term) },
                    baseline
                );
            }
            if simd_level() == SimdLevel::Avx512 {
                // SAFETY: `simd_level` detected the features.
                assert_eq!(
                    unsafe { x86::sum_avx512::<f32, 1, true, false>(&x, &y, &[], term) },
                    baseline
                );
            }
        }
        assert_eq!(sum(&x, &y, term), baseline.0);
    }

    #[test]
    fn weights_multiply_each_term_and_gradient() {
        // 1100 elements: two full blocks and a remainder.
        let x: Vec<f64> = (0..1100).map(|i| f64::from(i % 7)).collect();
        let y = vec![0.5; 1100];
        let w: Vec<f64> = (0..1100).map(|i| f64::from(i % 3)).collect();
        let expected = [
            (0..1100).map(|i| w[i] * x[i]).sum::<f64>(),
            (0..1100).map(|i| w[i] * x[i] * y[i]).sum::<f64>(),
        ];
        let (sums, _) = weighted_sum_checking_unit_y(&x, &y, Some(&w), |a, b| [a, a * b]);
        assert_eq!(sums, expected);
        let mut out = vec![1.0; 1100];
        let s = weighted_sum_and_write(&x, &y, Some(&w), &mut out, true, |a, b| ([a], a + b));
        assert_eq!(s, [expected[0]]);
        assert!((0..1100).all(|i| out[i] == 1.0 + w[i] * (x[i] + y[i])));
    }

    /// The targets check finds a value outside `[0, 1]` in any block, the remainder included,
    /// on both passes, and takes NaN and the ends 0 and 1 as inside.
    #[test]
    fn the_targets_check_finds_a_value_outside_the_unit_interval_anywhere() {
        let x = vec![0.5_f32; 1100];
        for (at, value, outside) in [
            (0, 255.0, true),
            (700, -1e-7, true),
            (1099, 1.0 + 1e-6, true),
            (1099, f32::NAN, false),
            (600, 1.0, false),
            (5, 0.0, false),
        ] {
            let mut y = vec![0.25_f32; 1100];
            y[at] = value;
            assert_eq!(
                weighted_sum_checking_unit_y(&x, &y, None, |a, b| [a * b]).1,
                outside,
                "{value} at {at}"
            );
            let mut out = vec![0.0_f32; 1100];
            let (_, found) =
                weighted_sum_and_write_checking_unit_y(&x, &y, None, &mut out, false, |a, b| {
                    ([a], b)
                });
            assert_eq!(found, outside, "{value} at {at}");
            // Without the check, nothing is flagged.
            assert!(!sum_impl::<f32, 1, false, false>(&x, &y, &[], |a, b| [a * b]).1);
        }
    }
}
