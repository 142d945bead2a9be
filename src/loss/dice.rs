//! The soft Dice loss.

use burn::config::Config;
use burn::tensor::Tensor;

use crate::engine::Plan;
use crate::loss::description::{LossDescription, compute};
use crate::loss::overlap::{
    OverlapOptions, Ratio, batch_width, check_params, overlap_options, overlap_plan,
};
use crate::{Aggregation, Execution, Reduction, SegLossError};

/// Options of [`soft_dice`]. Defaults follow MONAI's `DiceLoss`.
#[derive(Config, Debug)]
pub struct SoftDiceConfig {
    /// Added to the numerator, `2I + smooth_nr` (default `1e-5`, MONAI's). Must be >= 0.
    #[config(default = 1e-5)]
    pub smooth_nr: f64,
    /// Added to the denominator, `|p| + |y| + smooth_dr` (default `1e-5`). Must be >= 0.
    /// With both smoothing terms equal, an empty target predicted empty scores loss 0.
    #[config(default = 1e-5)]
    pub smooth_dr: f64,
    /// `false` (default): `|p| = sum(p)`, `|y| = sum(y)`; `true`: `sum(p^2)` and `sum(y^2)`
    /// (Milletari's V-Net form, MONAI's `squared_pred`).
    #[config(default = false)]
    pub squared: bool,
    /// `false` (default): `I = sum(p y)`; `true`: `I = (sum(p) + sum(y) - sum|p - y|) / 2`,
    /// the L1 form of Wang & Blaschko (MONAI's and smp's `soft_label`): the same value for
    /// hard targets (and the same gradient, except at probabilities of exactly 0 or 1, where
    /// `|p - y|` has a kink), and for soft targets the loss is minimal at `p = y`, where with
    /// `sum(p y)` it is not. Needs `squared = false`.
    #[config(default = false)]
    pub soft_label: bool,
    /// `false` (default): `loss = 1 - score`; `true`: `loss = -ln(max(score, 1e-7))` (smp's
    /// `log_loss`; steeper for poor scores, the floor keeps it finite).
    #[config(default = false)]
    pub log_loss: bool,
    /// Statistics per image (default) or over the whole batch.
    #[config(default = "Aggregation::PerImage")]
    pub aggregation: Aggregation,
    /// `true` (default): inputs are logits and `p = sigmoid(x)`; `false`: probabilities.
    #[config(default = true)]
    pub from_logits: bool,
    /// How the per-image losses are combined (default [`Reduction::Mean`]).
    #[config(default = "Reduction::Mean")]
    pub reduction: Reduction,
    /// Host kernels or burn operations (default [`Execution::Auto`]: host kernels on the CPU
    /// backends).
    #[config(default = "Execution::Auto")]
    pub execution: Execution,
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
    targets: Tensor<D>,
    config: &SoftDiceConfig,
) -> Result<Tensor<1>, SegLossError> {
    compute(config, logits, targets)
}

impl SoftDiceConfig {
    /// The options as the overlap body takes them.
    fn options(&self) -> OverlapOptions {
        overlap_options!(self, squared: self.squared)
    }
}

impl LossDescription for SoftDiceConfig {
    type Targets<const D: usize> = Tensor<D>;

    /// Smoothing `>= 0` and finite, `soft_label` only with `squared = false`.
    fn validate(&self) -> Result<(), SegLossError> {
        check_params(&self.options().params(Ratio::DICE))
    }

    fn plan<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: Tensor<D>,
        share: bool,
    ) -> Result<Plan<D>, SegLossError> {
        self.validate()?;
        overlap_plan(logits, targets, Ratio::DICE, &self.options(), share)
    }

    fn shared_widths(&self, _classes: usize) -> Vec<usize> {
        batch_width(self.aggregation)
    }
}
