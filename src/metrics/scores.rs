//! Scores from confusion counts (Bertels et al., Eq. 1–3), and their mean over images.

use super::Confusion;
use crate::check;
use crate::error::SegLossError;
use crate::options::EmptyPolicy;

/// `numerator / denominator`, with the policy's value for `0/0`.
fn ratio(numerator: u64, denominator: u64, empty: EmptyPolicy) -> f64 {
    if denominator == 0 {
        empty.value()
    } else {
        numerator as f64 / denominator as f64
    }
}

impl Confusion {
    /// Dice score per image (Eq. 1): `D = 2TP / (2TP + FP + FN)`; `empty` decides `0/0`
    /// (both masks empty).
    pub fn dice(&self, empty: EmptyPolicy) -> Vec<f64> {
        (0..self.len())
            .map(|i| {
                let tp2 = 2 * self.tp()[i];
                ratio(tp2, tp2 + self.fp()[i] + self.fn_()[i], empty)
            })
            .collect()
    }

    /// Jaccard index per image (Eq. 1): `J = TP / (TP + FP + FN)`; `empty` decides `0/0`.
    pub fn jaccard(&self, empty: EmptyPolicy) -> Vec<f64> {
        (0..self.len())
            .map(|i| {
                ratio(
                    self.tp()[i],
                    self.tp()[i] + self.fp()[i] + self.fn_()[i],
                    empty,
                )
            })
            .collect()
    }

    /// Hamming similarity per image: `1 - (FP + FN) / d`, the pixel accuracy (always
    /// defined: an image has at least one pixel).
    pub fn hamming(&self) -> Vec<f64> {
        (0..self.len())
            .map(|i| 1.0 - (self.fp()[i] + self.fn_()[i]) as f64 / self.pixels(i) as f64)
            .collect()
    }

    /// Weighted Hamming similarity per image (Eq. 3):
    ///
    /// `H_gamma = 1 - gamma * FN / |y| - (1 - gamma) * FP / (d - |y|)`
    ///          `= gamma * TP / |y| + (1 - gamma) * TN / (d - |y|)`
    ///
    /// i.e. a `gamma`-weighted mean of sensitivity and specificity; `gamma = 1/2` is the
    /// balanced accuracy, which the paper's weighted cross-entropy optimises in expectation.
    /// When the target has no foreground (`|y| = 0`) sensitivity is `0/0`, and when it has no
    /// background (`|y| = d`) specificity is: `empty` gives that term's value (`Nan` makes
    /// the whole score NaN).
    ///
    /// # Errors
    /// `gamma` outside `[0, 1]`.
    pub fn weighted_hamming(
        &self,
        gamma: f64,
        empty: EmptyPolicy,
    ) -> Result<Vec<f64>, SegLossError> {
        check::closed_unit("gamma", gamma)?;
        Ok((0..self.len())
            .map(|i| {
                let foreground = self.tp()[i] + self.fn_()[i];
                let background = self.tn()[i] + self.fp()[i];
                // A term with weight 0 is left out, so an undefined (NaN) term it would
                // multiply cannot leak into the score.
                let term = |weight: f64, numerator, denominator| {
                    if weight == 0.0 {
                        0.0
                    } else {
                        weight * ratio(numerator, denominator, empty)
                    }
                };
                term(gamma, self.tp()[i], foreground) + term(1.0 - gamma, self.tn()[i], background)
            })
            .collect())
    }
}

/// Mean of per-image scores. With `skip_nan`, images scored NaN (by [`EmptyPolicy::Nan`])
/// are left out, as MONAI's `ignore_empty`; the result is NaN when no image is left (or,
/// without `skip_nan`, when any score is NaN), never a silent 0.
pub fn mean_over_images(scores: &[f64], skip_nan: bool) -> f64 {
    let kept = scores.iter().filter(|s| !(skip_nan && s.is_nan()));
    let (sum, count) = kept.fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
    if count == 0 {
        f64::NAN
    } else {
        sum / count as f64
    }
}
