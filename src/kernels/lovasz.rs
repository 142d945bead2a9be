//! Lovász-sigmoid and Lovász hinge: per problem, the errors, one stable descending sort (an
//! LSD radix sort on the f32 bit patterns, which keeps equal errors in ascending pixel order),
//! then one pass over the sorted pixels computing the Lovász weights, the value and the
//! gradient together. Problems (images) run in parallel.

use crate::cpu::lanes;
use crate::cpu::math::Real;
use crate::cpu::parallel;
use crate::cpu::radix_sort::RadixSort;
use crate::cpu::scratch::{Buffers, bytes_of, with_scratch};
use crate::engine::validate::{TargetKind, check_values};
use crate::engine::{Gradient, HostFloat, Targets, TypedKernel};
use crate::error::SegLossError;

/// The per-pixel errors whose Lovász extension is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Errors {
    /// `|y - p|`, `p = sigmoid(x)` (or `x` itself when `!from_logits`).
    Sigmoid { from_logits: bool },
    /// `relu(1 - x (2y - 1))`.
    Hinge,
    /// `x` itself, an error `|y - p|` computed before (Lovász-softmax's per-class problems);
    /// its derivative is that of `|y - p|` with respect to `p`: `+1` for label 0, `-1` for
    /// label 1, 0 at zero error.
    Given,
}

/// The engine's view of the Lovász losses.
pub(crate) struct LovaszKernel {
    pub per_image: bool,
    pub errors: Errors,
}

impl TypedKernel for LovaszKernel {
    fn per_image(&self) -> bool {
        self.per_image
    }
    fn reads_pixel_weights(&self) -> bool {
        true
    }
    fn run<F: HostFloat>(
        &self,
        x: &[F],
        y: Targets<'_, F>,
        rows: usize,
        grad: Option<Gradient<'_, F>>,
    ) -> Result<Vec<f64>, SegLossError> {
        let labels = y.values()?;
        check_values(labels, TargetKind::Hard)?;
        let inputs = (x, labels, y.weights);
        Ok(lovasz(inputs, rows, self.per_image, self.errors, grad))
    }
}

/// The Lovász loss of each problem (each image, or the whole batch when `!per_image`), of the
/// Jaccard index of weighted counts when there are pixel weights `w` ([`JaccardWeights`]);
/// writes `d loss_problem / d x` into `grad` when given. `y` must hold 0/1 labels.
pub(crate) fn lovasz<F: Real>(
    (x, y, w): (&[F], &[F], Option<&[F]>),
    rows: usize,
    per_image: bool,
    errors: Errors,
    grad: Option<Gradient<'_, F>>,
) -> Vec<f64> {
    let (problems, len) = if per_image {
        (rows, x.len() / rows)
    } else {
        (1, x.len())
    };
    let chunks = parallel::rows(problems, len);
    let (out, scale, accumulate) = Gradient::parts(grad);
    parallel::map_with(&chunks, out, |c, out| {
        let r = c.range.clone();
        let out = out.map(|out| Gradient {
            out,
            scale,
            accumulate,
        });
        let w = w.map(|w| &w[r.clone()]);
        with_scratch(|scratch| problem((&x[r.clone()], &y[r], w), errors, out, scratch))
    })
}

/// A thread's buffers, reused for every problem it solves: otherwise each image allocates,
/// and page-faults on, up to 24 bytes per f32 pixel (errors, derivatives, keys, the sort
/// buffer). [`with_scratch`] keeps them between calls up to
/// [`KEPT_PER_THREAD`](crate::cpu::scratch::KEPT_PER_THREAD) bytes per thread (problems of up
/// to about 2^19 pixels), and frees larger ones after their problem.
#[derive(Default)]
pub(crate) struct Scratch<F> {
    errors: Vec<F>,
    /// `d e_i / d x_i`, when the gradient is asked for.
    derivatives: Vec<F>,
    /// Sort keys `(!error bits << 32) | pixel`: once sorted, the order is their low half.
    sort: RadixSort,
}

impl<F: Real> Buffers for Scratch<F> {
    fn bytes(&self) -> usize {
        bytes_of(&self.errors) + bytes_of(&self.derivatives) + self.sort.bytes()
    }
}

/// One problem, its pixels weighted by `w` when given: the value; the gradient is written into
/// `grad` when given.
pub(crate) fn problem<F: Real>(
    (x, y, w): (&[F], &[F], Option<&[F]>),
    errors: Errors,
    mut grad: Option<Gradient<'_, F>>,
    scratch: &mut Scratch<F>,
) -> f64 {
    // One pass computes each error and, when needed, d e_i / d x_i, so the pass over the
    // sorted pixels only scales it (no second sigmoid per pixel).
    let e = &mut scratch.errors;
    e.clear();
    if grad.is_some() {
        let derivatives = &mut scratch.derivatives;
        derivatives.clear();
        e.extend(x.iter().zip(y).map(|(&xi, &yi)| {
            let (error, derivative) = error_and_derivative(xi, yi, errors);
            derivatives.push(derivative);
            error
        }));
    } else {
        e.extend(
            x.iter()
                .zip(y)
                .map(|(&xi, &yi)| error_and_derivative(xi, yi, errors).0),
        );
    }
    descending_order(e, &mut scratch.sort);
    let e = &scratch.errors;

    let total = match w {
        Some(w) => lanes::sum(y, w, |v, wi| [v * wi])[0],
        None => lanes::sum(y, y, |v, _| [v])[0],
    };
    let mut weights = JaccardWeights::new(total);
    let mut value = 0.0;
    for &key in scratch.sort.sorted() {
        let i = key as u32 as usize;
        let weight = match w {
            Some(w) => weights.next_weighted(y[i].to_f64(), w[i].to_f64()),
            None => weights.next(y[i].to_f64()),
        };
        value += e[i].to_f64() * weight;
        if let Some(g) = grad.as_mut() {
            let d = F::from_f64(g.scale * weight) * scratch.derivatives[i];
            g.out[i] = if g.accumulate { g.out[i] + d } else { d };
        }
    }
    nan_derivatives(value, grad, e);
    value
}

/// A NaN error (a NaN input) makes the value NaN; its pixels then get a NaN derivative too.
/// Done after the sorted pass, only for such a problem: a NaN select in the error pass made
/// LLVM branch on the sign of every error, and one in the sorted pass cost time too
/// (`benches/results/kernel_notes.md#nan-derivatives-after-the-sorted-pass`).
fn nan_derivatives<F: Real>(value: f64, grad: Option<Gradient<'_, F>>, errors: &[F]) {
    if value.is_nan()
        && let Some(g) = grad
    {
        for (out, &error) in g.out.iter_mut().zip(errors) {
            if error.is_nan() {
                *out = error;
            }
        }
    }
}

/// `lovasz_grad` one pixel at a time, in the order of decreasing error: with `G` the labels'
/// total and the running sums of the labels and of their complements,
/// `J_k = 1 - (G - cumsum(g))_k / (G + cumsum(1 - g))_k`, the weight `J_k - J_(k-1)`.
///
/// With pixel weights `w` the counts are weighted: `G = sum(w g)` and the running sums of
/// `w g` and `w (1 - g)`, the Lovász extension of the Jaccard loss of weighted counts (a
/// pixel of weight 0 changes no count: its weight `J_k - J_(k-1)` is 0, it drops out).
/// `U_k` can then be 0 (only zero-weight pixels so far, no foreground): `J_k = 0` there, the
/// limit of an empty union.
#[derive(Clone, Copy)]
struct JaccardWeights {
    total: f64,
    foreground: f64,
    background: f64,
    previous: f64,
}

impl JaccardWeights {
    fn new(total: f64) -> Self {
        JaccardWeights {
            total,
            foreground: 0.0,
            background: 0.0,
            previous: 0.0,
        }
    }

    /// The weight of the next pixel, whose label is `label`.
    #[inline(always)]
    fn next(&mut self, label: f64) -> f64 {
        self.foreground += label;
        self.background += 1.0 - label;
        let jaccard = 1.0 - (self.total - self.foreground) / (self.total + self.background);
        let weight = jaccard - self.previous;
        self.previous = jaccard;
        weight
    }

    /// [`JaccardWeights::next`] for a pixel of weight `w`.
    #[inline(always)]
    fn next_weighted(&mut self, label: f64, w: f64) -> f64 {
        self.foreground += w * label;
        self.background += w * (1.0 - label);
        let union = self.total + self.background;
        // `== 0` rather than `> 0`: a NaN weight keeps the NaN.
        let jaccard = if union == 0.0 {
            0.0
        } else {
            1.0 - (self.total - self.foreground) / union
        };
        let weight = jaccard - self.previous;
        self.previous = jaccard;
        weight
    }
}

/// The largest problem whose sort keys carry a label bit beside the pixel index.
const LABEL: u32 = 1 << 31;

/// Whether [`labelled_problem`] takes a problem of `len` pixels in `F`: errors with radix keys
/// (f32) and fewer than 2^31 pixels.
pub(crate) fn takes_labelled<F: Real>(len: usize) -> bool {
    F::ZERO.radix_key().is_some() && len < LABEL as usize
}

/// The error `|y - p|` of a pixel with label `y` and probability `p`, its sign bit set for
/// label 1 (`-0` for label 1 at zero error): the one number [`labelled_key`] needs. The sign
/// survives a NaN error too (negation flips the sign bit of any value).
#[inline(always)]
pub(crate) fn signed_error<F: Real>(p: F, y: F) -> F {
    // `+ 0` turns a -0 into +0, so that the label alone sets the sign.
    let error = (y - p).abs() + F::ZERO;
    if y == F::ONE { -error } else { error }
}

/// The sort key of pixel `index` for [`labelled_problem`], from its [`signed_error`]: the
/// error (descending: its bits inverted) above, the index and the label bit below. `F` must
/// have radix keys ([`takes_labelled`]).
#[inline(always)]
pub(crate) fn labelled_key<F: Real>(signed_error: F, index: usize) -> u64 {
    const SIGN: u32 = 1 << 31;
    let bits = signed_error.radix_key().unwrap_or_default();
    let label = if bits & SIGN != 0 { LABEL } else { 0 };
    let error = bits & !SIGN;
    // `!error` ascending is the error descending (the errors are non-negative).
    (u64::from(!error) << 32) | u64::from(index as u32 | label)
}

/// A Lovász problem on probabilities with 0/1 labels (errors `|y - p|`, Lovász-softmax's
/// per-class problems), given as the [`signed_error`] of each pixel in `rows` (rows of equal
/// length, `labels` pixels labelled one), for a problem that [`takes_labelled`] (the caller
/// uses [`problem`] otherwise). Returns the value; with `scale`, overwrites every pixel of
/// `rows` with `scale * d value / d p`.
///
/// The key carries all the pass over the sorted pixels needs (the error is the key itself), so
/// nothing is read by index and nothing beside the keys is kept: on problems larger than the
/// cache (a class over a batch), reading errors and labels at random cost more than the sort,
/// and gathering them took 12 bytes a pixel. The derivative of `|y - p|` is `+1` for label 0
/// and `-1` for label 1 (0 at zero error).
pub(crate) fn labelled_problem<F: Real>(
    scratch: &mut Scratch<F>,
    rows: &mut [&mut [F]],
    labels: f64,
    scale: Option<f64>,
) -> f64 {
    let len = rows.first().map_or(0, |row| row.len());
    debug_assert!(takes_labelled::<F>(rows.len() * len));
    // Row k's pixels are numbered from `k << shift` where the numbers fit the key (from
    // `k * len` otherwise): a key's number then splits into row and pixel by a shift and a
    // mask, not a division per pixel (`benches/results/kernel_notes.md#row-numbers-by-shift`).
    // Either numbering ascends with (row, pixel): the tie order is the same.
    let shift = len.next_power_of_two().trailing_zeros();
    let shifted = takes_labelled::<F>(rows.len() << shift);
    let mask = (1usize << shift) - 1;
    let runs: Vec<(&[F], usize)> = rows
        .iter()
        .enumerate()
        .map(|(k, row)| (&row[..], if shifted { k << shift } else { k * len }))
        .collect();
    scratch.sort.gather(&runs, labelled_key);
    let mut write = |i: usize, d: F| {
        let (k, at) = if shifted {
            (i >> shift, i & mask)
        } else {
            (i / len, i % len)
        };
        rows[k][at] = d;
    };
    let mut weights = JaccardWeights::new(labels);
    let mut value = 0.0;
    let pixel = |key: u64| {
        let low = key as u32;
        let error = F::from_radix_key(!((key >> 32) as u32));
        ((low & !LABEL) as usize, low & LABEL != 0, error)
    };
    // The pass over the sorted pixels, a sorted part at a time while the part is in cache.
    scratch.sort.sort(|part| {
        // The running sums as the part's own locals: used through the closure's captures,
        // they were loaded and stored at every pixel (`write` might have aliased them).
        let (mut part_weights, mut part_value) = (weights, value);
        for &key in part {
            let (i, label, error) = pixel(key);
            let weight = part_weights.next(f64::from(u8::from(label)));
            part_value += error.to_f64() * weight;
            if let Some(scale) = scale {
                write(
                    i,
                    F::from_f64(scale * weight) * error_derivative(error, label),
                );
            }
        }
        (weights, value) = (part_weights, part_value);
    });
    // A NaN error (a NaN input) makes the value NaN; its pixels then get a NaN derivative
    // too (after the pass, as in `problem`).
    if value.is_nan() && scale.is_some() {
        for &key in scratch.sort.sorted() {
            let (i, _, error) = pixel(key);
            if error.is_nan() {
                write(i, error);
            }
        }
    }
    value
}

/// `d|y - p| / dp` as a function of the error `|y - p|` and the label `y`: `+1` for label 0,
/// `-1` for label 1, 0 at zero error (as burn's `abs` backward).
#[inline(always)]
fn error_derivative<F: Real>(error: F, label: bool) -> F {
    if error == F::ZERO {
        F::ZERO
    } else if label {
        -F::ONE
    } else {
        F::ONE
    }
}

/// The error `e_i` and `d e_i / d x_i` (0 where the error has a kink at 0, as burn's `abs` and
/// `relu` backward).
#[inline(always)]
fn error_and_derivative<F: Real>(x: F, y: F, errors: Errors) -> (F, F) {
    match errors {
        Errors::Sigmoid { from_logits } => {
            let p = probability(x, from_logits);
            // `+ 0` turns a -0 into +0, so its bit pattern sorts as zero.
            let error = (y - p).abs() + F::ZERO;
            let dp = if from_logits {
                p * (F::ONE - p)
            } else {
                F::ONE
            };
            let derivative = if p > y {
                dp
            } else if p < y {
                -dp
            } else {
                F::ZERO
            };
            (error, derivative)
        }
        Errors::Given => (x, error_derivative(x, y == F::ONE)),
        Errors::Hinge => {
            let s = y + y - F::ONE;
            let margin = F::ONE - x * s;
            let derivative = if margin > F::ZERO { -s } else { F::ZERO };
            (margin.max(F::ZERO) + F::ZERO, derivative)
        }
    }
}

/// `sigmoid(x)` computed exactly as burn's flex backend does (the standard `exp`, the same
/// divisions), so that the errors, and with them the sort order among nearly equal errors,
/// are the device path's. The sort dominates this kernel, so the scalar `exp` costs little.
#[inline(always)]
fn probability<F: Real>(x: F, from_logits: bool) -> F {
    if !from_logits {
        x
    } else if x >= F::ZERO {
        F::ONE / (F::ONE + (-x).exp_std())
    } else {
        let e = x.exp_std();
        e / (F::ONE + e)
    }
}

/// Sorts pixel indices by decreasing error, equal errors in ascending pixel order, into the
/// low 32 bits of `sort.sorted()`.
fn descending_order<F: Real>(e: &[F], sort: &mut RadixSort) {
    if F::ZERO.radix_key().is_some() {
        // `!bits` ascending is bits descending (the errors are non-negative).
        sort.gather(&[(e, 0)], |v, i| {
            let bits = v.radix_key().unwrap_or_default();
            (u64::from(!bits) << 32) | i as u64
        });
        sort.sort(|_| {});
    } else {
        let keys = sort.unsorted();
        keys.extend(0..e.len() as u64);
        // Stable: equal errors keep ascending pixel order.
        keys.sort_by(|&a, &b| e[b as usize].total_cmp_f(e[a as usize]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radix_order_is_descending_and_stable() {
        let values = [0.5_f32, 0.0, 2.0, 0.5, 1e-30, 7.0, 0.0, 2.0, 3e30];
        let mut sort = RadixSort::default();
        descending_order(&values, &mut sort);
        let order: Vec<u32> = sort.sorted().iter().map(|&k| k as u32).collect();
        assert_eq!(order, vec![8, 5, 2, 7, 0, 3, 4, 1, 6]);
        descending_order(&values.map(f64::from), &mut sort);
        let f64_order: Vec<u32> = sort.sorted().iter().map(|&k| k as u32).collect();
        assert_eq!(f64_order, order);
    }
}
