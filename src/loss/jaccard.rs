//! The soft Jaccard loss.

use burn::config::Config;
use burn::tensor::Tensor;

use crate::engine::Plan;
use crate::loss::description::{LossDescription, compute};
use crate::loss::overlap::{
    OverlapOptions, Ratio, batch_width, check_params, overlap_options, overlap_plan,
};
use crate::{Aggregation, Execution, Reduction, SegLossError};

/// Options of [`soft_jaccard`]. Same fields and defaults as
/// [`SoftDiceConfig`](crate::losses::SoftDiceConfig).
#[derive(Config, Debug)]
pub struct SoftJaccardConfig {
    /// Added to the numerator, `I + smooth_nr` (default `1e-5`). Must be >= 0.
    #[config(default = 1e-5)]
    pub smooth_nr: f64,
    /// Added to the denominator, `|p| + |y| - I + smooth_dr` (default `1e-5`). Must be >= 0.
    #[config(default = 1e-5)]
    pub smooth_dr: f64,
    /// `false` (default): `|p| = sum(p)`, `|y| = sum(y)`; `true`: `sum(p^2)` and `sum(y^2)`.
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
    targets: Tensor<D>,
    config: &SoftJaccardConfig,
) -> Result<Tensor<1>, SegLossError> {
    compute(config, logits, targets)
}

impl SoftJaccardConfig {
    /// The options as the overlap body takes them.
    fn options(&self) -> OverlapOptions {
        overlap_options!(self, squared: self.squared)
    }
}

impl LossDescription for SoftJaccardConfig {
    type Targets<const D: usize> = Tensor<D>;

    /// The checks of the options alone: smoothing `>= 0` and finite, `soft_label` only with
    /// `squared = false`.
    fn validate(&self) -> Result<(), SegLossError> {
        check_params(&self.options().params(Ratio::JACCARD))
    }

    fn plan<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: Tensor<D>,
        share: bool,
    ) -> Result<Plan<D>, SegLossError> {
        self.validate()?;
        overlap_plan(logits, targets, Ratio::JACCARD, &self.options(), share)
    }

    fn shared_widths(&self, _classes: usize) -> Vec<usize> {
        batch_width(self.aggregation)
    }
}
