//! The soft Dice loss.

use burn::tensor::Tensor;

use crate::engine::Plan;
use crate::error::SegLossError;
use crate::loss::description::{LossDescription, compute};
use crate::loss::overlap::{Ratio, batch_width, check_params, overlap_config, overlap_plan};
use crate::loss::pixel_weights::BinaryTargets;
use crate::options::{Aggregation, Execution, Reduction};

overlap_config! {
    /// Options of [`soft_dice`]. Defaults follow MONAI's `DiceLoss`.
    pub struct SoftDiceConfig {
        /// `false` (default): `|p| = sum(p)`, `|y| = sum(y)`; `true`: `sum(p^2)` and `sum(y^2)`
        /// (Milletari's V-Net form, MONAI's `squared_pred`).
        #[config(default = false)]
        pub squared: bool,
    }
}

/// Soft Dice loss: the Dice score of Eq. 1 relaxed to probabilities (Sect. 2 of Bertels et al.).
///
/// Per image (or over the batch with [`Aggregation::Batch`]):
///
/// `loss = 1 - (2 * sum(p * y) + smooth_nr) / (sum(p) + sum(y) + smooth_dr)`
///
/// with `p = sigmoid(x)`, or `sum(p^2) + sum(y^2)` in the denominator when `squared`. On hard
/// predictions it is exactly `1 - D` (Eq. 1). Values lie in `[0, 1]` when
/// `smooth_nr <= smooth_dr`. Matches MONAI `DiceLoss(sigmoid=True, smooth_nr, smooth_dr,
/// squared_pred, batch)`. A denominator of 0 (prediction and target both all-zero and
/// `smooth_dr = 0`) counts as a perfect match, loss 0.
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
///
/// ```
/// # #[cfg(feature = "flex")] {
/// use burn::tensor::{Device, Tensor};
/// use segloss::losses::{soft_dice, SoftDiceConfig};
/// let device = Device::flex();
/// let logits = Tensor::<3>::from_floats([[[9.0, -9.0], [9.0, -9.0]]], &device);
/// let targets = Tensor::<3>::from_floats([[[1.0, 0.0], [1.0, 0.0]]], &device);
/// let loss = soft_dice(logits, targets, &SoftDiceConfig::new()).unwrap();
/// assert!(loss.into_scalar::<f32>() < 1e-3);
/// # }
/// ```
pub fn soft_dice<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<BinaryTargets<D>>,
    config: &SoftDiceConfig,
) -> Result<Tensor<1>, SegLossError> {
    compute(config, logits, targets.into())
}

impl LossDescription for SoftDiceConfig {
    type Targets<const D: usize> = BinaryTargets<D>;

    /// Smoothing `>= 0` and finite, `soft_label` only with `squared = false`.
    fn validate(&self) -> Result<(), SegLossError> {
        check_params(&self.overlap_params(Ratio::DICE, self.squared))
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
            self.overlap_params(Ratio::DICE, self.squared),
            (self.reduction, self.execution),
            share,
        )
    }

    fn shared_widths(&self, _classes: usize) -> Vec<usize> {
        batch_width(self.aggregation)
    }
}
