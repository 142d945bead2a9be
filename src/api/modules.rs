//! Every loss as a burn module, the way burn-nn's losses are built: `XConfig::new()`, the
//! options set with `with_*`, then `init()`, which checks the options once and returns the
//! module `XLoss`; its `forward` computes the loss, as the function `x` does.
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
//! - takes `with_shared(SharedStatistics)` for data-parallel training: its batch statistics
//!   (if it has any) are then summed over the workers (see [`crate::distributed`]);
//! - implements [`SegmentationLoss`], for code generic over the loss.
//!
//! A loss chosen at run time (from a config file, say) is a [`Loss`](crate::losses::Loss) or
//! [`MulticlassLoss`](crate::losses::MulticlassLoss) value; its module is the compound of that
//! one term, `CompoundConfig::from(loss).init()?`, a [`CompoundLoss`](crate::losses::CompoundLoss)
//! like any other (weights and more terms included).
//!
//! `forward` runs the same code as the loss's free function, which re-checks the options: a
//! few comparisons, nothing next to the loss itself, and one code path for both ways of
//! calling.

use burn::tensor::Tensor;

use crate::api::distributed::{SharedStatistics, compute_shared};
use crate::error::SegLossError;
use crate::loss::description::{LossDescription, compute};
use crate::loss::pixel_weights::PixelWeighted;

/// A segmentation loss, whatever its kind: what every loss module implements, for code
/// generic over the loss (a training step, a wrapper such as deep supervision).
///
/// `D` is the rank of the logits; `Targets` is `Tensor<D>` for the binary losses and
/// [`ClassTargets<D>`](crate::losses::ClassTargets) for the multiclass ones; the same targets
/// with [pixel weights](crate::losses::PixelWeighted) go through
/// [`try_forward_weighted`](Self::try_forward_weighted).
///
/// ```
/// # #[cfg(feature = "flex")] {
/// use burn::tensor::{Device, Tensor};
/// use segloss::losses::{SegmentationLoss, SoftJaccardConfig};
///
/// fn total<L: SegmentationLoss<4, Targets = Tensor<4>>>(loss: &L, x: Tensor<4>, y: Tensor<4>) -> f32 {
///     loss.forward(x, y).into_scalar::<f32>()
/// }
/// let device = Device::flex();
/// let logits = Tensor::<4>::from_floats([[[[9.0, -9.0]]]], &device);
/// let targets = Tensor::<4>::from_floats([[[[1.0, 0.0]]]], &device);
/// assert!(total(&SoftJaccardConfig::new().init()?, logits, targets) < 1e-3);
/// # }
/// # Ok::<(), segloss::SegLossError>(())
/// ```
pub trait SegmentationLoss<const D: usize>: core::fmt::Debug + Send + Sync {
    /// What the logits are compared with.
    type Targets;

    /// The loss of targets with optional pixel weights, or the error that its free function
    /// returns for these inputs.
    ///
    /// # Errors
    /// Those of the loss's free function for these inputs.
    fn try_forward_weighted(
        &self,
        logits: Tensor<D>,
        targets: PixelWeighted<Self::Targets, D>,
    ) -> Result<Tensor<1>, SegLossError>;

    /// The loss, or the error that its free function returns for these inputs.
    ///
    /// # Errors
    /// Those of the loss's free function for these inputs.
    fn try_forward(
        &self,
        logits: Tensor<D>,
        targets: Self::Targets,
    ) -> Result<Tensor<1>, SegLossError> {
        self.try_forward_weighted(logits, PixelWeighted::new(targets))
    }

    /// The loss; panics with the error's message where [`try_forward`](Self::try_forward)
    /// returns one (as burn-nn's losses do on bad input).
    fn forward(&self, logits: Tensor<D>, targets: Self::Targets) -> Tensor<1> {
        self.try_forward(logits, targets)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The loss of a module: its config's, with its batch statistics shared when the module has a
/// [`SharedStatistics`].
pub(crate) fn run_module<L: LossDescription, const D: usize>(
    config: &L,
    shared: Option<&SharedStatistics>,
    logits: Tensor<D>,
    targets: L::Targets<D>,
) -> Result<Tensor<1>, SegLossError> {
    match shared {
        None => compute(config, logits, targets),
        Some(shared) => compute_shared(config, logits, targets, shared),
    }
}

/// The module `$name` of the loss whose options are `$config` and whose free function is
/// `$function`; `$targets` is `Tensor` (binary) or `ClassTargets` (multiclass), the targets
/// before their pixel weights.
macro_rules! loss_module {
    ($(#[$doc:meta])* $name:ident, $config:ident, $function:ident, $targets:ident) => {
        $(#[$doc])*
        ///
        /// A burn [`Module`](burn::module::Module) without parameters: its options are
        /// constant state (see the [module docs](crate::losses#modules)).
        #[derive(burn::module::Module, Debug)]
        #[module(custom_display)]
        pub struct $name {
            #[module(skip)]
            config: $config,
            #[module(skip)]
            shared: Option<$crate::distributed::SharedStatistics>,
        }

        impl $config {
            #[doc = concat!("Checks the options and returns the [`", stringify!($name), "`].")]
            ///
            /// # Errors
            /// [`SegLossError::InvalidParameter`](crate::SegLossError) or
            /// [`SegLossError::InvalidOption`](crate::SegLossError) for an option out of range;
            /// checks that need the inputs (a class count, a shape) are made by `forward`.
            pub fn init(&self) -> Result<$name, $crate::error::SegLossError> {
                $crate::loss::description::LossDescription::validate(self)?;
                Ok($name {
                    config: self.clone(),
                    shared: None,
                })
            }
        }

        impl $name {
            /// The options this module runs with.
            pub fn config(&self) -> &$config {
                &self.config
            }

            /// This module with its batch statistics summed over the data-parallel workers
            /// by `shared` (see [`crate::distributed`]): the loss of the global batch on every
            /// worker. A loss without batch statistics is computed as without it.
            pub fn with_shared(mut self, shared: $crate::distributed::SharedStatistics) -> Self {
                self.shared = Some(shared);
                self
            }

            #[doc = concat!("[`", stringify!($function), "`] with this module's options.")]
            ///
            /// # Panics
            /// With the error's message where [`try_forward`](Self::try_forward) returns one.
            pub fn forward<const D: usize>(
                &self,
                logits: burn::tensor::Tensor<D>,
                targets: impl Into<$crate::losses::PixelWeighted<$targets<D>, D>>,
            ) -> burn::tensor::Tensor<1> {
                self.try_forward(logits, targets)
                    .unwrap_or_else(|e| panic!("{e}"))
            }

            #[doc = concat!("[`", stringify!($function), "`] with this module's options.")]
            ///
            /// # Errors
            #[doc = concat!("Those of [`", stringify!($function), "`] for these inputs, and those of the")]
            /// reducer with [`with_shared`](Self::with_shared).
            pub fn try_forward<const D: usize>(
                &self,
                logits: burn::tensor::Tensor<D>,
                targets: impl Into<$crate::losses::PixelWeighted<$targets<D>, D>>,
            ) -> Result<burn::tensor::Tensor<1>, $crate::error::SegLossError> {
                $crate::api::modules::run_module(
                    &self.config,
                    self.shared.as_ref(),
                    logits,
                    targets.into(),
                )
            }
        }

        impl<const D: usize> $crate::api::modules::SegmentationLoss<D> for $name {
            type Targets = $targets<D>;
            fn try_forward_weighted(
                &self,
                logits: burn::tensor::Tensor<D>,
                targets: $crate::losses::PixelWeighted<$targets<D>, D>,
            ) -> Result<burn::tensor::Tensor<1>, $crate::error::SegLossError> {
                $crate::api::modules::run_module(
                    &self.config,
                    self.shared.as_ref(),
                    logits,
                    targets,
                )
            }
        }

        impl burn::module::ModuleDisplay for $name {
            fn custom_settings(&self) -> Option<burn::module::DisplaySettings> {
                burn::module::DisplaySettings::new()
                    .with_new_line_after_attribute(false)
                    .optional()
            }

            fn custom_content(&self, content: burn::module::Content) -> Option<burn::module::Content> {
                content.add_debug_attribute("config", &self.config).optional()
            }
        }
    };
}
pub(crate) use loss_module;
