//! The Tversky loss.

use burn::tensor::Tensor;

use crate::check;
use crate::engine::Plan;
use crate::error::SegLossError;
use crate::kernels::overlap::OverlapParams;
use crate::loss::description::{LossDescription, compute};
use crate::loss::overlap::{Ratio, batch_width, check_params, overlap_config, overlap_plan};
use crate::loss::pixel_weights::BinaryTargets;
use crate::options::{Aggregation, Execution, Reduction};

overlap_config! {
    /// Options of [`tversky`]. Defaults follow MONAI's `TverskyLoss` (`alpha = beta = 0.5`).
    pub struct TverskyConfig {
        /// Weight of the false positives `FP = sum(p) - I` (default `0.5`). Must be >= 0.
        #[config(default = 0.5)]
        pub alpha: f64,

        /// Weight of the false negatives `FN = sum(y) - I` (default `0.5`). Must be >= 0. Raising
        /// `beta` above `alpha` trades precision for recall (Salehi et al. 2017 use 0.3 / 0.7).
        #[config(default = 0.5)]
        pub beta: f64,

        /// The focal exponent (default `1`: the plain Tversky loss): the loss of each problem
        /// (image, or batch) becomes `loss^gamma`, Abraham & Khan's focal Tversky loss, which
        /// with `gamma < 1` weighs poorly segmented images up (they suggest `gamma = 3/4`,
        /// written `1/γ` with `γ = 4/3`). smp's `TverskyLoss(gamma)` with
        /// [`Aggregation::Batch`]. Must be > 0 and finite. A loss of 0 (a perfect match) stays
        /// 0 with zero gradient, where `gamma < 1` would make the derivative infinite.
        #[config(default = 1.0)]
        pub gamma: f64,
    }
}

/// Tversky loss (Salehi et al. 2017): the soft Tversky index, which weighs false positives
/// and false negatives separately. Per image (or over the batch with [`Aggregation::Batch`]):
///
/// `loss = (1 - (I + smooth_nr) / (I + alpha FP + beta FN + smooth_dr))^gamma`
///
/// with `p = sigmoid(x)`, `I = sum(p y)`, `FP = sum(p) - I = sum(p (1 - y))`,
/// `FN = sum(y) - I = sum((1 - p) y)`. Without smoothing, `alpha = beta = 1/2` gives the soft
/// Dice loss and `alpha = beta = 1` the soft Jaccard loss (with smoothing, the smoothing terms
/// scale differently: [`soft_dice`](crate::losses::soft_dice) adds them to `2I` and
/// `|p| + |y|`). On hard predictions the index is `TP / (TP + alpha FP + beta FN)`, the
/// weighted form of Eq. 1. Matches MONAI `TverskyLoss(sigmoid=True, alpha, beta, smooth_nr,
/// smooth_dr, batch, soft_label)`. `soft_label` and `log_loss` work as for soft Dice. A zero
/// denominator counts as a perfect match, loss 0; it needs `smooth_dr = 0` and a zero
/// intersection, and then both masks all-zero, or, with `alpha = 0` or `beta = 0`, the
/// prediction or the target alone (where an f32 sigmoid rounds to exactly 0, which happens on
/// the device path below -104 and never in the host kernel, so the two paths can differ
/// there).
///
/// # Device path
/// On wgpu: burn operations that burn's fusion fuses, no read to the host, no upload; the
/// kernel counts are in the [device-path table](crate::losses#device-path).
///
/// # Errors
/// Shape mismatch, rank < 2, a zero-sized dimension, different devices, negative `alpha`,
/// `beta` or smoothing, `gamma <= 0`, and the [refused inputs](crate::losses#inputs-every-loss-refuses-or-widens) (channels,
/// targets outside `[0, 1]`).
///
/// ```
/// # #[cfg(feature = "flex")] {
/// use burn::tensor::{Device, Tensor};
/// use segloss::losses::{tversky, TverskyConfig};
/// let device = Device::flex();
/// // One pixel missed (a false negative): beta = 0.7 costs more than alpha = 0.7 would.
/// let logits = Tensor::<2>::from_floats([[20.0, -20.0, -20.0]], &device);
/// let targets = Tensor::<2>::from_floats([[1.0, 1.0, 0.0]], &device);
/// let config = TverskyConfig::new().with_alpha(0.3).with_beta(0.7).with_smooth_nr(0.0).with_smooth_dr(0.0);
/// let loss = tversky(logits, targets, &config).unwrap().into_scalar::<f32>();
/// assert!((loss - (1.0 - 1.0 / 1.7)).abs() < 1e-6);
/// # }
/// ```
pub fn tversky<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<BinaryTargets<D>>,
    config: &TverskyConfig,
) -> Result<Tensor<1>, SegLossError> {
    compute(config, logits, targets.into())
}

impl TverskyConfig {
    /// The kernel's view of the options.
    fn params(&self) -> OverlapParams {
        OverlapParams {
            gamma: self.gamma,
            ..self.overlap_params(Ratio::tversky(self.alpha, self.beta), false)
        }
    }
}

impl LossDescription for TverskyConfig {
    type Targets<const D: usize> = BinaryTargets<D>;

    /// The checks of the options alone: `alpha`, `beta` and the smoothing `>= 0` and finite.
    fn validate(&self) -> Result<(), SegLossError> {
        check::non_negative("alpha", self.alpha)?;
        check::non_negative("beta", self.beta)?;
        check_params(&self.params())
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
            self.params(),
            (self.reduction, self.execution),
            share,
        )
    }

    fn shared_widths(&self, _classes: usize) -> Vec<usize> {
        batch_width(self.aggregation)
    }
}
