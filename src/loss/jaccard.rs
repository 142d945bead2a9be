//! The soft Jaccard loss.

use burn::tensor::Tensor;

use crate::engine::Plan;
use crate::error::SegLossError;
use crate::loss::description::{LossDescription, compute};
use crate::loss::overlap::{Ratio, batch_width, check_params, overlap_config, overlap_plan};
use crate::loss::pixel_weights::BinaryTargets;
use crate::options::{Aggregation, Execution, Reduction};

overlap_config! {
    /// Options of [`soft_jaccard`]. Same fields and defaults as
    /// [`SoftDiceConfig`](crate::losses::SoftDiceConfig).
    pub struct SoftJaccardConfig {
        /// `false` (default): `|p| = sum(p)`, `|y| = sum(y)`; `true`: `sum(p^2)` and `sum(y^2)`.
        #[config(default = false)]
        pub squared: bool,
    }
}

/// Soft Jaccard loss: the Jaccard index of Eq. 1 relaxed to probabilities (Sect. 2 of
/// Bertels et al.; Rahman & Wang's soft IoU).
///
/// Per image (or over the batch with [`Aggregation::Batch`]):
///
/// `loss = 1 - (sum(p * y) + smooth_nr) / (sum(p) + sum(y) - sum(p * y) + smooth_dr)`
///
/// with `p = sigmoid(x)` (`sum(p^2)`, `sum(y^2)` when `squared`). On hard predictions it is
/// exactly `1 - J`; since `J <= D` (Eq. 4) it is never below the soft Dice loss on hard
/// targets without smoothing. Matches smp `JaccardLoss(mode="binary", smooth=s)` with batch
/// aggregation; note that MONAI's `DiceLoss(jaccard=True)` puts a factor 2 on both sides
/// (`(2I + s_nr) / (2(|p| + |y| - I) + s_dr)`), the same loss up to where the smoothing goes.
/// A denominator of 0 (both all-zero, `smooth_dr = 0`) counts as a perfect match, loss 0.
///
/// With `soft_label`, `sum(p * y)` becomes `(sum(p) + sum(y) - sum|p - y|) / 2`; with
/// `log_loss`, `1 - score` becomes `-ln(max(score, 1e-7))`.
///
/// # Device path
/// On wgpu: burn operations that burn's fusion fuses, no read to the host, no upload; the
/// kernel counts are in the [device-path table](crate::losses#device-path).
///
/// # Errors
/// Shape mismatch, rank < 2, a zero-sized dimension, different devices, negative smoothing,
/// `soft_label` together with `squared`, and the [refused inputs](crate::losses#inputs-every-loss-refuses-or-widens)
/// (channels, targets outside `[0, 1]`).
pub fn soft_jaccard<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<BinaryTargets<D>>,
    config: &SoftJaccardConfig,
) -> Result<Tensor<1>, SegLossError> {
    compute(config, logits, targets.into())
}

impl LossDescription for SoftJaccardConfig {
    type Targets<const D: usize> = BinaryTargets<D>;

    /// The checks of the options alone: smoothing `>= 0` and finite, `soft_label` only with
    /// `squared = false`.
    fn validate(&self) -> Result<(), SegLossError> {
        check_params(&self.overlap_params(Ratio::JACCARD, self.squared))
    }

    fn plan<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: BinaryTargets<D>,
        share: bool,
    ) -> Result<Plan<D>, SegLossError> {
        self.validate()?;
        overlap_plan(
            logits,
            targets,
            self.overlap_params(Ratio::JACCARD, self.squared),
            (self.reduction, self.execution),
            share,
        )
    }

    fn shared_widths(&self, _classes: usize) -> Vec<usize> {
        batch_width(self.aggregation)
    }
}
