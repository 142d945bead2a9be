//! Soft Dice and soft Jaccard: one pass for the soft statistics, one for the gradient.

use super::lanes;
use super::math::{Real, sigmoid_from};
use super::parallel;

/// Which ratio of the soft statistics is scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ratio {
    /// `(2I + s_nr) / (|p| + |y| + s_dr)`.
    Dice,
    /// `(I + s_nr) / (|p| + |y| - I + s_dr)`.
    Jaccard,
}

/// The options of an overlap loss, as the kernels see them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OverlapParams {
    pub ratio: Ratio,
    pub smooth_nr: f64,
    pub smooth_dr: f64,
    pub squared: bool,
    /// One problem for the whole batch instead of one per image.
    pub batch: bool,
    pub from_logits: bool,
}

/// `1 - ratio` per problem (each of the `rows` images, or one for the batch); when `grad`,
/// overwrites `x` with `d loss_problem / d x`. A zero denominator scores loss 0 with zero
/// gradient, as in the device path.
pub(crate) fn overlap<F: Real>(
    x: &mut [F],
    y: &[F],
    rows: usize,
    params: OverlapParams,
    grad: bool,
) -> Vec<f64> {
    let len = x.len() / rows;
    let chunks = parallel::chunks(rows, len);
    let from_logits = params.from_logits;
    let squared = params.squared;
    // Statistics: [sum(p y), |p|, |y|].
    let read_only: &[F] = x;
    let partial = parallel::map(&chunks, |c| {
        let r = c.range.clone();
        lanes::sum(&read_only[r.clone()], &y[r], |xi, yi| {
            let p = probability(xi, from_logits);
            if squared {
                [p * yi, p * p, yi * yi]
            } else {
                [p * yi, p, yi]
            }
        })
    });
    let mut stats = parallel::per_row(&chunks, &partial, rows);
    if params.batch {
        let total = stats.iter().fold([0.0; 3], |acc, s| {
            [acc[0] + s[0], acc[1] + s[1], acc[2] + s[2]]
        });
        stats = vec![total];
    }
    let scored: Vec<Scored> = stats.iter().map(|s| score(s, &params)).collect();

    if grad {
        parallel::map_mut(&chunks, x, |c, xs| {
            let s = &scored[if params.batch { 0 } else { c.row }];
            let (a, b) = (F::from_f64(s.d_intersection), F::from_f64(s.d_predicted));
            lanes::sum_and_replace(xs, &y[c.range.clone()], |xi, yi| {
                let p = probability(xi, from_logits);
                let dp = if from_logits {
                    p * (F::ONE - p)
                } else {
                    F::ONE
                };
                let d_size = if squared { p + p } else { F::ONE };
                ([] as [F; 0], (a * yi + b * d_size) * dp)
            })
        });
    }
    scored.iter().map(|s| s.loss).collect()
}

/// A problem's loss and its derivatives with respect to `I` and `|p|`.
struct Scored {
    loss: f64,
    d_intersection: f64,
    d_predicted: f64,
}

fn score(&[intersection, predicted, target]: &[f64; 3], params: &OverlapParams) -> Scored {
    let (numerator, denominator, d_num, d_den) = match params.ratio {
        Ratio::Dice => (
            2.0 * intersection + params.smooth_nr,
            predicted + target + params.smooth_dr,
            2.0,
            0.0,
        ),
        Ratio::Jaccard => (
            intersection + params.smooth_nr,
            predicted + target - intersection + params.smooth_dr,
            1.0,
            -1.0,
        ),
    };
    if denominator <= 0.0 {
        // Both empty: a perfect match (see `losses::overlap::one_minus_ratio`).
        return Scored {
            loss: 0.0,
            d_intersection: 0.0,
            d_predicted: 0.0,
        };
    }
    // loss = 1 - n/d: d loss/dI = -(n' d - n d') / d^2; d loss/d|p| = n / d^2.
    let d2 = denominator * denominator;
    Scored {
        loss: 1.0 - numerator / denominator,
        d_intersection: -(d_num * denominator - numerator * d_den) / d2,
        d_predicted: numerator / d2,
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
    fn sums_of_more_than_2_pow_24_terms_stay_exact() {
        // 3e7 pixels of p = 1/2, y = 1: an f32 running sum of the 1/2s stalls at 2^23, while
        // the exact statistics give Dice = 1 - 3e7 / 4.5e7 = 1/3.
        let len = 30_000_000;
        let mut x = vec![0.0_f32; len];
        let y = vec![1.0_f32; len];
        let params = OverlapParams {
            ratio: Ratio::Dice,
            smooth_nr: 0.0,
            smooth_dr: 0.0,
            squared: false,
            batch: false,
            from_logits: true,
        };
        let loss = overlap(&mut x, &y, 1, params, false);
        assert!((loss[0] - 1.0 / 3.0).abs() < 1e-12, "{}", loss[0]);
    }
}
