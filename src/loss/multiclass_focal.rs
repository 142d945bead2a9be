//! The multiclass (softmax) and multilabel (sigmoid per channel) focal loss.

use burn::config::Config;
use burn::tensor::Tensor;

use crate::check;
use crate::engine::softmax::log_softmax;
use crate::engine::{Plan, runs_on_host};
use crate::error::SegLossError;
use crate::kernels::multiclass::heads::HeadKind;
use crate::loss::classes::{
    ClassMode, ClassTargets, check_class_weights, class_host_plan, class_rows, class_weights,
    weighted_mean,
};
use crate::loss::cross_entropy::MIN_PROB;
use crate::loss::description::{LossDescription, compute};
use crate::loss::focal::focal_terms;
use crate::loss::pixel_weights::{WeightedClassTargets, weighted};
use crate::options::{Execution, Reduction};

/// How [`multiclass_focal`] averages its pixel terms.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum PixelAverage {
    /// The mean over each image's counted (not ignored) pixels: one loss per image (MONAI's
    /// `FocalLoss` per image; with unit class weights and nothing ignored, the mean of these is
    /// torch's `cross_entropy` mean).
    PerImage,
    /// torch's `cross_entropy(weight=w, reduction="mean")`: `sum_i l_i / sum_i w_(y_i)` over
    /// the counted pixels of the whole batch, `l_i` the pixel's (weighted) term and `w_(y_i)`
    /// the weight of its true class (index targets); with per-class targets torch divides by
    /// the number of counted pixels instead, and so does this. One loss for the batch (so
    /// `Reduction::None` returns `[1]`); 0, with zero gradient, when nothing is counted (where
    /// torch gives NaN).
    TorchWeighted,
}

/// Options of [`multiclass_focal`]. Defaults follow MONAI's `FocalLoss(use_softmax=True)`.
#[derive(Config, Debug)]
pub struct MulticlassFocalConfig {
    /// The focusing exponent (default `2.0`; `0` gives the cross-entropy). Must be >= 0.
    #[config(default = 2.0)]
    pub gamma: f64,
    /// Per-class weights `w_c` (length `C`, each >= 0; default `None`: all 1), the multiclass
    /// form of the focal `alpha` (MONAI's `weight`).
    #[config(default = "None")]
    pub class_weights: Option<Vec<f64>>,
    /// Softmax over the channels (default) or a sigmoid per channel.
    #[config(default = "ClassMode::Softmax")]
    pub mode: ClassMode,
    /// `true` (default): class 0 contributes; `false`: its term is left out (after the
    /// softmax).
    #[config(default = true)]
    pub include_background: bool,
    /// A class index whose pixels are left out (default `None`; index targets only): the
    /// per-image mean runs over the other pixels.
    #[config(default = "None")]
    pub ignore_index: Option<i64>,
    /// torch's `label_smoothing` `e` (default `0`; in `[0, 1]`; softmax only): the targets of
    /// the counted pixels become `(1 - e) y + e / C`, so the cross-entropy of a pixel is
    /// `(1 - e) w_y (-ln p_y) + (e / C) sum_c w_c (-ln p_c)`, torch's formula. Runs as burn
    /// operations on every backend (the host kernel has no smoothing).
    #[config(default = 0.0)]
    pub label_smoothing: f64,
    /// The mean over each image's pixels (default) or torch's weighted mean over the batch
    /// ([`PixelAverage::TorchWeighted`], so that a torch training script ports unchanged; burn
    /// operations on every backend).
    #[config(default = "PixelAverage::PerImage")]
    pub pixel_average: PixelAverage,
    /// `true` (default): inputs are logits; `false`: per-class probabilities.
    #[config(default = true)]
    pub from_logits: bool,
    /// How the per-image losses are combined (default [`Reduction::Mean`]).
    #[config(default = "Reduction::Mean")]
    pub reduction: Reduction,
    /// Host kernel or burn operations (default [`Execution::Auto`], as for
    /// [`multiclass_overlap`](crate::losses::multiclass_overlap)).
    #[config(default = "Execution::Auto")]
    pub execution: Execution,
}

/// Multiclass or multilabel focal loss (Lin et al. 2017; beyond the paper). Per image, the
/// mean over its (non-ignored) pixels `i` of `sum_c w_c t_ic`, with
///
/// - softmax: `t_ic = -max(1 - p_ic, m)^gamma * y_ic * ln p_ic`, `ln p` from `log_softmax`
///   (from probabilities: `ln max(p, m)`), `m = 1.2e-38`: for one-hot targets the focal
///   cross-entropy of the true class;
/// - multilabel: `t_ic` the binary [`focal`](crate::losses::focal) term of channel `c`
///   (MONAI's `exp(gamma log_sigmoid(-x (2y - 1))) * ce` from logits);
///
/// and `w_c = 0` for class 0 when `!include_background` (its probability still takes part in
/// the softmax, as in MONAI's `DiceLoss`; MONAI's `FocalLoss(include_background=False)`
/// drops channel 0 before its softmax instead);
///
/// then reduced over images. The sum over classes makes `gamma = 0` the usual multiclass
/// cross-entropy; MONAI's `FocalLoss(use_softmax=True, reduction="mean")` averages over the
/// class axis as well, so its value is ours divided by the number of classes kept. Targets
/// are class indices `[N, 1, ...]` or per-class values `[N, C, ...]`, as for
/// [`multiclass_overlap`](crate::losses::multiclass_overlap), and runs as it does: one fused
/// host kernel on flex and ndarray, burn operations (no read to the host) elsewhere.
///
/// # Device path
/// On wgpu: burn operations that burn's fusion fuses, no read to the host; with class weights
/// other than 1, one upload of the weights (C values). Kernel counts: the
/// [device-path table](crate::losses#device-path).
///
/// With `gamma = 0`, `label_smoothing` and [`PixelAverage::TorchWeighted`] this is torch's
/// `cross_entropy(weight, ignore_index, label_smoothing)`, tested against it.
///
/// # Errors
/// Rank < 2, a zero-sized dimension, mismatched target shape or device, `gamma` negative or
/// beyond the f32 range, a negative or non-finite class weight or one of the wrong count,
/// `ignore_index` with per-class targets, `include_background = false` with one class,
/// `label_smoothing` outside `[0, 1]`, or above 0 with [`ClassMode::Multilabel`].
///
/// ```
/// # #[cfg(feature = "flex")] {
/// use burn::tensor::{Device, Int, Tensor};
/// use segloss::losses::{multiclass_focal, MulticlassFocalConfig};
/// let device = Device::flex();
/// let logits = Tensor::<3>::from_floats([[[3.0, -1.0], [0.0, 2.0]]], &device);
/// let classes = Tensor::<3, Int>::from_ints([[[0, 1]]], &device);
/// let focal = multiclass_focal(logits.clone(), classes.clone(), &MulticlassFocalConfig::new());
/// let ce = multiclass_focal(logits, classes, &MulticlassFocalConfig::new().with_gamma(0.0));
/// // Both pixels are right: focusing shrinks the loss well below the cross-entropy.
/// assert!(focal.unwrap().into_scalar::<f32>() < 0.1 * ce.unwrap().into_scalar::<f32>());
/// # }
/// ```
pub fn multiclass_focal<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<WeightedClassTargets<D>>,
    config: &MulticlassFocalConfig,
) -> Result<Tensor<1>, SegLossError> {
    compute(config, logits, targets.into())
}

impl MulticlassFocalConfig {
    /// The targets with torch's label smoothing, `(1 - e) y + e / C` on the counted pixels
    /// (`valid` `[N, 1, P]`; `None`: all).
    fn smoothed(&self, y: Tensor<3>, valid: Option<Tensor<3>>, classes: usize) -> Tensor<3> {
        let e = self.label_smoothing;
        if e == 0.0 {
            return y;
        }
        let share = e / classes as f64;
        let y = y.mul_scalar(1.0 - e);
        match valid {
            Some(valid) => {
                let dims = y.dims();
                y + valid.mul_scalar(share).expand(dims)
            }
            None => y.add_scalar(share),
        }
    }
}

impl LossDescription for MulticlassFocalConfig {
    type Targets<const D: usize> = WeightedClassTargets<D>;

    /// The checks of the options alone: `gamma >= 0` and finite, class weights `>= 0` and
    /// finite (their count is checked against the logits' channels in each call).
    fn validate(&self) -> Result<(), SegLossError> {
        check::non_negative("gamma", self.gamma)?;
        check::closed_unit("label_smoothing", self.label_smoothing)?;
        if self.label_smoothing > 0.0 && self.mode == ClassMode::Multilabel {
            return Err(SegLossError::InvalidOption {
                name: "label_smoothing",
                value: format!("{}", self.label_smoothing),
                allowed: "0 with ClassMode::Multilabel (torch smooths the classes of a softmax)",
            });
        }
        check_class_weights(self.class_weights.as_deref())
    }

    fn plan<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: WeightedClassTargets<D>,
        _share: bool,
    ) -> Result<Plan<D>, SegLossError> {
        self.validate()?;
        check::batch_shape(&logits, "logits")?;
        let (n, classes) = (logits.dims()[0], logits.dims()[1]);
        let weights = class_weights(
            self.class_weights.as_deref(),
            self.include_background,
            classes,
        )?;
        let (logits, targets, pixel_weights) = targets.checked(logits, self.ignore_index)?;
        let torch_mean = self.pixel_average == PixelAverage::TorchWeighted;
        let plain = self.label_smoothing == 0.0 && !torch_mean;
        if plain && runs_on_host(self.execution, &logits, targets.is_tracked())? {
            let head = HeadKind::Focal {
                gamma: self.gamma,
                weights,
            };
            return Ok(class_host_plan(
                logits,
                (targets, pixel_weights),
                self.mode,
                self.from_logits,
                self.ignore_index,
                head,
                self.reduction,
            ));
        }
        let indexed = matches!(targets, ClassTargets::Indices(_));
        let (x, y, valid) = class_rows(logits, targets, self.ignore_index)?;
        // torch's denominator: the true classes' weights (index targets), before smoothing.
        let true_weights = (torch_mean && indexed).then(|| y.clone());
        let y = self.smoothed(y, valid.clone(), classes);
        let terms = match self.mode {
            ClassMode::Softmax => {
                let log_p = if self.from_logits {
                    log_softmax(x, 1)
                } else {
                    x.clamp_min(MIN_PROB).log()
                };
                if self.gamma == 0.0 {
                    // The cross-entropy: no modulating factor (it is 1), and no branch of it in
                    // the backward for burn's fusion to schedule.
                    y.mul(log_p).neg()
                } else {
                    // (1 - p)^gamma = exp(gamma ln max(1 - p, m)): finite, with zero gradient
                    // where p rounds to 1.
                    let modulating = log_p
                        .clone()
                        .exp()
                        .neg()
                        .add_scalar(1.0)
                        .clamp_min(MIN_PROB)
                        .log()
                        .mul_scalar(self.gamma)
                        .exp();
                    modulating.mul(y).mul(log_p).neg()
                }
            }
            ClassMode::Multilabel => focal_terms(x, y, self.gamma, self.from_logits),
        };
        let full = terms.dims();
        // Unit weights (the default) multiply nothing: no upload, one operation less to fuse.
        let w = (!weights.iter().all(|&w| w == 1.0)).then(|| {
            crate::engine::host::upload(weights, [1, classes, 1], &terms.device(), terms.dtype())
                .expand(full)
        });
        let terms = match &w {
            Some(w) => terms.mul(w.clone()),
            None => terms,
        };
        // [N, P]: the loss of every pixel, summed over the classes, times its pixel weight (the
        // denominators below do not change: torch's `weight` argument).
        let per_pixel = terms.sum_dim(1).reshape([n, full[2]]);
        let pixel_weights = pixel_weights.map(|w| w.reshape([n, full[2]]));
        let per_pixel = weighted(per_pixel, pixel_weights.as_ref());
        if torch_mean {
            let mean = torch_weighted_mean(per_pixel, true_weights, w.as_ref(), valid.as_ref());
            return Ok(Plan::Computed(self.reduction.apply(mean)));
        }
        let per_image = match valid {
            None => per_pixel.mean_dim(1).reshape([n]),
            // The mean over the counted pixels; an image with all of them ignored scores 0.
            Some(valid) => weighted_mean(per_pixel, valid.reshape([n, full[2]])),
        };
        Ok(Plan::Computed(self.reduction.apply(per_image)))
    }
}

/// torch's weighted mean of the pixel terms `per_pixel` `[N, P]` over the batch
/// ([`PixelAverage::TorchWeighted`]): their sum over the sum of the true classes' weights
/// (`true_classes`, the one-hot targets `[N, C, P]` of index targets, times the class weights
/// `weights`, all 1 when `None`), or over the number of counted pixels (`valid` `[N, 1, P]`,
/// all when `None`) for per-class targets. 0, with zero gradient, when nothing is counted.
fn torch_weighted_mean(
    per_pixel: Tensor<2>,
    true_classes: Option<Tensor<3>>,
    weights: Option<&Tensor<3>>,
    valid: Option<&Tensor<3>>,
) -> Tensor<1> {
    let counted = match (true_classes, weights, valid) {
        (Some(y), Some(w), _) => y.mul(w.clone()).sum(),
        (Some(y), None, _) => y.sum(),
        (None, _, Some(valid)) => valid.clone().sum(),
        (None, _, None) => per_pixel.ones_like().sum(),
    };
    let none = counted.clone().lower_equal_elem(0.0);
    per_pixel
        .sum()
        .mask_fill(none.clone(), 0.0)
        .div(counted.mask_fill(none, 1.0))
}
