//! The clDice loss (Shit et al. 2021), binary and multiclass.

use burn::config::Config;
use burn::tensor::Tensor;

use crate::check;
use crate::engine::{Plan, runs_on_host};
use crate::error::SegLossError;
use crate::kernels::cl_dice::ClDiceParams;
use crate::loss::classes::{ClassMode, check_background, probabilities_and_targets};
use crate::loss::description::{LossDescription, compute};
use crate::loss::pixel_weights::{BinaryTargets, WeightedClassTargets, class_rows_of, weighted};
use crate::loss::probabilities;
use crate::loss::skeleton::soft_skeleton;
use crate::options::{Execution, Reduction};

/// The options both clDice losses share, written once with their docs.
macro_rules! cl_dice_config {
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
            /// Thinning steps of the soft skeleton (default `3`, MONAI's `iter_`): enough to
            /// reduce structures up to about `2 (iterations + 1)` pixels wide to a line; wider
            /// ones keep a thicker core.
            #[config(default = 3)]
            pub iterations: usize,
            /// Added to the numerators of the topology precision and sensitivity (default `1`,
            /// MONAI's). Must be >= 0 and finite.
            #[config(default = 1.0)]
            pub smooth_nr: f64,
            /// Added to their denominators (default `1`, MONAI's). Must be > 0 and finite: an
            /// empty skeleton would otherwise give `0/0`.
            #[config(default = 1.0)]
            pub smooth_dr: f64,
            /// Added to the denominator of their harmonic mean (default `1e-4`, MONAI's). Must be
            /// > 0 and finite.
            #[config(default = 1e-4)]
            pub smooth: f64,
            /// `true` (default): inputs are logits; `false`: probabilities.
            #[config(default = true)]
            pub from_logits: bool,
            /// How the per-image losses are combined (default [`Reduction::Mean`]).
            #[config(default = "Reduction::Mean")]
            pub reduction: Reduction,
        }

        impl $name {
            /// The checks of the shared options.
            fn check_shared(&self) -> Result<(), SegLossError> {
                check::non_negative("smooth_nr", self.smooth_nr)?;
                check::positive("smooth_dr", self.smooth_dr)?;
                check::positive("smooth", self.smooth)
            }

            /// The loss of probabilities `p` and targets `y`, `[N, K, P]` each (K channels
            /// scored together), pixels of shape `spatial` weighted by `w` (`[N, 1, P]`, when
            /// given): one value per image, reduced.
            fn loss_of(
                &self,
                (p, y, w): (Tensor<3>, Tensor<3>, Option<Tensor<3>>),
                spatial: &[usize],
            ) -> Tensor<1> {
                let terms = ClDiceTerms {
                    iterations: self.iterations,
                    smooth_nr: self.smooth_nr,
                    smooth_dr: self.smooth_dr,
                    smooth: self.smooth,
                };
                self.reduction.apply(terms.per_image(p, y, w, spatial))
            }
        }
    };
}

/// The numbers of the clDice formula.
struct ClDiceTerms {
    iterations: usize,
    smooth_nr: f64,
    smooth_dr: f64,
    smooth: f64,
}

impl ClDiceTerms {
    /// `1 - 2 T_prec T_sens / (T_prec + T_sens + smooth)` per image of `p`, `y` `[N, K, P]`,
    /// every sum weighted by the pixel weights `w` `[N, 1, P]` when given.
    fn per_image(
        &self,
        p: Tensor<3>,
        y: Tensor<3>,
        w: Option<Tensor<3>>,
        spatial: &[usize],
    ) -> Tensor<1> {
        let [images, channels, pixels] = p.dims();
        let skeleton = |t: Tensor<3>| {
            soft_skeleton(
                t.reshape([images * channels, pixels]),
                spatial,
                self.iterations,
            )
            .reshape([images, channels * pixels])
        };
        let predicted_skeleton = skeleton(p.clone());
        // The targets are constants of the loss: their skeleton needs no gradient.
        let target_skeleton = skeleton(y.clone().detach());
        let (p, y) = (
            p.reshape([images, channels * pixels]),
            y.reshape([images, channels * pixels]),
        );
        // The weights of an image's pixels, repeated for each of its channels.
        let w = w.map(|w| {
            w.expand([images, channels, pixels])
                .reshape([images, channels * pixels])
        });
        let ratio = |overlap: Tensor<2>, size: Tensor<2>| {
            let rows = |t: Tensor<2>| weighted(t, w.as_ref()).sum_dim(1).reshape([images]);
            rows(overlap)
                .add_scalar(self.smooth_nr)
                .div(rows(size).add_scalar(self.smooth_dr))
        };
        let precision = ratio(predicted_skeleton.clone().mul(y), predicted_skeleton);
        let sensitivity = ratio(target_skeleton.clone().mul(p), target_skeleton);
        let harmonic = (precision.clone() * sensitivity.clone())
            .mul_scalar(2.0)
            .div((precision + sensitivity).add_scalar(self.smooth));
        harmonic.neg().add_scalar(1.0)
    }
}

cl_dice_config! {
    /// Options of [`cl_dice`]. Defaults follow MONAI's `SoftclDiceLoss`.
    pub struct ClDiceConfig {
        /// Host kernel or burn operations (default [`Execution::Auto`]: the host kernel on
        /// the CPU backends).
        #[config(default = "Execution::Auto")]
        pub execution: Execution,
    }
}

cl_dice_config! {
    /// Options of [`multiclass_cl_dice`]. Defaults follow MONAI's `SoftclDiceLoss`, with
    /// `softmax=True`.
    pub struct MulticlassClDiceConfig {
        /// Softmax over the channels (default) or a sigmoid per channel.
        #[config(default = "ClassMode::Softmax")]
        pub mode: ClassMode,
        /// `true` (default, MONAI's): channel 0 is scored with the others; `false`: it is left
        /// out (with softmax it still takes part in the normalisation).
        #[config(default = true)]
        pub include_background: bool,
    }
}

/// clDice loss (Shit et al. 2021, MONAI's `SoftclDiceLoss(sigmoid=True)`): a Dice score of the
/// skeletons, which rewards keeping thin structures (vessels, neurons, roads) connected
/// rather than covering their area.
///
/// With `p = sigmoid(x)`, `S` the soft skeleton (iterated soft erosion, the minimum over the
/// axis-aligned 3-pixel max pools of `-p`, and soft opening; `iterations` steps; see
/// [`ClDiceConfig::iterations`]) and sums over the pixels of each image:
///
/// `T_prec = (sum(S(p) y) + s_nr) / (sum(S(p)) + s_dr)` (the predicted skeleton inside the
/// target), `T_sens = (sum(S(y) p) + s_nr) / (sum(S(y)) + s_dr)` (the target's skeleton
/// covered by the prediction),
///
/// `loss = 1 - 2 T_prec T_sens / (T_prec + T_sens + smooth)`,
///
/// then reduced over images. Inputs of shape `[N, H, W]`, `[N, 1, H, W]`, `[N, 1, Z, H, W]`
/// (or any number of spatial axes: the pools run along each). Matches MONAI 1.6
/// `SoftclDiceLoss(iter_, smooth_nr, smooth_dr, smooth, sigmoid=True, reduction)`, values and
/// gradients, 2D and 3D; MONAI's `SoftDiceclDiceLoss(alpha)` is the
/// [`compound`](crate::losses::compound) `(1 - alpha)` soft Dice (smoothing 1) `+ alpha`
/// clDice (the README shows it).
///
/// On flex and ndarray ([`Execution::Auto`]) it runs as a host kernel: the skeletons of one
/// image computed in place, in cache, and the gradient taken back through them (the pools'
/// choices found again, torch's tie rules: the first extreme of a window, a tie between axes
/// split in halves); elsewhere as burn operations. Both paths give the same values and
/// gradients.
///
/// # Device path
/// Burn operations: `4 iterations + 4` max pools per skeleton and spatial axis (3x3 pools in
/// 2D), two skeletons, no read to the host.
///
/// # Errors
/// Shape mismatch, rank < 2, a zero-sized dimension, different devices, `smooth_nr < 0`,
/// `smooth_dr` or `smooth` not > 0, and the [refused
/// inputs](crate::losses#inputs-every-loss-refuses-or-widens) (channels; the targets are not
/// read, so their range is the caller's to keep).
///
/// ```
/// # #[cfg(feature = "flex")] {
/// use burn::tensor::{Device, Tensor};
/// use segloss::losses::{cl_dice, ClDiceConfig};
/// let device = Device::flex();
/// // A vertical line 1 pixel wide, predicted exactly: its skeleton is itself, loss ~ 0.
/// let line = [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]];
/// let targets = Tensor::<3>::from_floats([line], &device);
/// let probabilities = targets.clone();
/// let config = ClDiceConfig::new().with_from_logits(false).with_smooth_nr(0.0).with_smooth_dr(1e-6);
/// let loss = cl_dice(probabilities, targets, &config).unwrap().into_scalar::<f32>();
/// assert!(loss < 1e-3);
/// # }
/// ```
pub fn cl_dice<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<BinaryTargets<D>>,
    config: &ClDiceConfig,
) -> Result<Tensor<1>, SegLossError> {
    compute(config, logits, targets.into())
}

impl LossDescription for ClDiceConfig {
    type Targets<const D: usize> = BinaryTargets<D>;

    /// The checks of the options alone: the smoothing in range.
    fn validate(&self) -> Result<(), SegLossError> {
        self.check_shared()
    }

    fn plan<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: BinaryTargets<D>,
        _share: bool,
    ) -> Result<Plan<D>, SegLossError> {
        self.validate()?;
        let (logits, targets, weights) = targets.checked(logits)?;
        let dims = logits.dims();
        // The spatial axes: all but the batch axis, and the channel axis (of size 1) from rank
        // 4 on ([N, H, W] is a 2D image without one).
        let spatial = if D >= 4 { &dims[2..] } else { &dims[1..] };
        if runs_on_host(self.execution, &logits, targets.is_tracked())? {
            let params = ClDiceParams {
                spatial: spatial.to_vec(),
                iterations: self.iterations,
                smooth_nr: self.smooth_nr,
                smooth_dr: self.smooth_dr,
                smooth: self.smooth,
                from_logits: self.from_logits,
            };
            return Ok(Plan::host(logits, targets, weights, self.reduction, params));
        }
        let [images, pixels] = [dims[0], spatial.iter().product()];
        let p = probabilities(logits, self.from_logits).reshape([images, 1, pixels]);
        let y = targets.reshape([images, 1, pixels]);
        let w = class_rows_of(weights);
        Ok(Plan::Computed(self.loss_of((p, y, w), spatial)))
    }
}

/// Multiclass or multilabel clDice loss (MONAI's `SoftclDiceLoss(softmax=True,
/// to_onehot_y=True)`): [`cl_dice`] with `p` the class probabilities (softmax over the
/// channels, or a sigmoid per channel) and `y` the per-class targets (one-hot from class
/// indices, or given per class), the sums running over the channels and the pixels of each
/// image together (as MONAI; channel 0 left out without `include_background`). Logits
/// `[N, C, ...]` with any number of spatial axes; the skeleton of each channel is its own.
///
/// Matches MONAI 1.6 `SoftclDiceLoss(softmax=True)` (or `sigmoid=True`) with one-hot targets,
/// values and gradients.
///
/// # Device path
/// Burn operations on every backend, as [`cl_dice`]; the one-hot targets are built on the
/// device.
///
/// # Errors
/// Rank < 2, a zero-sized dimension, targets whose shape is not `[N, 1, ...]` (indices) or
/// the logits' (per-class), different devices, the smoothing out of range,
/// `include_background = false` with one channel.
pub fn multiclass_cl_dice<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<WeightedClassTargets<D>>,
    config: &MulticlassClDiceConfig,
) -> Result<Tensor<1>, SegLossError> {
    compute(config, logits, targets.into())
}

impl LossDescription for MulticlassClDiceConfig {
    type Targets<const D: usize> = WeightedClassTargets<D>;

    /// The checks of the options alone: the smoothing in range.
    fn validate(&self) -> Result<(), SegLossError> {
        self.check_shared()
    }

    fn plan<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: WeightedClassTargets<D>,
        _share: bool,
    ) -> Result<Plan<D>, SegLossError> {
        self.validate()?;
        check::batch_shape(&logits, "logits")?;
        let dims = logits.dims();
        let classes = dims[1];
        check_background(self.include_background, classes)?;
        let (logits, targets, weights) = targets.checked(logits, None)?;
        let (p, y) = probabilities_and_targets(logits, targets, self.mode, self.from_logits, None)?;
        let w = class_rows_of(weights);
        let (p, y) = if self.include_background {
            (p, y)
        } else {
            let [images, _, pixels] = p.dims();
            let foreground = [0..images, 1..classes, 0..pixels];
            (p.slice(foreground.clone()), y.slice(foreground))
        };
        Ok(Plan::Computed(self.loss_of((p, y, w), &dims[2..])))
    }
}
