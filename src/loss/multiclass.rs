//! Multiclass (softmax) and multilabel (sigmoid per channel) soft Dice, soft Jaccard and
//! Tversky losses, with class-index or per-class targets, `include_background`, class
//! weights, `ignore_index` and averaging over all or present classes.
//!
//! The loss of each (image, class) pair is the binary overlap loss of that class's channel
//! (the same [`Ratio`] and [`loss_of_ratio`] as the binary losses); the classes are then
//! averaged per image, and the images reduced.

use burn::config::Config;
use burn::tensor::Tensor;

use crate::check;
use crate::engine::{Plan, runs_on_host};
use crate::error::SegLossError;
use crate::kernels::multiclass::heads::HeadKind;
use crate::kernels::overlap::OverlapParams;
use crate::loss::classes::{
    ClassAverage, ClassMode, check_class_weights, class_host_plan, class_sums, class_weights,
    present, probabilities_and_targets, weighted_mean,
};
use crate::loss::description::{LossDescription, compute};
use crate::loss::overlap::{
    Ratio, SoftStatistics, check_params, loss_of_statistics, overlap_config, raised,
    soft_statistics, statistics_plan,
};
use crate::loss::pixel_weights::{WeightedClassTargets, class_rows_of, weighted};
use crate::options::{Aggregation, Execution, Reduction};

/// The overlap score of a multiclass loss.
#[derive(Config, Debug, Copy, PartialEq)]
pub enum OverlapScore {
    /// `(2I + s_nr) / (|p| + |y| + s_dr)`.
    Dice,
    /// `(I + s_nr) / (|p| + |y| - I + s_dr)`.
    Jaccard,
    /// `(I + s_nr) / (I + alpha FP + beta FN + s_dr)`, the loss of an image (after the class
    /// average) raised to `gamma`: the focal Tversky loss `(sum_c m_c l_c / sum_c m_c)^gamma`
    /// (smp's `TverskyLoss(gamma)`; `gamma = 1`: the plain Tversky loss). The power comes after
    /// the average, as in smp, not per class as Abraham & Khan's `sum_c (1 - TI_c)^(1/γ)`: one
    /// badly segmented class raises the image's loss, and with `gamma < 1` the gradient of every
    /// class grows as the image's average loss falls. Raising each class's loss instead is a
    /// different loss (equal for one class).
    Tversky {
        /// Weight of the false positives (>= 0).
        alpha: f64,
        /// Weight of the false negatives (>= 0).
        beta: f64,
        /// The focal exponent (> 0; 1 for the plain Tversky loss).
        gamma: f64,
    },
}

overlap_config! {
    /// Options of [`multiclass_overlap`]. Defaults follow MONAI's `DiceLoss(softmax=True)`.
    pub struct MulticlassOverlapConfig {
        /// Dice (default), Jaccard or Tversky.
        #[config(default = "OverlapScore::Dice")]
        pub score: OverlapScore,

        /// Softmax over the channels (default) or a sigmoid per channel.
        #[config(default = "ClassMode::Softmax")]
        pub mode: ClassMode,

        /// `true` (default, MONAI's): class 0 is scored like the others; `false`: it is left out
        /// of the average (nnU-Net's `do_bg = False`; with softmax it still takes part in the
        /// normalisation).
        #[config(default = true)]
        pub include_background: bool,

        /// Per-class weights `w_c` (length `C`, each >= 0; default `None`: all 1): the per-image
        /// loss is `sum_c w_c l_c / sum_c w_c` over the averaged classes (smp's normalisation;
        /// MONAI multiplies without dividing, i.e. MONAI's value is ours times `mean(w)`).
        #[config(default = "None")]
        pub class_weights: Option<Vec<f64>>,

        /// A class index whose pixels are left out of every sum (default `None`; index targets
        /// only). It may lie outside `0..C` (255, -100).
        #[config(default = "None")]
        pub ignore_index: Option<i64>,

        /// Average over all classes (default) or over the classes present in the target.
        #[config(default = "ClassAverage::All")]
        pub average: ClassAverage,

        /// `sum(p^2)`, `sum(y^2)` in the denominator (default `false`).
        #[config(default = false)]
        pub squared: bool,
    }
}

impl MulticlassOverlapConfig {
    /// The kernel's view of the score and its options.
    fn params(&self) -> OverlapParams {
        let (ratio, gamma) = match self.score {
            OverlapScore::Dice => (Ratio::DICE, 1.0),
            OverlapScore::Jaccard => (Ratio::JACCARD, 1.0),
            OverlapScore::Tversky { alpha, beta, gamma } => (Ratio::tversky(alpha, beta), gamma),
        };
        OverlapParams {
            gamma,
            ..self.overlap_params(ratio, self.squared)
        }
    }
}

/// Multiclass or multilabel soft Dice, soft Jaccard or Tversky loss (beyond the paper, which is
/// binary).
///
/// With `p_c` the probabilities of class `c` (softmax over the channels, or a sigmoid per
/// channel) and `y_c` its targets (one-hot from class indices, or given per class), for each
/// image `n` (or once for the batch with [`Aggregation::Batch`]) and class `c`:
///
/// `l_nc = 1 - score(I_nc, |p_nc|, |y_nc|)`, `I_nc = sum(p_c y_c)`, sums over the pixels
///
/// (the same score and options as [`soft_dice`](crate::losses::soft_dice),
/// [`soft_jaccard`](crate::losses::soft_jaccard) and [`tversky`](crate::losses::tversky)),
/// then `l_n = sum_c m_c l_nc / sum_c m_c` with `m_c` the class weight, 0 for the background
/// when `!include_background`, and 0 for classes absent from the target under
/// [`ClassAverage::Present`] (`l_n = 0` when no class is left; [`ClassAverage::ZeroAbsent`]
/// keeps them in the mean with loss 0, as smp), raised to `gamma` for the focal Tversky score
/// ([`OverlapScore::Tversky`]). Pixels whose index is
/// `ignore_index` are removed from every sum. Then reduced over images.
///
/// With the defaults this is MONAI `DiceLoss(softmax=True, to_onehot_y=True)`. With
/// `Aggregation::Batch` and `soft_label`, smp's `DiceLoss`, `JaccardLoss` and `TverskyLoss`
/// (`"multiclass"` or `"multilabel"`, `smooth=s`): for Dice with `smooth_nr = smooth_dr = 2s`,
/// for the others with `s`, and [`ClassAverage::ZeroAbsent`] (smp scores an absent class 0
/// but still counts it in the mean); smp's `TverskyLoss(gamma)` is the Tversky score with that
/// `gamma`. Tested against both.
///
/// On flex and ndarray ([`Execution::Auto`]) it runs as one fused host kernel: each pixel's
/// softmax computed once per pass, in place, then the statistics, then the gradient (no
/// one-hot, no softmax tensor). Elsewhere it runs as burn operations that never read the data
/// back (the one-hot targets are built on the device by comparing the indices with a class
/// range). Both paths give the same values and gradients.
///
/// # Device path
/// On wgpu: burn operations that burn's fusion fuses, no read to the host; with class weights
/// other than 1, one upload of the weights (C values). Kernel counts: the
/// [device-path table](crate::losses#device-path).
///
/// # Errors
/// Rank < 2, a zero-sized dimension, targets whose shape is not `[N, 1, ...]` (indices) or
/// the logits' (per-class), different devices, negative smoothing, a negative or non-finite
/// class weight, `class_weights` of a length other than `C`, `ignore_index` with per-class
/// targets, `soft_label` with `squared`, a negative Tversky `alpha` or `beta`.
///
/// ```
/// # #[cfg(feature = "flex")] {
/// use burn::tensor::{Device, Int, Tensor};
/// use segloss::losses::{multiclass_overlap, MulticlassOverlapConfig};
/// let device = Device::flex();
/// // One image of 3 pixels, 3 classes; confident and right everywhere: loss close to 0.
/// let logits = Tensor::<3>::from_floats(
///     [[[9.0, -9.0, -9.0], [-9.0, 9.0, -9.0], [-9.0, -9.0, 9.0]]],
///     &device,
/// );
/// let classes = Tensor::<3, Int>::from_ints([[[0, 1, 2]]], &device);
/// let loss = multiclass_overlap(logits, classes, &MulticlassOverlapConfig::new()).unwrap();
/// assert!(loss.into_scalar::<f32>() < 1e-3);
/// # }
/// ```
pub fn multiclass_overlap<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<WeightedClassTargets<D>>,
    config: &MulticlassOverlapConfig,
) -> Result<Tensor<1>, SegLossError> {
    compute(config, logits, targets.into())
}

impl LossDescription for MulticlassOverlapConfig {
    type Targets<const D: usize> = WeightedClassTargets<D>;

    /// The checks of the options alone: Tversky's `alpha`, `beta` and the smoothing `>= 0`
    /// and finite, `soft_label` only with `squared = false`, class weights `>= 0` and finite
    /// (their count is checked against the logits' channels in each call).
    fn validate(&self) -> Result<(), SegLossError> {
        if let OverlapScore::Tversky { alpha, beta, .. } = self.score {
            check::non_negative("alpha", alpha)?;
            check::non_negative("beta", beta)?;
        }
        check_params(&self.params())?;
        check_class_weights(self.class_weights.as_deref())
    }

    fn plan<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: WeightedClassTargets<D>,
        share: bool,
    ) -> Result<Plan<D>, SegLossError> {
        self.validate()?;
        let params = self.params();
        check::batch_shape(&logits, "logits")?;
        let classes = logits.dims()[1];
        let weights = class_weights(
            self.class_weights.as_deref(),
            self.include_background,
            classes,
        )?;
        let (logits, targets, pixel_weights) = targets.checked(logits, self.ignore_index)?;
        let share = share && self.aggregation == Aggregation::Batch;
        if !share && runs_on_host(self.execution, &logits, targets.is_tracked())? {
            let head = HeadKind::Overlap {
                params,
                weights,
                average: self.average,
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
        // [N, C, P]: one row of pixels per image and class.
        let (p, y) = probabilities_and_targets(
            logits,
            targets,
            self.mode,
            self.from_logits,
            self.ignore_index,
        )?;
        let w = class_rows_of(pixel_weights);
        let statistics = soft_statistics(p, y, params.soft_label, params.squared, |t| {
            class_sums(weighted(t, w.as_ref()), self.aggregation)
        });
        let (average, reduction) = (self.average, self.reduction);
        let finish = move |statistics: SoftStatistics<2>| {
            // [N, C] (or [1, C]): the loss of every image and class.
            let losses = loss_of_statistics(&statistics, &params);
            let per_image = if weights.iter().all(|&w| w == 1.0) && average == ClassAverage::All {
                // The defaults: the plain mean over classes, with no mask to upload and no branch
                // of small operations for burn's fusion to schedule.
                let rows = losses.dims()[0];
                losses.mean_dim(1).reshape([rows])
            } else {
                // m_c: class weights, background removed, absent classes removed (constants: no
                // gradient).
                let mut mask = crate::engine::host::upload(
                    weights,
                    [1, classes],
                    &losses.device(),
                    losses.dtype(),
                );
                let losses = match average {
                    ClassAverage::All => losses,
                    ClassAverage::Present => {
                        mask = mask.mul(present(&statistics.target));
                        losses
                    }
                    ClassAverage::ZeroAbsent => losses.mul(present(&statistics.target)),
                };
                weighted_mean(losses, mask)
            };
            let per_image = raised(per_image, params.gamma);
            // With batch statistics there is one problem: any reduction of it is the value itself.
            reduction.apply(per_image)
        };
        Ok(statistics_plan(statistics, share, finish))
    }

    fn shared_widths(&self, classes: usize) -> Vec<usize> {
        match self.aggregation {
            Aggregation::Batch => vec![classes],
            Aggregation::PerImage => Vec::new(),
        }
    }
}
