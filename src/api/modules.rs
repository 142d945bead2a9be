//! Every loss as a burn module, the way burn-nn's losses are built: `XConfig::new()`, the
//! options set with `with_*`, then `init()`, which checks the options once and returns the
//! module; its `forward` computes the loss.
//!
//! ```
//! # #[cfg(feature = "flex")] {
//! use burn::tensor::{Device, Tensor};
//! use segloss::losses::{SoftDiceConfig, SoftDiceLoss};
//!
//! let loss: SoftDiceLoss = SoftDiceConfig::new().with_smooth_nr(1e-5).init()?;
//! let device = Device::flex();
//! let logits = Tensor::<4>::from_floats([[[[2.0, -1.0], [0.5, -3.0]]]], &device);
//! let targets = Tensor::<4>::from_floats([[[[1.0, 0.0], [1.0, 0.0]]]], &device);
//! let value = loss.forward(logits, targets); // Tensor<1>, [1]
//! # }
//! # Ok::<(), segloss::SegLossError>(())
//! ```
//!
//! Each module:
//! - holds its config (the options, kept as constant state: no parameter, nothing saved in a
//!   record), so it can be a field of a `#[derive(Module)]` model and is `Clone`, `Debug` and
//!   `Display` (burn's module display, which lists the options);
//! - has `forward(logits, targets) -> Tensor<1>`, which panics with the error's message on
//!   inputs the loss cannot take (a shape mismatch, targets a Lovász loss cannot score),
//!   as burn-nn's losses do, for use inside `TrainStep::step`, which cannot return an error,
//!   and `try_forward`, which returns that error instead;
//! - implements [`SegmentationLoss`], so a model can hold any loss chosen at run time as a
//!   `Box<dyn SegmentationLoss<D, Targets = ...>>` (see [`Loss::init`] and
//!   [`MulticlassLoss::init`]).
//!
//! `forward` runs the loss's free function, which re-checks the options: a few comparisons,
//! nothing next to the loss itself, and it keeps one code path for both ways of calling.

use burn::module::{Content, DisplaySettings, Module, ModuleDisplay};
use burn::tensor::Tensor;

use crate::SegLossError;
use crate::losses::*;

/// A segmentation loss, whatever its kind: what every loss module implements, so that a
/// model or a training loop can hold a loss chosen at run time (`Box<dyn ...>`).
///
/// `D` is the rank of the logits; `Targets` is `Tensor<D>` for the binary losses and
/// [`ClassTargets<D>`] for the multiclass ones.
///
/// ```
/// # #[cfg(feature = "flex")] {
/// use burn::tensor::{Device, Tensor};
/// use segloss::losses::{Loss, SegmentationLoss, SoftJaccardConfig};
///
/// let loss: Box<dyn SegmentationLoss<4, Targets = Tensor<4>>> =
///     Loss::SoftJaccard(SoftJaccardConfig::new()).init()?;
/// let device = Device::flex();
/// let logits = Tensor::<4>::from_floats([[[[9.0, -9.0]]]], &device);
/// let targets = Tensor::<4>::from_floats([[[[1.0, 0.0]]]], &device);
/// assert!(loss.try_forward(logits, targets)?.into_scalar::<f32>() < 1e-3);
/// # }
/// # Ok::<(), segloss::SegLossError>(())
/// ```
pub trait SegmentationLoss<const D: usize>: core::fmt::Debug + Send + Sync {
    /// What the logits are compared with.
    type Targets;

    /// The loss, or the error that its free function returns for these inputs.
    ///
    /// # Errors
    /// Those of the loss's free function for these inputs.
    fn try_forward(
        &self,
        logits: Tensor<D>,
        targets: Self::Targets,
    ) -> Result<Tensor<1>, SegLossError>;

    /// The loss; panics with the error's message where [`try_forward`](Self::try_forward)
    /// returns one (as burn-nn's losses do on bad input).
    fn forward(&self, logits: Tensor<D>, targets: Self::Targets) -> Tensor<1> {
        self.try_forward(logits, targets)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The struct, its `Display` and its constructor, shared by both kinds of loss module.
macro_rules! module_struct {
    ($(#[$doc:meta])* $name:ident, $config:ident, $init:ident, $validate:expr) => {
        $(#[$doc])*
        ///
        /// A burn [`Module`] without parameters: its options are constant state (see the
        /// [module docs](crate::losses::modules)).
        #[derive(Module, Debug)]
        #[module(custom_display)]
        pub struct $name {
            #[module(skip)]
            config: $config,
        }

        impl $config {
            #[doc = concat!("Checks the options and returns the [`", stringify!($name), "`].")]
            ///
            /// # Errors
            /// [`SegLossError::InvalidParameter`] or [`SegLossError::InvalidOption`] for an
            /// option out of range; checks that need the inputs (a class count, a shape) are
            /// made by `forward`.
            pub fn $init(&self) -> Result<$name, SegLossError> {
                let validate: fn(&$config) -> Result<(), SegLossError> = $validate;
                validate(self)?;
                Ok($name {
                    config: self.clone(),
                })
            }
        }

        impl $name {
            /// The options this module runs with.
            pub fn config(&self) -> &$config {
                &self.config
            }
        }

        impl ModuleDisplay for $name {
            fn custom_settings(&self) -> Option<DisplaySettings> {
                DisplaySettings::new()
                    .with_new_line_after_attribute(false)
                    .optional()
            }

            fn custom_content(&self, content: Content) -> Option<Content> {
                content.add_debug_attribute("config", &self.config).optional()
            }
        }
    };
}

/// A binary loss module: targets `Tensor<D>` of the logits' shape.
macro_rules! binary_module {
    ($(#[$doc:meta])* $name:ident, $config:ident, $init:ident, $validate:expr, $function:ident) => {
        module_struct!($(#[$doc])* $name, $config, $init, $validate);

        impl $name {
            #[doc = concat!("[`", stringify!($function), "`] with this module's options.")]
            ///
            /// # Panics
            /// With the error's message where [`try_forward`](Self::try_forward) returns one.
            pub fn forward<const D: usize>(
                &self,
                logits: Tensor<D>,
                targets: Tensor<D>,
            ) -> Tensor<1> {
                SegmentationLoss::forward(self, logits, targets)
            }

            #[doc = concat!("[`", stringify!($function), "`] with this module's options.")]
            ///
            /// # Errors
            #[doc = concat!("Those of [`", stringify!($function), "`] for these inputs.")]
            pub fn try_forward<const D: usize>(
                &self,
                logits: Tensor<D>,
                targets: Tensor<D>,
            ) -> Result<Tensor<1>, SegLossError> {
                $function(logits, targets, &self.config)
            }
        }

        impl<const D: usize> SegmentationLoss<D> for $name {
            type Targets = Tensor<D>;
            fn try_forward(
                &self,
                logits: Tensor<D>,
                targets: Tensor<D>,
            ) -> Result<Tensor<1>, SegLossError> {
                $function(logits, targets, &self.config)
            }
        }
    };
}

/// A multiclass loss module: targets as [`ClassTargets`] (class indices or per-class values).
macro_rules! multiclass_module {
    ($(#[$doc:meta])* $name:ident, $config:ident, $validate:expr, $function:ident) => {
        module_struct!($(#[$doc])* $name, $config, init, $validate);

        impl $name {
            #[doc = concat!("[`", stringify!($function), "`] with this module's options.")]
            ///
            /// # Panics
            /// With the error's message where [`try_forward`](Self::try_forward) returns one.
            pub fn forward<const D: usize>(
                &self,
                logits: Tensor<D>,
                targets: impl Into<ClassTargets<D>>,
            ) -> Tensor<1> {
                SegmentationLoss::forward(self, logits, targets.into())
            }

            #[doc = concat!("[`", stringify!($function), "`] with this module's options.")]
            ///
            /// # Errors
            #[doc = concat!("Those of [`", stringify!($function), "`] for these inputs.")]
            pub fn try_forward<const D: usize>(
                &self,
                logits: Tensor<D>,
                targets: impl Into<ClassTargets<D>>,
            ) -> Result<Tensor<1>, SegLossError> {
                $function(logits, targets, &self.config)
            }
        }

        impl<const D: usize> SegmentationLoss<D> for $name {
            type Targets = ClassTargets<D>;
            fn try_forward(
                &self,
                logits: Tensor<D>,
                targets: ClassTargets<D>,
            ) -> Result<Tensor<1>, SegLossError> {
                $function(logits, targets, &self.config)
            }
        }
    };
}

binary_module!(
    /// [`binary_cross_entropy`] as a module (torch `BCEWithLogitsLoss`).
    BinaryCrossEntropyLoss,
    BinaryCrossEntropyConfig,
    init,
    |_| Ok(()),
    binary_cross_entropy
);
binary_module!(
    /// [`weighted_cross_entropy`] as a module (wCE of Bertels et al.).
    WeightedCrossEntropyLoss,
    WeightedCrossEntropyConfig,
    init,
    WeightedCrossEntropyConfig::validate,
    weighted_cross_entropy
);
binary_module!(
    /// [`soft_dice`] as a module (MONAI `DiceLoss(sigmoid=True)`).
    SoftDiceLoss,
    SoftDiceConfig,
    init,
    SoftDiceConfig::validate,
    soft_dice
);
binary_module!(
    /// [`soft_jaccard`] as a module (smp `JaccardLoss`).
    SoftJaccardLoss,
    SoftJaccardConfig,
    init,
    SoftJaccardConfig::validate,
    soft_jaccard
);
binary_module!(
    /// [`tversky`] as a module (MONAI `TverskyLoss`).
    TverskyLoss,
    TverskyConfig,
    init,
    TverskyConfig::validate,
    tversky
);
binary_module!(
    /// [`focal`] as a module (MONAI `FocalLoss(use_softmax=False)`).
    FocalLoss,
    FocalConfig,
    init,
    FocalConfig::validate,
    focal
);
binary_module!(
    /// [`compound`] as a module (e.g. MONAI `DiceCELoss`).
    CompoundLoss,
    CompoundConfig,
    init,
    CompoundConfig::validate,
    compound
);
binary_module!(
    /// [`lovasz_sigmoid`] as a module, made by [`LovaszConfig::init_sigmoid`] (Berman's
    /// `lovasz_softmax(classes=[1])` on sigmoid probabilities).
    LovaszSigmoidLoss,
    LovaszConfig,
    init_sigmoid,
    |_| Ok(()),
    lovasz_sigmoid
);
binary_module!(
    /// [`lovasz_hinge`] as a module, made by [`LovaszConfig::init_hinge`] (Berman's and smp's
    /// `lovasz_hinge`).
    LovaszHingeLoss,
    LovaszConfig,
    init_hinge,
    LovaszConfig::validate_hinge,
    lovasz_hinge
);
binary_module!(
    /// [`boundary_loss`] as a module (Kervadec et al.'s `SurfaceLoss`).
    BoundaryLoss,
    BoundaryLossConfig,
    init,
    BoundaryLossConfig::validate,
    boundary_loss
);
binary_module!(
    /// [`hausdorff_dt_loss`] as a module (MONAI `HausdorffDTLoss(sigmoid=True)`).
    HausdorffDtLoss,
    HausdorffDtLossConfig,
    init,
    HausdorffDtLossConfig::validate,
    hausdorff_dt_loss
);
multiclass_module!(
    /// [`multiclass_boundary_loss`] as a module (Kervadec et al.'s `SurfaceLoss`).
    MulticlassBoundaryLoss,
    MulticlassBoundaryLossConfig,
    MulticlassBoundaryLossConfig::validate,
    multiclass_boundary_loss
);
multiclass_module!(
    /// [`multiclass_hausdorff_dt_loss`] as a module (MONAI `HausdorffDTLoss(softmax=True)`).
    MulticlassHausdorffDtLoss,
    MulticlassHausdorffDtLossConfig,
    MulticlassHausdorffDtLossConfig::validate,
    multiclass_hausdorff_dt_loss
);
multiclass_module!(
    /// [`multiclass_overlap`] as a module (MONAI `DiceLoss(softmax=True, to_onehot_y=True)`).
    MulticlassOverlapLoss,
    MulticlassOverlapConfig,
    MulticlassOverlapConfig::validate,
    multiclass_overlap
);
multiclass_module!(
    /// [`generalized_dice`] as a module (MONAI `GeneralizedDiceLoss`).
    GeneralizedDiceLoss,
    GeneralizedDiceConfig,
    GeneralizedDiceConfig::validate,
    generalized_dice
);
multiclass_module!(
    /// [`lovasz_softmax`] as a module (Berman's `lovasz_softmax`).
    LovaszSoftmaxLoss,
    LovaszSoftmaxConfig,
    LovaszSoftmaxConfig::validate,
    lovasz_softmax
);
multiclass_module!(
    /// [`multiclass_focal`] as a module (MONAI `FocalLoss(use_softmax=True)`; `gamma = 0`:
    /// torch `cross_entropy`).
    MulticlassFocalLoss,
    MulticlassFocalConfig,
    MulticlassFocalConfig::validate,
    multiclass_focal
);
multiclass_module!(
    /// [`multiclass_compound`] as a module (e.g. nnU-Net's Dice + CE, MONAI `DiceCELoss`).
    MulticlassCompoundLoss,
    MulticlassCompoundConfig,
    MulticlassCompoundConfig::validate,
    multiclass_compound
);

impl Loss {
    /// The module of this loss with its options, boxed, for a loss chosen at run time (from a
    /// config file, say).
    ///
    /// # Errors
    /// Those of the loss's `init`.
    pub fn init<const D: usize>(
        &self,
    ) -> Result<Box<dyn SegmentationLoss<D, Targets = Tensor<D>>>, SegLossError> {
        Ok(match self {
            Loss::BinaryCrossEntropy(c) => Box::new(c.init()?),
            Loss::WeightedCrossEntropy(c) => Box::new(c.init()?),
            Loss::SoftDice(c) => Box::new(c.init()?),
            Loss::SoftJaccard(c) => Box::new(c.init()?),
            Loss::Tversky(c) => Box::new(c.init()?),
            Loss::Focal(c) => Box::new(c.init()?),
            Loss::LovaszSigmoid(c) => Box::new(c.init_sigmoid()?),
            Loss::LovaszHinge(c) => Box::new(c.init_hinge()?),
            Loss::Boundary(c) => Box::new(c.init()?),
            Loss::HausdorffDt(c) => Box::new(c.init()?),
        })
    }
}

impl MulticlassLoss {
    /// The module of this loss with its options, boxed, for a loss chosen at run time.
    ///
    /// # Errors
    /// Those of the loss's `init`.
    pub fn init<const D: usize>(
        &self,
    ) -> Result<Box<dyn SegmentationLoss<D, Targets = ClassTargets<D>>>, SegLossError> {
        Ok(match self {
            MulticlassLoss::Overlap(c) => Box::new(c.init()?),
            MulticlassLoss::GeneralizedDice(c) => Box::new(c.init()?),
            MulticlassLoss::LovaszSoftmax(c) => Box::new(c.init()?),
            MulticlassLoss::Focal(c) => Box::new(c.init()?),
            MulticlassLoss::Boundary(c) => Box::new(c.init()?),
            MulticlassLoss::HausdorffDt(c) => Box::new(c.init()?),
        })
    }
}
