//! Weighted sums of losses (nnU-Net's Dice + CE, MONAI's `DiceCELoss` and `DiceFocalLoss`),
//! binary and multiclass, and the run-time choice of a loss: a compound of one term.
//!
//! One body serves both kinds ([`sum_plan`]): every term is planned through its
//! [`LossDescription`], the host terms are merged into as few host operations as possible
//! (`crate::kernels::compound`) and run at once, and the terms that wait for data-parallel
//! statistics are left for the caller.

use burn::config::Config;
use burn::tensor::Tensor;

use crate::api::catalog::{Loss, MulticlassLoss};
use crate::api::distributed::{SharedStatistics, compute_shared};
use crate::api::modules::loss_module;
use crate::engine::Plan;
use crate::error::SegLossError;
use crate::loss::classes::ClassTargets;
use crate::loss::description::{LossDescription, compute};
use crate::loss::pixel_weights::{BinaryTargets, WeightedClassTargets};
use crate::loss::sum::sum_of_plans;

/// A compound's term and config, the same for both kinds of loss: `$term` (a weight and a
/// `$loss`), `$config` (the terms, `with_term`, `From<$loss>` for one term) and its
/// [`LossDescription`] over `$targets`, for the function `$function`.
macro_rules! compound_config {
    ($config:ident, $term:ident, $loss:ident, $targets:ident, $function:ident) => {
        #[doc = concat!("One weighted term of a [`", stringify!($config), "`].")]
        #[derive(Config, Debug)]
        pub struct $term {
            /// The term's weight (finite, >= 0).
            pub weight: f64,
            /// The loss and its options (its own `reduction` included).
            pub loss: $loss,
        }

        #[doc = concat!("Options of [`", stringify!($function), "`]: the terms of the sum, none by default (add")]
        #[doc = concat!("them with [`", stringify!($config), "::with_term`]).")]
        #[derive(Config, Debug)]
        pub struct $config {
            /// The weighted losses to add up.
            #[config(default = "Vec::new()")]
            pub terms: Vec<$term>,
        }

        impl $config {
            /// Adds the term `weight * loss`.
            pub fn with_term(mut self, weight: f64, loss: $loss) -> Self {
                self.terms.push($term::new(weight, loss));
                self
            }
        }

        /// The compound of one term, `1 * loss`: a loss chosen at run time, as a config whose
        /// module can be a model's field.
        impl From<$loss> for $config {
            fn from(loss: $loss) -> Self {
                $config::new().with_term(1.0, loss)
            }
        }

        impl LossDescription for $config {
            type Targets<const D: usize> = $targets<D>;

            /// At least one term, every weight finite and `>= 0`, every term's options valid.
            fn validate(&self) -> Result<(), SegLossError> {
                validate_terms(self.terms.iter().map(|t| (t.weight, &t.loss)))
            }

            fn plan<const D: usize>(
                &self,
                logits: Tensor<D>,
                targets: $targets<D>,
                share: bool,
            ) -> Result<Plan<D>, SegLossError> {
                self.validate()?;
                let terms = self.terms.iter().map(|t| (t.weight, &t.loss));
                sum_plan(terms, logits, targets, share)
            }

            fn shared_widths(&self, classes: usize) -> Vec<usize> {
                let terms = self.terms.iter().map(|t| &t.loss);
                terms.flat_map(|loss| loss.shared_widths(classes)).collect()
            }
        }
    };
}

compound_config!(CompoundConfig, CompoundTerm, Loss, BinaryTargets, compound);
compound_config!(
    MulticlassCompoundConfig,
    MulticlassCompoundTerm,
    MulticlassLoss,
    WeightedClassTargets,
    multiclass_compound
);

/// A weighted sum of losses: `sum_k weight_k * loss_k(logits, targets)`.
///
/// Every term runs with its own options, including its own `reduction` and `execution`, on
/// the same inputs; the terms must give results of the same shape (all `[1]`, or all `[N]`
/// with `Reduction::None` and per-image statistics). The gradient is the weighted sum of the
/// terms' gradients. With `1 * soft Dice + 1 * BCE` (both `Reduction::Mean`) it equals MONAI
/// `DiceCELoss(sigmoid=True)` and nnU-Net's binary Dice + CE; with focal instead of BCE,
/// MONAI `DiceFocalLoss`. Bertels et al. (Sect. 4) note that metric-sensitive losses may
/// profit from a CE term early in training; a compound loss is the usual way to add one.
///
/// The terms that take the host path (flex and ndarray with `Execution::Auto`) run as one
/// operation: each term's kernel adds its weighted gradient into one shared buffer, so the
/// sum costs one gradient buffer, not one per term and another for their sum.
///
/// # Device path
/// Soft Dice + BCE on wgpu runs the sum of its terms' kernels over the batch, no read to the
/// host ([counts](crate::losses#device-path)).
///
/// # Errors
/// No terms, a negative or non-finite weight, results of different shapes, and any error of
/// a term.
///
/// ```
/// # #[cfg(feature = "flex")] {
/// use burn::tensor::{Device, Tensor};
/// use segloss::losses::*;
/// let device = Device::flex();
/// let logits = Tensor::<2>::from_floats([[2.0, -1.0, 0.5]], &device);
/// let targets = Tensor::<2>::from_floats([[1.0, 0.0, 1.0]], &device);
/// let config = CompoundConfig::new()
///     .with_term(1.0, Loss::SoftDice(SoftDiceConfig::new()))
///     .with_term(1.0, Loss::BinaryCrossEntropy(BinaryCrossEntropyConfig::new()));
/// let total = compound(logits.clone(), targets.clone(), &config).unwrap().into_scalar::<f32>();
/// let dice = soft_dice(logits.clone(), targets.clone(), &SoftDiceConfig::new()).unwrap();
/// let bce = binary_cross_entropy(logits, targets, &BinaryCrossEntropyConfig::new()).unwrap();
/// let sum = dice.into_scalar::<f32>() + bce.into_scalar::<f32>();
/// assert!((total - sum).abs() < 1e-6);
/// # }
/// ```
pub fn compound<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<BinaryTargets<D>>,
    config: &CompoundConfig,
) -> Result<Tensor<1>, SegLossError> {
    compute(config, logits, targets.into())
}

/// [`compound`] with batch statistics shared across data-parallel workers (see
/// [`crate::distributed`]): each batch-statistics term (soft Dice, soft Jaccard, Tversky with
/// [`Aggregation::Batch`](crate::Aggregation)) scores the global batch, one reduction per
/// such term; the other terms are computed as by [`compound`]. A per-pixel mean such as the
/// cross-entropy stays the mean over the worker's shard: with equal shards and burn-train's
/// gradient mean, its averaged gradient is the global one.
///
/// # Errors
/// Those of [`compound`], and those of the reducer. Every term is checked and every term
/// without shared statistics computed before the first collective; a worker whose inputs
/// fail still takes part in every collective, with zeros, before it returns its error (see
/// [`crate::distributed`]).
pub fn compound_shared<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<BinaryTargets<D>>,
    config: &CompoundConfig,
    shared: &SharedStatistics,
) -> Result<Tensor<1>, SegLossError> {
    compute_shared(config, logits, targets.into(), shared)
}

/// A weighted sum of multiclass losses, as [`compound`] for class targets: with
/// `1 * multiclass_overlap + 1 * multiclass_focal(gamma = 0)` (both with their defaults) it is
/// nnU-Net's Dice + CE and MONAI `DiceCELoss(softmax=True, to_onehot_y=True)`.
///
/// On the host path (flex and ndarray) the overlap, generalized Dice and focal terms that
/// share the class mode, `from_logits` and `ignore_index` run as one kernel: one softmax per
/// pixel and pass for all of them, and one gradient buffer (Dice + CE costs little more than
/// Dice alone).
///
/// # Device path
/// Dice + CE on wgpu runs one kernel over the batch more than its terms alone, no read to the
/// host ([counts](crate::losses#device-path)).
///
/// # Errors
/// No terms, a negative or non-finite weight, results of different shapes, and any error of
/// a term.
///
/// ```
/// # #[cfg(feature = "flex")] {
/// use burn::tensor::{Device, Int, Tensor};
/// use segloss::losses::*;
/// let device = Device::flex();
/// let logits = Tensor::<3>::from_floats([[[2.0, -1.0], [0.0, 1.5]]], &device);
/// let classes = Tensor::<3, Int>::from_ints([[[0, 1]]], &device);
/// let dice_ce = MulticlassCompoundConfig::new()
///     .with_term(1.0, MulticlassLoss::Overlap(MulticlassOverlapConfig::new()))
///     .with_term(1.0, MulticlassLoss::Focal(MulticlassFocalConfig::new().with_gamma(0.0)));
/// let loss = multiclass_compound(logits, classes, &dice_ce).unwrap();
/// assert!(loss.into_scalar::<f32>() > 0.0);
/// # }
/// ```
pub fn multiclass_compound<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<WeightedClassTargets<D>>,
    config: &MulticlassCompoundConfig,
) -> Result<Tensor<1>, SegLossError> {
    compute(config, logits, targets.into())
}

/// [`multiclass_compound`] with batch statistics shared across data-parallel workers (see
/// [`crate::distributed`]): nnU-Net's batch Dice + CE under data parallelism. Each
/// batch-statistics term (`multiclass_overlap`, `generalized_dice` with
/// [`Aggregation::Batch`](crate::Aggregation)) scores the global batch, one reduction per such
/// term; the other terms are computed as by [`multiclass_compound`] (the cross-entropy is the
/// mean over the worker's pixels).
///
/// # Errors
/// Those of [`multiclass_compound`], and those of the reducer. Every term is checked and every term
/// without shared statistics computed before the first collective; a worker whose inputs
/// fail still takes part in every collective, with zeros, before it returns its error (see
/// [`crate::distributed`]).
pub fn multiclass_compound_shared<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<WeightedClassTargets<D>>,
    config: &MulticlassCompoundConfig,
    shared: &SharedStatistics,
) -> Result<Tensor<1>, SegLossError> {
    compute_shared(config, logits, targets.into(), shared)
}

loss_module!(
    /// [`compound`] as a module (e.g. MONAI `DiceCELoss`); with one term, a binary loss chosen
    /// at run time (`CompoundConfig::from(loss)`).
    CompoundLoss,
    CompoundConfig,
    compound,
    Tensor
);
loss_module!(
    /// [`multiclass_compound`] as a module (e.g. nnU-Net's Dice + CE, MONAI `DiceCELoss`);
    /// with one term, a multiclass loss chosen at run time (`MulticlassCompoundConfig::from(loss)`).
    MulticlassCompoundLoss,
    MulticlassCompoundConfig,
    multiclass_compound,
    ClassTargets
);

/// The plan of `sum_t w_t loss_t(logits, targets)` over `terms`: every term planned, then
/// summed by [`sum_of_plans`].
fn sum_plan<'a, L: LossDescription + 'a, const D: usize>(
    terms: impl Iterator<Item = (f64, &'a L)>,
    logits: Tensor<D>,
    targets: L::Targets<D>,
    share: bool,
) -> Result<Plan<D>, SegLossError> {
    let parts = terms
        .map(|(weight, loss)| Ok((weight, loss.plan(logits.clone(), targets.clone(), share)?)))
        .collect::<Result<Vec<_>, SegLossError>>()?;
    sum_of_plans(parts)
}

/// At least one term, every weight finite and non-negative (all weights first), every term's
/// options valid.
fn validate_terms<'a, L: LossDescription + 'a>(
    terms: impl ExactSizeIterator<Item = (f64, &'a L)>,
) -> Result<(), SegLossError> {
    if terms.len() == 0 {
        return Err(SegLossError::InvalidOption {
            name: "terms",
            value: "[]".into(),
            allowed: "at least one term (with_term)",
        });
    }
    let terms: Vec<(f64, &L)> = terms.collect();
    for &(weight, _) in &terms {
        crate::check::non_negative("weight", weight)?;
    }
    terms.iter().try_for_each(|(_, loss)| loss.validate())
}
