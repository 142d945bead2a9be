//! MONAI's two compound presets as one config each: Dice + cross-entropy (`DiceCELoss`) and
//! Dice + focal (`DiceFocalLoss`). Each term is built from the preset's one set of options, so
//! the two cannot disagree (a compound whose Dice term forgot `ignore_index` would count the
//! ignored pixels as false positives).

use burn::config::Config;
use burn::tensor::Tensor;

use crate::check;
use crate::engine::Plan;
use crate::error::SegLossError;
use crate::loss::classes::check_background;
use crate::loss::description::{LossDescription, compute};
use crate::loss::multiclass::{MulticlassOverlapConfig, OverlapScore};
use crate::loss::multiclass_focal::{MulticlassFocalConfig, PixelAverage};
use crate::loss::pixel_weights::WeightedClassTargets;
use crate::loss::sum::sum_of_plans;
use crate::options::{Aggregation, ClassMode, Execution, Reduction};

/// The config of a preset: its own fields, then the options of its Dice term, which both
/// terms share where they apply, written once with their docs.
macro_rules! preset_config {
    (
        $(#[$doc:meta])*
        pub struct $name:ident {
            $($(#[$attr:meta])* pub $field:ident: $ty:ty,)*
        }
    ) => {
        $(#[$doc])*
        #[derive(Config, Debug)]
        pub struct $name {
            $($(#[$attr])* pub $field: $ty,)*
            /// The weight of the Dice term (default `1`, MONAI's `lambda_dice`). Must be >= 0.
            #[config(default = 1.0)]
            pub lambda_dice: f64,
            /// `true` (default): class 0 is scored by the Dice term like the others; `false`:
            /// it is left out of the Dice term's class average (MONAI's `include_background`).
            #[config(default = true)]
            pub include_background: bool,
            /// Per-class weights `w_c` (length `C`, each >= 0; default `None`), MONAI's
            /// `weight`: the Dice term of class `c` is multiplied by `w_c` (MONAI's Dice
            /// averages `w_c l_c` over the classes without dividing by the weights), and the
            /// other term weighs each class as described there.
            #[config(default = "None")]
            pub class_weights: Option<Vec<f64>>,
            /// A class index whose pixels are left out of both terms (default `None`; index
            /// targets only; MONAI's presets have none).
            #[config(default = "None")]
            pub ignore_index: Option<i64>,
            /// Added to the Dice numerator (default `1e-5`, MONAI's). Must be >= 0.
            #[config(default = 1e-5)]
            pub smooth_nr: f64,
            /// Added to the Dice denominator (default `1e-5`, MONAI's). Must be >= 0.
            #[config(default = 1e-5)]
            pub smooth_dr: f64,
            /// `sum(p^2) + sum(y^2)` in the Dice denominator (default `false`, MONAI's
            /// `squared_pred`).
            #[config(default = false)]
            pub squared: bool,
            /// Dice statistics per image (default) or over the batch (MONAI's `batch=True`).
            #[config(default = "Aggregation::PerImage")]
            pub aggregation: Aggregation,
            /// `true` (default): inputs are logits and `p` their softmax; `false`:
            /// probabilities.
            #[config(default = true)]
            pub from_logits: bool,
            /// How the per-image losses are combined (default [`Reduction::Mean`], the
            /// reduction under which the preset equals MONAI's).
            #[config(default = "Reduction::Mean")]
            pub reduction: Reduction,
            /// Host kernels or burn operations (default [`Execution::Auto`]: one fused host
            /// kernel for both terms on the CPU backends).
            #[config(default = "Execution::Auto")]
            pub execution: Execution,
        }

        impl $name {
            /// The Dice term and its weight in the sum: `lambda_dice` times the mean class
            /// weight of the classes it scores, which turns our weighted mean over classes
            /// (`sum_c w_c l_c / sum_c w_c`) into MONAI's unnormalised one (`mean_c w_c l_c`).
            fn dice_term(&self) -> (f64, MulticlassOverlapConfig) {
                let scale = match &self.class_weights {
                    None => 1.0,
                    Some(w) => {
                        let kept = if self.include_background || w.is_empty() {
                            &w[..]
                        } else {
                            &w[1..]
                        };
                        kept.iter().sum::<f64>() / kept.len().max(1) as f64
                    }
                };
                let config = MulticlassOverlapConfig::new()
                    .with_score(OverlapScore::Dice)
                    .with_mode(ClassMode::Softmax)
                    .with_include_background(self.include_background)
                    .with_class_weights(self.class_weights.clone())
                    .with_ignore_index(self.ignore_index)
                    .with_smooth_nr(self.smooth_nr)
                    .with_smooth_dr(self.smooth_dr)
                    .with_squared(self.squared)
                    .with_aggregation(self.aggregation)
                    .with_from_logits(self.from_logits)
                    .with_reduction(self.reduction)
                    .with_execution(self.execution);
                (self.lambda_dice * scale, config)
            }

            /// The checks both terms share: the weights of the sum, the Dice term's options.
            fn check_dice(&self) -> Result<(), SegLossError> {
                check::non_negative("lambda_dice", self.lambda_dice)?;
                self.dice_term().1.validate()
            }
        }
    };
}

preset_config! {
    /// Options of [`dice_ce`]. Defaults follow MONAI's `DiceCELoss(softmax=True,
    /// to_onehot_y=True)`.
    pub struct DiceCeConfig {
        /// The weight of the cross-entropy term (default `1`, MONAI's `lambda_ce`). Must be
        /// >= 0.
        #[config(default = 1.0)]
        pub lambda_ce: f64,
        /// torch's `label_smoothing` of the cross-entropy (default `0`; in `[0, 1]`).
        #[config(default = 0.0)]
        pub label_smoothing: f64,
    }
}

preset_config! {
    /// Options of [`dice_focal`]. Defaults follow MONAI's `DiceFocalLoss(softmax=True,
    /// to_onehot_y=True)`.
    pub struct DiceFocalConfig {
        /// The weight of the focal term (default `1`, MONAI's `lambda_focal`). Must be >= 0.
        #[config(default = 1.0)]
        pub lambda_focal: f64,
        /// The focal exponent (default `2`, MONAI's). Must be >= 0.
        #[config(default = 2.0)]
        pub gamma: f64,
    }
}

impl DiceCeConfig {
    /// The cross-entropy term: torch's `cross_entropy(weight, label_smoothing)`, over every
    /// class (MONAI's `include_background` leaves its cross-entropy alone). With class
    /// weights under [`Reduction::Mean`], torch's weighted mean over the batch (MONAI's
    /// value); otherwise the mean over each image's pixels, one value per image as the Dice
    /// term has (without class weights, their mean over images is torch's).
    fn ce_term(&self) -> (f64, MulticlassFocalConfig) {
        let average = if self.class_weights.is_some() && self.reduction == Reduction::Mean {
            PixelAverage::TorchWeighted
        } else {
            PixelAverage::PerImage
        };
        let config = MulticlassFocalConfig::new()
            .with_gamma(0.0)
            .with_class_weights(self.class_weights.clone())
            .with_include_background(true)
            .with_ignore_index(self.ignore_index)
            .with_label_smoothing(self.label_smoothing)
            .with_pixel_average(average)
            .with_from_logits(self.from_logits)
            .with_reduction(self.reduction)
            .with_execution(self.execution);
        (self.lambda_ce, config)
    }
}

impl DiceFocalConfig {
    /// The focal term: MONAI's `DiceFocalLoss` builds its `FocalLoss` without `use_softmax`,
    /// so it is the sigmoid (binary) focal loss of each channel against the one-hot targets
    /// (our multilabel mode), averaged over the kept classes as well: `lambda_focal / C_kept`
    /// times our per-image loss, which sums over the classes.
    fn focal_term(&self, classes: usize) -> (f64, MulticlassFocalConfig) {
        let kept = if self.include_background {
            classes
        } else {
            classes.saturating_sub(1)
        };
        let config = MulticlassFocalConfig::new()
            .with_gamma(self.gamma)
            .with_mode(ClassMode::Multilabel)
            .with_class_weights(self.class_weights.clone())
            .with_include_background(self.include_background)
            .with_ignore_index(self.ignore_index)
            .with_from_logits(self.from_logits)
            .with_reduction(self.reduction)
            .with_execution(self.execution);
        (self.lambda_focal / kept.max(1) as f64, config)
    }
}

/// Dice + cross-entropy as one loss, MONAI's `DiceCELoss(softmax=True, to_onehot_y=True)`:
///
/// `loss = lambda_dice * Dice + lambda_ce * CE`,
///
/// with `Dice` the [`multiclass_overlap`](crate::losses::multiclass_overlap) Dice loss (MONAI's
/// class weighting, see [`DiceCeConfig::class_weights`]) and `CE` torch's
/// `cross_entropy(weight, ignore_index, label_smoothing)` of the softmax
/// ([`multiclass_focal`](crate::losses::multiclass_focal) with `gamma = 0`), both from the one
/// set of options. On flex and ndarray both terms run as one fused host kernel (with label
/// smoothing or class weights the cross-entropy runs as burn operations). Equal to MONAI 1.6's
/// `DiceCELoss` with the same options under [`Reduction::Mean`], values and gradients (tested);
/// under the other reductions both terms are per image, the cross-entropy the mean of
/// `w_y l` over each image's pixels (torch's weighted mean, which divides by the batch's sum of
/// `w_y`, has no per-image form).
///
/// # Errors
/// Those of its two terms (see [`multiclass_overlap`](crate::losses::multiclass_overlap) and
/// [`multiclass_focal`](crate::losses::multiclass_focal)), and a negative `lambda_dice` or
/// `lambda_ce`.
///
/// ```
/// # #[cfg(feature = "flex")] {
/// use burn::tensor::{Device, Int, Tensor};
/// use segloss::losses::{dice_ce, DiceCeConfig};
/// let device = Device::flex();
/// // Two pixels, both right with a logit margin of 8: the Dice term is about 3e-4, and with
/// // label smoothing 0.1 the cross-entropy of each pixel is 0.9 ln(1 + e^-8)
/// // + 0.05 (ln(1 + e^-8) + ln(1 + e^8)).
/// let logits = Tensor::<3>::from_floats([[[4.0, -4.0], [-4.0, 4.0]]], &device);
/// let classes = Tensor::<3, Int>::from_ints([[[0, 1]]], &device);
/// let loss = dice_ce(logits, classes, &DiceCeConfig::new().with_label_smoothing(0.1)).unwrap();
/// let (right, wrong) = ((1.0 + (-8.0f32).exp()).ln(), (1.0 + 8.0f32.exp()).ln());
/// let ce = 0.9 * right + 0.05 * (right + wrong);
/// assert!((loss.into_scalar::<f32>() - ce).abs() < 1e-3);
/// # }
/// ```
pub fn dice_ce<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<WeightedClassTargets<D>>,
    config: &DiceCeConfig,
) -> Result<Tensor<1>, SegLossError> {
    compute(config, logits, targets.into())
}

/// Dice + focal as one loss, MONAI's `DiceFocalLoss(softmax=True, to_onehot_y=True)`:
///
/// `loss = lambda_dice * Dice + lambda_focal * Focal`,
///
/// with `Dice` the softmax Dice as in [`dice_ce`] and `Focal` what MONAI's preset computes:
/// its `FocalLoss(gamma, weight)` without `use_softmax`, i.e. the sigmoid focal loss of each
/// channel's logit against the one-hot targets, `w_c` times the binary
/// [`focal`](crate::losses::focal) term, averaged over the pixels and the kept classes
/// ([`multiclass_focal`](crate::losses::multiclass_focal) in [`ClassMode::Multilabel`] divided
/// by the number of classes kept). So the Dice term sees a softmax and the focal term a
/// sigmoid per channel, as in MONAI. Equal to MONAI 1.6's `DiceFocalLoss(softmax=True,
/// to_onehot_y=True)` with the same options under [`Reduction::Mean`], values and gradients
/// (tested).
///
/// # Errors
/// Those of its two terms, and a negative `lambda_dice` or `lambda_focal`.
pub fn dice_focal<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<WeightedClassTargets<D>>,
    config: &DiceFocalConfig,
) -> Result<Tensor<1>, SegLossError> {
    compute(config, logits, targets.into())
}

impl LossDescription for DiceCeConfig {
    type Targets<const D: usize> = WeightedClassTargets<D>;

    /// The checks of the options alone: both terms' options and weights.
    fn validate(&self) -> Result<(), SegLossError> {
        self.check_dice()?;
        check::non_negative("lambda_ce", self.lambda_ce)?;
        self.ce_term().1.validate()
    }

    fn plan<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: WeightedClassTargets<D>,
        share: bool,
    ) -> Result<Plan<D>, SegLossError> {
        self.validate()?;
        let (dice_weight, dice) = self.dice_term();
        let (ce_weight, ce) = self.ce_term();
        sum_of_plans(vec![
            (
                dice_weight,
                dice.plan(logits.clone(), targets.clone(), share)?,
            ),
            (ce_weight, ce.plan(logits, targets, false)?),
        ])
    }

    /// The Dice term's, with batch statistics (the cross-entropy has none).
    fn shared_widths(&self, classes: usize) -> Vec<usize> {
        self.dice_term().1.shared_widths(classes)
    }
}

impl LossDescription for DiceFocalConfig {
    type Targets<const D: usize> = WeightedClassTargets<D>;

    /// The checks of the options alone: both terms' options and weights.
    fn validate(&self) -> Result<(), SegLossError> {
        self.check_dice()?;
        check::non_negative("lambda_focal", self.lambda_focal)?;
        self.focal_term(2).1.validate()
    }

    fn plan<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: WeightedClassTargets<D>,
        share: bool,
    ) -> Result<Plan<D>, SegLossError> {
        self.validate()?;
        check::batch_shape(&logits, "logits")?;
        let classes = logits.dims()[1];
        check_background(self.include_background, classes)?;
        let (dice_weight, dice) = self.dice_term();
        let (focal_weight, focal) = self.focal_term(classes);
        sum_of_plans(vec![
            (
                dice_weight,
                dice.plan(logits.clone(), targets.clone(), share)?,
            ),
            (focal_weight, focal.plan(logits, targets, false)?),
        ])
    }

    /// The Dice term's, with batch statistics (the focal term has none).
    fn shared_widths(&self, classes: usize) -> Vec<usize> {
        self.dice_term().1.shared_widths(classes)
    }
}
