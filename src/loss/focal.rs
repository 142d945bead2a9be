//! The binary focal loss.

use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::activation::log_sigmoid;

use crate::check;
use crate::loss::description::{LossDescription, compute};
use crate::loss::pixel_weights::{BinaryTargets, weighted};

use crate::engine::{Plan, runs_on_host};
use crate::error::SegLossError;
use crate::kernels::focal::FocalParams;
use crate::loss::cross_entropy::{MIN_PROB, log_likelihood_terms, pixel_count};
use crate::options::{Execution, Reduction};
use crate::tensors::{row_sums, rows};

/// Options of [`focal`]. Defaults follow MONAI's `FocalLoss` and smp's `FocalLoss`
/// (`gamma = 2`, no `alpha`).
#[derive(Config, Debug)]
pub struct FocalConfig {
    /// The focusing exponent (default `2.0`): the cross-entropy of each pixel is scaled by
    /// `(1 - p_t)^gamma`, so well-classified pixels count less. `0` gives
    /// [`binary_cross_entropy`](crate::losses::binary_cross_entropy). Must be >= 0.
    #[config(default = 2.0)]
    pub gamma: f64,
    /// Class balance (default `None`: no weighting): foreground pixels weighted by `alpha`,
    /// background pixels by `1 - alpha` (Lin et al. use 0.25). Must lie in `[0, 1]`.
    #[config(default = "None")]
    pub alpha: Option<f64>,
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

/// Binary focal loss (Lin et al. 2017): the cross-entropy of each pixel scaled down where the
/// prediction is already right. Per image, the mean over its pixels of
///
/// `alpha_t * m * ce`, with `ce = -y ln p - (1 - y) ln(1 - p)` (as in
/// [`binary_cross_entropy`](crate::losses::binary_cross_entropy)),
/// `alpha_t = alpha y + (1 - alpha)(1 - y)` (1 without `alpha`) and
///
/// - from logits: `m = sigmoid(-x (2y - 1))^gamma`, computed as
///   `exp(gamma * log_sigmoid(-x (2y - 1)))` so that it and its gradient stay finite for
///   logits up to ±1e4 (MONAI's form);
/// - from probabilities: `m = max(b, 1.2e-38)^gamma` with `b = p + y - 2 p y`.
///
/// For hard targets both are `(1 - p_t)^gamma`, `p_t` the probability of the true class: the
/// paper's CE with `gamma = 0`. For soft targets they differ (MONAI defines only the first).
/// Then reduced over images. Matches MONAI `FocalLoss(use_softmax=False, gamma, alpha)` with
/// `Reduction::Mean`; smp's `FocalLoss("binary")` uses `pt = exp(-ce)`, the same for hard
/// targets.
///
/// # Device path
/// On wgpu: burn operations that burn's fusion fuses, no read to the host, no upload; the
/// kernel counts are in the [device-path table](crate::losses#device-path).
///
/// # Errors
/// Shape mismatch, rank < 2, a zero-sized dimension, different devices, `gamma < 0`, `alpha`
/// outside `[0, 1]`, and the [refused inputs](crate::losses#inputs-every-loss-refuses-or-widens) (channels, targets
/// outside `[0, 1]`).
///
/// ```
/// # #[cfg(feature = "flex")] {
/// use burn::tensor::{Device, Tensor};
/// use segloss::losses::{focal, FocalConfig};
/// let device = Device::flex();
/// // p_t = sigmoid(2) for both pixels: the loss is (1 - p_t)^2 * ln(1 + e^-2).
/// let logits = Tensor::<2>::from_floats([[2.0, -2.0]], &device);
/// let targets = Tensor::<2>::from_floats([[1.0, 0.0]], &device);
/// let loss = focal(logits, targets, &FocalConfig::new()).unwrap().into_scalar::<f32>();
/// let p_t = 1.0 / (1.0 + (-2.0f32).exp());
/// assert!((loss - (1.0 - p_t).powi(2) * (1.0 + (-2.0f32).exp()).ln()).abs() < 1e-6);
/// # }
/// ```
pub fn focal<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<BinaryTargets<D>>,
    config: &FocalConfig,
) -> Result<Tensor<1>, SegLossError> {
    compute(config, logits, targets.into())
}

/// The per-element focal term `m * ce` (without `alpha_t`) as burn operations, for any shape:
/// the device path of [`focal`] and the multilabel mode of
/// [`multiclass_focal`](crate::losses::multiclass_focal).
pub(crate) fn focal_terms<const D: usize>(
    x: Tensor<D>,
    y: Tensor<D>,
    gamma: f64,
    from_logits: bool,
) -> Tensor<D> {
    let (pos, neg) = log_likelihood_terms(x.clone(), from_logits);
    let ce = y.clone().mul(pos) + y.clone().neg().add_scalar(1.0).mul(neg);
    let log_modulating = if from_logits {
        // log sigmoid(u), u = -x (2y - 1).
        log_sigmoid(x.mul(y.mul_scalar(2.0).sub_scalar(1.0)).neg())
    } else {
        // ln max(b, m), b = p + y - 2py = p (1 - 2y) + y.
        x.mul(y.clone().mul_scalar(-2.0).add_scalar(1.0))
            .add(y)
            .clamp_min(MIN_PROB)
            .log()
    };
    log_modulating.mul_scalar(gamma).exp().mul(ce)
}

impl LossDescription for FocalConfig {
    type Targets<const D: usize> = BinaryTargets<D>;

    /// The checks of the options alone: `gamma >= 0` (finite), `alpha` in `[0, 1]`.
    fn validate(&self) -> Result<(), SegLossError> {
        check::non_negative("gamma", self.gamma)?;
        if let Some(alpha) = self.alpha {
            check::closed_unit("alpha", alpha)?;
        }
        Ok(())
    }

    fn plan<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: BinaryTargets<D>,
        _share: bool,
    ) -> Result<Plan<D>, SegLossError> {
        self.validate()?;
        let (logits, targets, weights) = targets.checked(logits)?;
        let params = FocalParams {
            gamma: self.gamma,
            alpha: self.alpha,
            from_logits: self.from_logits,
        };
        if runs_on_host(self.execution, &logits, targets.is_tracked())? {
            return Ok(Plan::host(logits, targets, weights, self.reduction, params));
        }
        let y = rows(targets);
        let mut pixel = focal_terms(rows(logits), y.clone(), self.gamma, self.from_logits);
        if let Some(alpha) = self.alpha {
            pixel = y
                .mul_scalar(2.0 * alpha - 1.0)
                .add_scalar(1.0 - alpha)
                .mul(pixel);
        }
        let pixel = weighted(pixel, weights.map(rows).as_ref());
        let count = pixel_count(&pixel);
        Ok(Plan::Computed(
            self.reduction.apply(row_sums(pixel).div_scalar(count)),
        ))
    }
}
