//! The MCC loss: the overlap kernel's two passes (statistics, gradient) with the Matthews
//! correlation as the score.

use crate::engine::{Gradient, HostFloat, Targets, TypedKernel};
use crate::error::SegLossError;
use crate::kernels::overlap::{OverlapParams, Ratio, Scored, overlap_scored};

/// The options of the MCC loss, as the kernel sees them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MccParams {
    pub eps: f64,
    /// One problem for the whole batch instead of one per image.
    pub batch: bool,
    pub from_logits: bool,
}

impl TypedKernel for MccParams {
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
        // Plain sums `[sum(p y), sum(p), sum(y)]`: the statistics and gradient passes of the
        // overlap kernel, which read no other option.
        let sums = OverlapParams {
            ratio: Ratio::DICE,
            smooth_nr: 0.0,
            smooth_dr: 0.0,
            squared: false,
            soft_label: false,
            log_loss: false,
            batch: self.batch,
            from_logits: self.from_logits,
            gamma: 1.0,
        };
        overlap_scored(
            x,
            (y.values()?, y.weights),
            rows,
            (sums, true),
            grad,
            |s, n| self.score(s, n),
        )
    }
}

impl MccParams {
    /// `1 - MCC` of a problem with sums `[I, P, Y] = [sum(p y), sum(p), sum(y)]` over `n`
    /// pixels (formula in [`crate::losses::mcc`]), and its derivatives with respect to `I` and
    /// `P`. With `e = eps`: `TP + FP = P + 2e`, `TP + FN = Y + 2e`, `TN + FP = n - Y + 2e`,
    /// `TN + FN = n - P + 2e`, so the denominator does not depend on `I`, and
    /// `d num / d I = TP + TN + FP + FN = n + 4e`, `d num / d P = -(TP + FN)`.
    fn score(&self, &[i, p, y]: &[f64; 3], n: f64) -> Scored {
        let e = self.eps;
        let (tp, fp, false_negatives) = (i + e, p - i + e, y - i + e);
        let tn = n - p - y + i + e;
        let denominator = ((tp + fp) * (tp + false_negatives)).sqrt()
            * ((tn + fp) * (tn + false_negatives)).sqrt();
        let mcc = (tp * tn - fp * false_negatives) / denominator;
        Scored {
            loss: 1.0 - mcc,
            d_first: -(n + 4.0 * e) / denominator,
            d_predicted: (y + 2.0 * e) / denominator
                + mcc * 0.5 * (1.0 / (p + 2.0 * e) - 1.0 / (n - p + 2.0 * e)),
        }
    }
}
