//! Soft Dice, soft Jaccard and Tversky: one pass for the soft statistics, one for the
//! gradient.

use crate::cpu::lanes;
use crate::cpu::math::{Real, sigmoid_from};
use crate::cpu::parallel;
use crate::engine::{Gradient, HostFloat, Targets, TypedKernel};
use crate::error::SegLossError;
use crate::kernels::check_unit_targets;

/// The score `(nr_i I + s_nr) / (dr_i I + dr_p |p| + dr_y |y| + s_dr)` of the soft statistics
/// `I` (intersection), `|p|` and `|y|`, as the coefficients of a linear ratio.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Ratio {
    pub nr_intersection: f64,
    pub dr_intersection: f64,
    pub dr_predicted: f64,
    pub dr_target: f64,
}

impl Ratio {
    /// `(2I + s_nr) / (|p| + |y| + s_dr)`.
    pub const DICE: Ratio = Ratio {
        nr_intersection: 2.0,
        dr_intersection: 0.0,
        dr_predicted: 1.0,
        dr_target: 1.0,
    };
    /// `(I + s_nr) / (|p| + |y| - I + s_dr)`.
    pub const JACCARD: Ratio = Ratio {
        nr_intersection: 1.0,
        dr_intersection: -1.0,
        dr_predicted: 1.0,
        dr_target: 1.0,
    };

    /// `(I + s_nr) / (I + alpha FP + beta FN + s_dr)` with `FP = |p| - I`, `FN = |y| - I`.
    pub fn tversky(alpha: f64, beta: f64) -> Ratio {
        Ratio {
            nr_intersection: 1.0,
            dr_intersection: 1.0 - alpha - beta,
            dr_predicted: alpha,
            dr_target: beta,
        }
    }
}

/// The smallest score `-ln(score)` is taken of (smp's `eps`), so that a score of 0 gives a
/// finite loss (`-ln(1e-7) = 16.1`) with zero gradient instead of infinity.
pub(crate) const LOG_FLOOR: f64 = 1e-7;

/// The options of an overlap loss, as the kernels see them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OverlapParams {
    pub ratio: Ratio,
    pub smooth_nr: f64,
    pub smooth_dr: f64,
    pub squared: bool,
    /// `I = (|p| + |y| - sum|p - y|) / 2` instead of `sum(p y)` (equal for hard targets).
    pub soft_label: bool,
    /// `-ln(score)` instead of `1 - score`.
    pub log_loss: bool,
    /// One problem for the whole batch instead of one per image.
    pub batch: bool,
    pub from_logits: bool,
    /// The focal exponent: a problem's loss (after the class average, for a multiclass loss)
    /// raised to `gamma` ([`focal_power`]); 1 leaves it as it is.
    pub gamma: f64,
}

impl TypedKernel for OverlapParams {
    fn per_image(&self) -> bool {
        !self.batch
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
        overlap(x, (y.values()?, y.weights), rows, *self, grad)
    }
}

/// The loss of the score per problem (each of the `rows` images, or one for the batch), from
/// the statistics weighted by the pixel weights `w` when given; writes
/// `d loss_problem / d x` into `grad` when given. A zero denominator scores loss 0 with zero
/// gradient, as in the device path.
///
/// The gradient needs each problem's statistics, so the data is read twice. With per-image
/// statistics and at least one image per thread, each thread takes whole images and reads an
/// image the second time right after the first, from cache (an image of 512x512 f32 logits and
/// targets is 2 MB); otherwise (batch statistics, or fewer images than threads) every chunk of
/// the batch is read once for the statistics and once more for the gradient.
///
/// A target outside `[0, 1]` is an error, found by the statistics pass (the gradient, in the
/// per-image scheme, is then written for nothing: only on that error).
pub(crate) fn overlap<F: Real>(
    x: &[F],
    y: (&[F], Option<&[F]>),
    rows: usize,
    params: OverlapParams,
    grad: Option<Gradient<'_, F>>,
) -> Result<Vec<f64>, SegLossError> {
    overlap_scored(x, y, rows, (params, false), grad, |s, _| {
        score(s, &params).raised(params.gamma)
    })
}

/// [`overlap`] with another score of the statistics: `scored(statistics, pixels)` gives a
/// problem's loss and its derivatives from its statistics and, with `count_pixels`, its pixel
/// count (the sum of its pixel weights, with weights: the MCC loss scores the same three sums
/// and the count; without `count_pixels` the weights are not summed, and `pixels` is the
/// unweighted count).
pub(crate) fn overlap_scored<F: Real>(
    x: &[F],
    (y, w): (&[F], Option<&[F]>),
    rows: usize,
    (params, count_pixels): (OverlapParams, bool),
    grad: Option<Gradient<'_, F>>,
    scored: impl Fn(&[f64; 3], f64) -> Scored + Sync,
) -> Result<Vec<f64>, SegLossError> {
    let len = x.len() / rows;
    let (out, scale, accumulate) = Gradient::parts(grad);
    let part = |r: &std::ops::Range<usize>| (&y[r.clone()], w.map(|w| &w[r.clone()]));
    let pixel_count = |r: &std::ops::Range<usize>| match w {
        Some(w) if count_pixels => lanes::sum(&w[r.clone()], &w[r.clone()], |wi, _| [wi])[0],
        _ => r.len() as f64,
    };
    if !params.batch && rows >= parallel::threads() {
        let per_row = parallel::map_with(&parallel::rows(rows, len), out, |c, out| {
            let r = c.range.clone();
            let (statistics, outside) = row_statistics(&x[r.clone()], part(&r), &params);
            let s = scored(&statistics, pixel_count(&r));
            if let Some(out) = out {
                write_gradient(&x[r.clone()], part(&r), out, &s, scale, accumulate, &params);
            }
            (s.loss, outside)
        });
        check_unit_targets(per_row.iter().any(|(_, outside)| *outside), y)?;
        return Ok(per_row.into_iter().map(|(loss, _)| loss).collect());
    }
    let chunks = parallel::chunks(rows, len);
    let partial = parallel::map(&chunks, |c| {
        let r = c.range.clone();
        statistics(&x[r.clone()], part(&r), &params)
    });
    check_unit_targets(partial.iter().any(|(_, outside)| *outside), y)?;
    let partial: Vec<[f64; 3]> = partial.into_iter().map(|(sums, _)| sums).collect();
    let mut stats = parallel::per_row(&chunks, &partial, rows);
    if params.batch {
        let total = stats.iter().fold([0.0; 3], |acc, s| {
            [acc[0] + s[0], acc[1] + s[1], acc[2] + s[2]]
        });
        stats = vec![total];
    }
    let problem_len = if params.batch { rows * len } else { len };
    let problems: Vec<Scored> = stats
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let r = i * problem_len..(i + 1) * problem_len;
            scored(s, pixel_count(&r))
        })
        .collect();
    if let Some(out) = out {
        parallel::map_mut(&chunks, out, |c, out| {
            let s = &problems[if params.batch { 0 } else { c.row }];
            let r = c.range.clone();
            write_gradient(&x[r.clone()], part(&r), out, s, scale, accumulate, &params);
        });
    }
    Ok(problems.iter().map(|s| s.loss).collect())
}

/// The statistics of one row, summed over the chunks [`parallel::chunks`] makes of it, in their
/// order: the same sums, bit for bit, as the chunk-wise scheme, so the result does not depend
/// on which scheme the thread count picks.
fn row_statistics<F: Real>(
    x: &[F],
    (y, w): (&[F], Option<&[F]>),
    params: &OverlapParams,
) -> ([f64; 3], bool) {
    let chunks = parallel::chunks(1, x.len());
    let partial: Vec<([f64; 3], bool)> = chunks
        .iter()
        .map(|c| {
            let r = c.range.clone();
            statistics(&x[r.clone()], (&y[r.clone()], w.map(|w| &w[r])), params)
        })
        .collect();
    let outside = partial.iter().any(|(_, outside)| *outside);
    let sums: Vec<[f64; 3]> = partial.into_iter().map(|(sums, _)| sums).collect();
    (parallel::per_row(&chunks, &sums, 1)[0], outside)
}

/// The statistics `[sum(p y) or sum|p - y|, |p|, |y|]` of a slice (squared sizes when
/// `squared`; each pixel's terms times its weight, with weights), and whether one of its
/// targets lies outside `[0, 1]`.
fn statistics<F: Real>(
    x: &[F],
    (y, w): (&[F], Option<&[F]>),
    params: &OverlapParams,
) -> ([f64; 3], bool) {
    let (from_logits, squared, soft_label) =
        (params.from_logits, params.squared, params.soft_label);
    lanes::weighted_sum_checking_unit_y(x, y, w, |xi, yi| {
        let p = probability(xi, from_logits);
        let first = if soft_label { (p - yi).abs() } else { p * yi };
        if squared {
            [first, p * p, yi * yi]
        } else {
            [first, p, yi]
        }
    })
}

/// Writes (or adds, when `accumulate`) `scale * d loss / d x` of a slice of one problem scored
/// `s` into `out`.
fn write_gradient<F: Real>(
    x: &[F],
    (y, w): (&[F], Option<&[F]>),
    out: &mut [F],
    s: &Scored,
    scale: f64,
    accumulate: bool,
    params: &OverlapParams,
) {
    let (from_logits, squared, soft_label) =
        (params.from_logits, params.squared, params.soft_label);
    let (a, b) = (
        F::from_f64(scale * s.d_first),
        F::from_f64(scale * s.d_predicted),
    );
    lanes::weighted_sum_and_write(x, y, w, out, accumulate, |xi, yi| {
        let p = probability(xi, from_logits);
        let dp = if from_logits {
            p * (F::ONE - p)
        } else {
            F::ONE
        };
        // d first / d p: y, or sign(p - y) (0 at p = y, as burn's `abs` backward).
        let d_first = if !soft_label {
            yi
        } else if p > yi {
            F::ONE
        } else if p < yi {
            -F::ONE
        } else {
            F::ZERO
        };
        let d_size = if squared { p + p } else { F::ONE };
        ([] as [F; 0], (a * d_first + b * d_size) * dp)
    });
}

/// A problem's loss and its derivatives with respect to the first statistic (`I`, or
/// `sum|p - y|` with soft labels) and `|p|`.
pub(crate) struct Scored {
    pub loss: f64,
    pub d_first: f64,
    pub d_predicted: f64,
}

impl Scored {
    /// The loss raised to `gamma` ([`focal_power`]), its derivatives by the chain rule.
    fn raised(self, gamma: f64) -> Scored {
        let (loss, factor) = focal_power(self.loss, gamma);
        Scored {
            loss,
            d_first: self.d_first * factor,
            d_predicted: self.d_predicted * factor,
        }
    }
}

/// `loss^gamma` and its derivative `gamma loss^(gamma - 1)` (the focal Tversky loss of
/// Abraham & Khan 2019, smp's `TverskyLoss(gamma)`). A loss of 0 or below (a perfect match;
/// below 0 only when `smooth_nr > smooth_dr`) gives 0 with derivative 0, so that
/// `gamma < 1` stays finite where `gamma loss^(gamma - 1)` is infinite (the device path's
/// `loss::overlap::raised` does the same). A NaN loss stays NaN.
pub(crate) fn focal_power(loss: f64, gamma: f64) -> (f64, f64) {
    if gamma == 1.0 {
        (loss, 1.0)
    } else if loss <= 0.0 {
        (0.0, 0.0)
    } else {
        (loss.powf(gamma), gamma * loss.powf(gamma - 1.0))
    }
}

pub(crate) fn score(&[first, predicted, target]: &[f64; 3], params: &OverlapParams) -> Scored {
    let r = params.ratio;
    let intersection = if params.soft_label {
        (predicted + target - first) / 2.0
    } else {
        first
    };
    let numerator = r.nr_intersection * intersection + params.smooth_nr;
    let denominator = r.dr_intersection * intersection
        + r.dr_predicted * predicted
        + r.dr_target * target
        + params.smooth_dr;
    if denominator <= 0.0 {
        // Both empty: a perfect match (see `losses::overlap::loss_of_ratio`).
        return Scored {
            loss: 0.0,
            d_first: 0.0,
            d_predicted: 0.0,
        };
    }
    let ratio = numerator / denominator;
    // d ratio / dI and d ratio / d|p| (with I held fixed).
    let d2 = denominator * denominator;
    let d_ratio_intersection =
        (r.nr_intersection * denominator - numerator * r.dr_intersection) / d2;
    let d_ratio_predicted = -numerator * r.dr_predicted / d2;
    let (loss, d_loss_ratio) = if !params.log_loss {
        (1.0 - ratio, -1.0)
    } else if ratio <= LOG_FLOOR {
        (-LOG_FLOOR.ln(), 0.0)
    } else {
        // A NaN ratio (a NaN input) lands here and stays NaN.
        (-ratio.ln(), -1.0 / ratio)
    };
    let d_intersection = d_loss_ratio * d_ratio_intersection;
    let d_predicted = d_loss_ratio * d_ratio_predicted;
    if params.soft_label {
        // I = (|p| + |y| - L) / 2: dI/dL = -1/2, dI/d|p| = 1/2.
        Scored {
            loss,
            d_first: -d_intersection / 2.0,
            d_predicted: d_predicted + d_intersection / 2.0,
        }
    } else {
        Scored {
            loss,
            d_first: d_intersection,
            d_predicted,
        }
    }
}

#[inline(always)]
fn probability<F: Real>(x: F, from_logits: bool) -> F {
    if from_logits {
        sigmoid_from(x, (-x.abs()).exp_nonpositive())
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_schemes_sum_the_statistics_in_the_same_order() {
        // The row-wise scheme (one image per thread) and the chunk-wise one (chunks over all
        // threads) must give the same bits, whatever the thread count picks.
        let (rows, len) = (3, 2 * parallel::CHUNK + 777);
        // Logits over [-60, 60]: probabilities from 1e-26 to 1, so that the f64 sums round
        // and their grouping shows (sums of similar f32 values are exact in f64).
        let x: Vec<f32> = (0..rows * len)
            .map(|i| ((i * 37 % 1001) as f32 - 500.0) * 0.12)
            .collect();
        let y: Vec<f32> = (0..rows * len).map(|i| (i % 3 == 0) as u8 as f32).collect();
        let params = OverlapParams {
            ratio: Ratio::DICE,
            smooth_nr: 1e-5,
            smooth_dr: 1e-5,
            squared: false,
            soft_label: false,
            log_loss: false,
            gamma: 1.0,
            batch: false,
            from_logits: true,
        };
        let chunks = parallel::chunks(rows, len);
        let partial: Vec<[f64; 3]> = chunks
            .iter()
            .map(|c| statistics(&x[c.range.clone()], (&y[c.range.clone()], None), &params).0)
            .collect();
        let chunk_wise = parallel::per_row(&chunks, &partial, rows);
        for (row, expected) in chunk_wise.iter().enumerate() {
            let r = row * len..(row + 1) * len;
            assert_eq!(
                &row_statistics(&x[r.clone()], (&y[r], None), &params).0,
                expected
            );
        }
    }

    #[test]
    fn sums_of_more_than_2_pow_24_terms_stay_exact() {
        // 3e7 pixels of p = 1/2, y = 1: an f32 running sum of the 1/2s stalls at 2^23, while
        // the exact statistics give Dice = 1 - 3e7 / 4.5e7 = 1/3.
        let len = 30_000_000;
        let x = vec![0.0_f32; len];
        let y = vec![1.0_f32; len];
        let params = OverlapParams {
            ratio: Ratio::DICE,
            smooth_nr: 0.0,
            smooth_dr: 0.0,
            squared: false,
            soft_label: false,
            log_loss: false,
            gamma: 1.0,
            batch: false,
            from_logits: true,
        };
        let loss = overlap(&x, (&y, None), 1, params, None).unwrap();
        assert!((loss[0] - 1.0 / 3.0).abs() < 1e-12, "{}", loss[0]);
    }
}
