//! Weighted sums of losses (nnU-Net's Dice + CE, MONAI's `DiceCELoss` and `DiceFocalLoss`).

use burn::config::Config;
use burn::tensor::Tensor;

use crate::api::distributed::{SharedStatistics, statistics_kind};
use crate::engine::{
    Gradient, HostCall, HostFloat, HostKernel, HostTargets, Plan, Targets, TypedKernel,
};
use crate::kernels::multiclass::ClassKernel;
use crate::kernels::multiclass::heads::Head;
use crate::loss::classes::ClassPlan;
use crate::loss::cross_entropy::{binary_cross_entropy_plan, weighted_cross_entropy_plan};
use crate::loss::dice::soft_dice_plan;
use crate::loss::focal::focal_plan;
use crate::loss::generalized_dice::generalized_dice_plan;
use crate::loss::jaccard::soft_jaccard_plan;
use crate::loss::lovasz::{lovasz_hinge_plan, lovasz_sigmoid_plan};
use crate::loss::multiclass::multiclass_overlap_plan;
use crate::loss::multiclass_focal::multiclass_focal_plan;
use crate::loss::tversky::tversky_plan;
use crate::losses::{
    BinaryCrossEntropyConfig, BoundaryLossConfig, ClassTargets, FocalConfig, GeneralizedDiceConfig,
    HausdorffDtLossConfig, LovaszConfig, LovaszSoftmaxConfig, MulticlassBoundaryLossConfig,
    MulticlassFocalConfig, MulticlassHausdorffDtLossConfig, MulticlassOverlapConfig,
    SoftDiceConfig, SoftJaccardConfig, TverskyConfig, WeightedCrossEntropyConfig, boundary_loss,
    hausdorff_dt_loss, lovasz_softmax, multiclass_boundary_loss, multiclass_hausdorff_dt_loss,
};
use crate::{Aggregation, Reduction, SegLossError};

/// Any binary loss of the crate together with its options: a term of a [`CompoundConfig`],
/// and a way to pick a loss at run time (from a config file, say).
#[derive(Config, Debug)]
pub enum Loss {
    /// [`binary_cross_entropy`](crate::losses::binary_cross_entropy).
    BinaryCrossEntropy(BinaryCrossEntropyConfig),
    /// [`weighted_cross_entropy`](crate::losses::weighted_cross_entropy).
    WeightedCrossEntropy(WeightedCrossEntropyConfig),
    /// [`soft_dice`](crate::losses::soft_dice).
    SoftDice(SoftDiceConfig),
    /// [`soft_jaccard`](crate::losses::soft_jaccard).
    SoftJaccard(SoftJaccardConfig),
    /// [`tversky`](crate::losses::tversky).
    Tversky(TverskyConfig),
    /// [`focal`](crate::losses::focal).
    Focal(FocalConfig),
    /// [`lovasz_sigmoid`](crate::losses::lovasz_sigmoid).
    LovaszSigmoid(LovaszConfig),
    /// [`lovasz_hinge`](crate::losses::lovasz_hinge).
    LovaszHinge(LovaszConfig),
    /// [`boundary_loss`](crate::losses::boundary_loss).
    Boundary(BoundaryLossConfig),
    /// [`hausdorff_dt_loss`](crate::losses::hausdorff_dt_loss).
    HausdorffDt(HausdorffDtLossConfig),
}

impl Loss {
    /// Computes this loss with its options: the same as calling its function.
    ///
    /// # Errors
    /// Those of the loss's function.
    pub fn compute<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: Tensor<D>,
    ) -> Result<Tensor<1>, SegLossError> {
        self.plan(logits, targets, None)?.run()
    }

    /// [`Loss::compute`] with batch statistics shared across data-parallel workers: soft
    /// Dice, soft Jaccard and Tversky with [`Aggregation::Batch`](crate::Aggregation) score
    /// the global batch (see [`crate::distributed`]); every other loss is computed as by
    /// [`Loss::compute`].
    ///
    /// # Errors
    /// Those of the loss's function, and those of the reducer. A worker whose inputs fail
    /// still takes part in the collective, with zeros, before it returns its error (see
    /// [`crate::distributed`]).
    pub fn compute_shared<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: Tensor<D>,
        shared: &SharedStatistics,
    ) -> Result<Tensor<1>, SegLossError> {
        let agreed: Vec<usize> = self.shared_width().into_iter().collect();
        let zeros = statistics_kind(&logits);
        let planned = self.plan(logits, targets, Some(shared));
        shared
            .settle(
                planned,
                |plan| plan.exchange_mut().into_iter().collect(),
                &agreed,
                &zeros,
            )?
            .run()
    }

    /// `Some(K)` when this loss sums its statistics across workers in a `*_shared` call, as a
    /// `[3, K]` tensor (soft Dice, soft Jaccard and Tversky with batch statistics: `K = 1`).
    /// Decided by the options alone, so that a worker whose inputs fail their checks still
    /// knows what to send.
    pub(crate) fn shared_width(&self) -> Option<usize> {
        let batch = |aggregation| aggregation == Aggregation::Batch;
        match self {
            Loss::SoftDice(c) if batch(c.aggregation) => Some(1),
            Loss::SoftJaccard(c) if batch(c.aggregation) => Some(1),
            Loss::Tversky(c) if batch(c.aggregation) => Some(1),
            _ => None,
        }
    }

    /// The checks of this loss's options alone (those its function makes before looking at
    /// the inputs).
    pub(crate) fn validate(&self) -> Result<(), SegLossError> {
        match self {
            Loss::BinaryCrossEntropy(_) | Loss::LovaszSigmoid(_) => Ok(()),
            Loss::Boundary(c) => c.validate(),
            Loss::HausdorffDt(c) => c.validate(),
            Loss::WeightedCrossEntropy(c) => c.validate(),
            Loss::SoftDice(c) => c.validate(),
            Loss::SoftJaccard(c) => c.validate(),
            Loss::Tversky(c) => c.validate(),
            Loss::Focal(c) => c.validate(),
            Loss::LovaszHinge(c) => c.validate_hinge(),
        }
    }

    /// [`Loss::compute`] up to the choice of the execution path.
    pub(crate) fn plan<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: Tensor<D>,
        shared: Option<&SharedStatistics>,
    ) -> Result<Plan<D>, SegLossError> {
        match self {
            Loss::BinaryCrossEntropy(c) => binary_cross_entropy_plan(logits, targets, c),
            Loss::WeightedCrossEntropy(c) => weighted_cross_entropy_plan(logits, targets, c),
            Loss::SoftDice(c) => soft_dice_plan(logits, targets, c, shared),
            Loss::SoftJaccard(c) => soft_jaccard_plan(logits, targets, c, shared),
            Loss::Tversky(c) => tversky_plan(logits, targets, c, shared),
            Loss::Focal(c) => focal_plan(logits, targets, c),
            Loss::LovaszSigmoid(c) => lovasz_sigmoid_plan(logits, targets, c),
            Loss::LovaszHinge(c) => lovasz_hinge_plan(logits, targets, c),
            Loss::Boundary(c) => Ok(Plan::Computed(boundary_loss(logits, targets, c)?)),
            Loss::HausdorffDt(c) => Ok(Plan::Computed(hausdorff_dt_loss(logits, targets, c)?)),
        }
    }
}

/// One weighted term of a [`CompoundConfig`].
#[derive(Config, Debug)]
pub struct CompoundTerm {
    /// The term's weight (finite, >= 0).
    pub weight: f64,
    /// The loss and its options (its own `reduction` included).
    pub loss: Loss,
}

/// Options of [`compound`]: the terms of the sum, none by default (add them with
/// [`CompoundConfig::with_term`]).
#[derive(Config, Debug)]
pub struct CompoundConfig {
    /// The weighted losses to add up.
    #[config(default = "Vec::new()")]
    pub terms: Vec<CompoundTerm>,
}

impl CompoundConfig {
    /// Adds the term `weight * loss`.
    pub fn with_term(mut self, weight: f64, loss: Loss) -> Self {
        self.terms.push(CompoundTerm::new(weight, loss));
        self
    }

    /// The checks of the options alone: at least one term, every weight finite and `>= 0`,
    /// every term's options valid.
    pub(crate) fn validate(&self) -> Result<(), SegLossError> {
        check_terms(self.terms.iter().map(|t| t.weight))?;
        self.terms.iter().try_for_each(|t| t.loss.validate())
    }
}

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
/// With its default terms (soft Dice + BCE) on wgpu, one forward and backward pass runs as 10
/// kernels over the batch (20 in all, the others on per-image values): the sum of its terms' (6 +
/// 4), no read to the host. Counted with burn's fusion observer (burn 0.22.1) on `[4, 1, 64, 64]`;
/// "kernels over the batch" are the fused blocks that read or write a tensor of the batch's size.
/// The counts can move by a few with what ran before (burn's fusion cache).
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
    targets: Tensor<D>,
    config: &CompoundConfig,
) -> Result<Tensor<1>, SegLossError> {
    compound_with(logits, targets, config, None)
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
    targets: Tensor<D>,
    config: &CompoundConfig,
    shared: &SharedStatistics,
) -> Result<Tensor<1>, SegLossError> {
    compound_with(logits, targets, config, Some(shared))
}

fn compound_with<const D: usize>(
    logits: Tensor<D>,
    targets: Tensor<D>,
    config: &CompoundConfig,
    shared: Option<&SharedStatistics>,
) -> Result<Tensor<1>, SegLossError> {
    let Some(shared) = shared else {
        return finish_terms(compound_terms(logits, targets, config, None)?);
    };
    let agreed: Vec<usize> = config
        .terms
        .iter()
        .filter_map(|t| t.loss.shared_width())
        .collect();
    let zeros = statistics_kind(&logits);
    let planned = compound_terms(logits, targets, config, Some(shared));
    finish_terms(shared.settle(
        planned,
        |parts| {
            parts
                .iter_mut()
                .filter_map(|(_, plan)| plan.exchange_mut())
                .collect()
        },
        &agreed,
        &zeros,
    )?)
}

/// Every term of a [`compound`] loss planned and, but for those that wait for the other
/// workers' statistics, computed (the host terms run here): all that can fail before a
/// `*_shared` call's collectives.
fn compound_terms<const D: usize>(
    logits: Tensor<D>,
    targets: Tensor<D>,
    config: &CompoundConfig,
    shared: Option<&SharedStatistics>,
) -> Result<Vec<(f64, Plan<D>)>, SegLossError> {
    config.validate()?;
    let mut parts = Vec::with_capacity(config.terms.len());
    let mut host: Vec<(f64, HostCall<D>)> = Vec::new();
    for term in &config.terms {
        match term.loss.plan(logits.clone(), targets.clone(), shared)? {
            Plan::Host(call) => host.push((term.weight, call)),
            plan => parts.push((term.weight, plan)),
        }
    }
    for (weight, loss) in host_terms(host)? {
        parts.push((weight, Plan::Computed(loss)));
    }
    Ok(parts)
}

/// The weighted sum of planned terms that need no more than finishing.
fn finish_terms<const D: usize>(parts: Vec<(f64, Plan<D>)>) -> Result<Tensor<1>, SegLossError> {
    let parts = parts
        .into_iter()
        .map(|(weight, plan)| Ok((weight, plan.run()?)))
        .collect::<Result<_, SegLossError>>()?;
    sum_of(parts)
}

/// The weighted sum of the host terms of a [`compound`] loss: one [`CompoundKernel`] when
/// their results have one shape, each term alone otherwise (the sum then reports the
/// mismatch).
fn host_terms<const D: usize>(
    terms: Vec<(f64, HostCall<D>)>,
) -> Result<Vec<(f64, Tensor<1>)>, SegLossError> {
    let same_shape = terms
        .windows(2)
        .all(|w| w[0].1.per_image_result() == w[1].1.per_image_result());
    if terms.len() < 2 || !same_shape {
        return terms
            .into_iter()
            .map(|(weight, call)| Ok((weight, call.run()?)))
            .collect();
    }
    let per_image = terms[0].1.per_image_result();
    let mut inputs = None;
    let mut kernel = CompoundKernel {
        terms: Vec::with_capacity(terms.len()),
        per_image,
    };
    for (weight, call) in terms {
        // Every call holds the same inputs (the compound's logits and targets).
        inputs.get_or_insert((call.logits, call.targets));
        kernel.terms.push((weight, call.reduction, call.kernel));
    }
    let Some((logits, targets)) = inputs else {
        return Ok(Vec::new());
    };
    // The kernel applies each term's reduction itself.
    Plan::host(logits, targets, Reduction::None, kernel)
        .run()
        .map(|loss| vec![(1.0, loss)])
}

/// `sum_t weight_t * reduce_t(values_t)` over host terms, in one host operation: each term
/// writes `weight_t * d reduce_t / d values_t * g_t` into the gradient buffer, the first term
/// by assignment and the others by addition. Its values are per image (`[N]`) when every
/// term is per image with `Reduction::None`, one value (`[1]`) otherwise.
pub(crate) struct CompoundKernel {
    pub terms: Vec<(f64, Reduction, Box<dyn HostKernel>)>,
    pub per_image: bool,
}

impl TypedKernel for CompoundKernel {
    fn per_image(&self) -> bool {
        self.per_image
    }
    fn run<F: HostFloat>(
        &self,
        x: &[F],
        y: Targets<'_, F>,
        rows: usize,
        mut grad: Option<Gradient<'_, F>>,
    ) -> Result<Vec<f64>, SegLossError> {
        let mut total = vec![0.0; if self.per_image { rows } else { 1 }];
        for (t, (weight, reduction, kernel)) in self.terms.iter().enumerate() {
            // d reduce(values) / d values_k: 1/N for a mean over images, else 1.
            let factor = if kernel.per_image() && *reduction == Reduction::Mean {
                1.0 / rows as f64
            } else {
                1.0
            };
            let term_grad = grad.as_mut().map(|g| g.share(weight * factor, t > 0));
            let values = F::run(&**kernel, x, y, rows, term_grad)?;
            if self.per_image {
                for (sum, v) in total.iter_mut().zip(&values) {
                    *sum += weight * v;
                }
            } else {
                total[0] += weight * factor * values.iter().sum::<f64>();
            }
        }
        Ok(total)
    }
}

/// Any multiclass loss of the crate with its options: a term of a
/// [`MulticlassCompoundConfig`].
#[derive(Config, Debug)]
pub enum MulticlassLoss {
    /// [`multiclass_overlap`](crate::losses::multiclass_overlap) (soft Dice, Jaccard or Tversky).
    Overlap(MulticlassOverlapConfig),
    /// [`generalized_dice`](crate::losses::generalized_dice).
    GeneralizedDice(GeneralizedDiceConfig),
    /// [`lovasz_softmax`].
    LovaszSoftmax(LovaszSoftmaxConfig),
    /// [`multiclass_focal`](crate::losses::multiclass_focal) (`gamma = 0`: the cross-entropy).
    Focal(MulticlassFocalConfig),
    /// [`multiclass_boundary_loss`](crate::losses::multiclass_boundary_loss).
    Boundary(MulticlassBoundaryLossConfig),
    /// [`multiclass_hausdorff_dt_loss`](crate::losses::multiclass_hausdorff_dt_loss).
    HausdorffDt(MulticlassHausdorffDtLossConfig),
}

impl MulticlassLoss {
    /// The checks of this loss's options alone.
    pub(crate) fn validate(&self) -> Result<(), SegLossError> {
        match self {
            MulticlassLoss::Overlap(c) => c.validate(),
            MulticlassLoss::GeneralizedDice(c) => c.validate(),
            MulticlassLoss::LovaszSoftmax(c) => c.validate(),
            MulticlassLoss::Focal(c) => c.validate(),
            MulticlassLoss::Boundary(c) => c.validate(),
            MulticlassLoss::HausdorffDt(c) => c.validate(),
        }
    }

    /// Computes this loss with its options: the same as calling its function.
    ///
    /// # Errors
    /// Those of the loss's function.
    pub fn compute<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: impl Into<ClassTargets<D>>,
    ) -> Result<Tensor<1>, SegLossError> {
        self.plan(logits, targets.into(), None)?.run()
    }

    /// [`MulticlassLoss::compute`] with batch statistics shared across data-parallel workers:
    /// `multiclass_overlap` and `generalized_dice` with
    /// [`Aggregation::Batch`](crate::Aggregation) score the global batch (see
    /// [`crate::distributed`]); every other loss is computed as by
    /// [`MulticlassLoss::compute`].
    ///
    /// # Errors
    /// Those of the loss's function, and those of the reducer. A worker whose inputs fail
    /// still takes part in the collective, with zeros, before it returns its error (see
    /// [`crate::distributed`]).
    pub fn compute_shared<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: impl Into<ClassTargets<D>>,
        shared: &SharedStatistics,
    ) -> Result<Tensor<1>, SegLossError> {
        let agreed: Vec<usize> = self.shared_width(channels(&logits)).into_iter().collect();
        let zeros = statistics_kind(&logits);
        let planned = self.plan(logits, targets.into(), Some(shared));
        shared
            .settle(
                planned,
                |plan| plan.exchange_mut().into_iter().collect(),
                &agreed,
                &zeros,
            )?
            .run()
    }

    /// `Some(K)` when this loss sums its statistics across workers in a `*_shared` call, as a
    /// `[3, K]` tensor: `K = C` for `multiclass_overlap` and generalized Dice with batch
    /// statistics, `C - 1` for generalized Dice without the background. Decided by the options
    /// and the class count `classes` alone, as [`Loss::shared_width`].
    pub(crate) fn shared_width(&self, classes: usize) -> Option<usize> {
        let batch = |aggregation| aggregation == Aggregation::Batch;
        match self {
            MulticlassLoss::Overlap(c) if batch(c.aggregation) => Some(classes),
            MulticlassLoss::GeneralizedDice(c) if batch(c.aggregation) => {
                Some(classes.saturating_sub(usize::from(!c.include_background)))
            }
            _ => None,
        }
    }

    /// [`MulticlassLoss::compute`] up to the choice of the execution path.
    pub(crate) fn plan<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: ClassTargets<D>,
        shared: Option<&SharedStatistics>,
    ) -> Result<ClassPlan<D>, SegLossError> {
        match self {
            MulticlassLoss::Overlap(c) => multiclass_overlap_plan(logits, targets, c, shared),
            MulticlassLoss::GeneralizedDice(c) => generalized_dice_plan(logits, targets, c, shared),
            MulticlassLoss::LovaszSoftmax(c) => {
                Ok(ClassPlan::Computed(lovasz_softmax(logits, targets, c)?))
            }
            MulticlassLoss::Focal(c) => multiclass_focal_plan(logits, targets, c),
            MulticlassLoss::Boundary(c) => Ok(ClassPlan::Computed(multiclass_boundary_loss(
                logits, targets, c,
            )?)),
            MulticlassLoss::HausdorffDt(c) => Ok(ClassPlan::Computed(
                multiclass_hausdorff_dt_loss(logits, targets, c)?,
            )),
        }
    }
}

/// One weighted term of a [`MulticlassCompoundConfig`].
#[derive(Config, Debug)]
pub struct MulticlassCompoundTerm {
    /// The term's weight (finite, >= 0).
    pub weight: f64,
    /// The loss and its options (its own `reduction` included).
    pub loss: MulticlassLoss,
}

/// Options of [`multiclass_compound`]: the terms of the sum, none by default (add them with
/// [`MulticlassCompoundConfig::with_term`]).
#[derive(Config, Debug)]
pub struct MulticlassCompoundConfig {
    /// The weighted losses to add up.
    #[config(default = "Vec::new()")]
    pub terms: Vec<MulticlassCompoundTerm>,
}

impl MulticlassCompoundConfig {
    /// Adds the term `weight * loss`.
    pub fn with_term(mut self, weight: f64, loss: MulticlassLoss) -> Self {
        self.terms.push(MulticlassCompoundTerm::new(weight, loss));
        self
    }

    /// The checks of the options alone, as [`CompoundConfig`]'s.
    pub(crate) fn validate(&self) -> Result<(), SegLossError> {
        check_terms(self.terms.iter().map(|t| t.weight))?;
        self.terms.iter().try_for_each(|t| t.loss.validate())
    }
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
/// Dice + CE on wgpu: one forward and backward pass runs 28 kernels over the batch (44 in all), no
/// read to the host: one more than its terms alone (13 + 14), as burn's fusion runs part of the
/// segment where the two terms' backward passes meet one operation at a time. Counted with burn's
/// fusion observer (burn 0.22.1) on `[4, 4, 64, 64]` logits with class indices; "kernels over the
/// batch" are the fused blocks that read or write a tensor of the batch's size. The counts can
/// move by a few with what ran before (burn's fusion cache).
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
    targets: impl Into<ClassTargets<D>>,
    config: &MulticlassCompoundConfig,
) -> Result<Tensor<1>, SegLossError> {
    multiclass_compound_with(logits, targets.into(), config, None)
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
    targets: impl Into<ClassTargets<D>>,
    config: &MulticlassCompoundConfig,
    shared: &SharedStatistics,
) -> Result<Tensor<1>, SegLossError> {
    multiclass_compound_with(logits, targets.into(), config, Some(shared))
}

fn multiclass_compound_with<const D: usize>(
    logits: Tensor<D>,
    targets: ClassTargets<D>,
    config: &MulticlassCompoundConfig,
    shared: Option<&SharedStatistics>,
) -> Result<Tensor<1>, SegLossError> {
    let Some(shared) = shared else {
        return finish_class_terms(multiclass_compound_terms(logits, targets, config, None)?);
    };
    let classes = channels(&logits);
    let agreed: Vec<usize> = config
        .terms
        .iter()
        .filter_map(|t| t.loss.shared_width(classes))
        .collect();
    let zeros = statistics_kind(&logits);
    let planned = multiclass_compound_terms(logits, targets, config, Some(shared));
    finish_class_terms(shared.settle(
        planned,
        |parts| {
            parts
                .iter_mut()
                .filter_map(|(_, plan)| plan.exchange_mut())
                .collect()
        },
        &agreed,
        &zeros,
    )?)
}

/// Every term of a [`multiclass_compound`] loss planned and, but for those that wait for the
/// other workers' statistics, computed, as [`compound_terms`].
fn multiclass_compound_terms<const D: usize>(
    logits: Tensor<D>,
    targets: ClassTargets<D>,
    config: &MulticlassCompoundConfig,
    shared: Option<&SharedStatistics>,
) -> Result<Vec<(f64, ClassPlan<D>)>, SegLossError> {
    config.validate()?;
    let mut parts = Vec::with_capacity(config.terms.len());
    let mut host = Vec::new();
    for term in &config.terms {
        match term.loss.plan(logits.clone(), targets.clone(), shared)? {
            plan @ ClassPlan::Host { .. } => host.push((term.weight, plan)),
            plan => parts.push((term.weight, plan)),
        }
    }
    for (weight, loss) in class_host_terms(host)? {
        parts.push((weight, ClassPlan::Computed(loss)));
    }
    Ok(parts)
}

/// The weighted sum of planned multiclass terms that need no more than finishing.
fn finish_class_terms<const D: usize>(
    parts: Vec<(f64, ClassPlan<D>)>,
) -> Result<Tensor<1>, SegLossError> {
    let parts = parts
        .into_iter()
        .map(|(weight, plan)| Ok((weight, plan.run()?)))
        .collect::<Result<_, SegLossError>>()?;
    sum_of(parts)
}

/// The class count `C` of multiclass logits `[N, C, ...]`, 0 for rank < 2 (whose call fails
/// its checks on every worker alike).
fn channels<const D: usize>(logits: &Tensor<D>) -> usize {
    logits.dims().get(1).copied().unwrap_or(0)
}

/// The weighted sum of the host terms of a [`multiclass_compound`] loss: the terms whose
/// kernels read the inputs alike (classes, activation, `from_logits`, `ignore_index`) and give
/// results of one shape run as one [`ClassKernel`] with one head per term; any other term runs
/// alone (the sum then reports a shape mismatch, if there is one).
fn class_host_terms<const D: usize>(
    terms: Vec<(f64, ClassPlan<D>)>,
) -> Result<Vec<(f64, Tensor<1>)>, SegLossError> {
    let mut merged: Vec<(ClassKernel, Tensor<D>, HostTargets<D>)> = Vec::new();
    let mut alone = Vec::new();
    for (weight, plan) in terms {
        let ClassPlan::Host {
            logits,
            targets,
            kernel,
        } = plan
        else {
            alone.push((weight, plan));
            continue;
        };
        let per_image_result = kernel.per_image;
        let heads = kernel.heads.iter().map(|h| Head {
            weight: weight * h.weight,
            ..h.clone()
        });
        let shares_pass = |k: &ClassKernel| {
            (k.classes, k.activation, k.from_logits, k.ignore_index)
                == (
                    kernel.classes,
                    kernel.activation,
                    kernel.from_logits,
                    kernel.ignore_index,
                )
                && k.per_image == per_image_result
        };
        match merged.iter_mut().find(|(k, ..)| shares_pass(k)) {
            Some((k, ..)) => k.heads.extend(heads),
            None => {
                let heads = heads.collect();
                merged.push((
                    ClassKernel {
                        heads,
                        per_image: per_image_result,
                        ..kernel
                    },
                    logits,
                    targets,
                ));
            }
        }
    }
    let mut parts: Vec<(f64, Tensor<1>)> = alone
        .into_iter()
        .map(|(weight, plan)| Ok((weight, plan.run()?)))
        .collect::<Result<_, SegLossError>>()?;
    for (kernel, logits, targets) in merged {
        // The kernel applies each head's weight and reduction itself.
        parts.push((
            1.0,
            Plan::host(logits, targets, Reduction::None, kernel).run()?,
        ));
    }
    Ok(parts)
}

/// At least one term, every weight finite and non-negative.
fn check_terms(weights: impl ExactSizeIterator<Item = f64>) -> Result<(), SegLossError> {
    if weights.len() == 0 {
        return Err(no_terms());
    }
    for weight in weights {
        crate::check::non_negative("weight", weight)?;
    }
    Ok(())
}

fn no_terms() -> SegLossError {
    SegLossError::InvalidOption {
        name: "terms",
        value: "[]".into(),
        allowed: "at least one term (with_term)",
    }
}

/// `sum_t w_t l_t` over the terms `(w_t, l_t)` (at least one: [`check_terms`]), checking that
/// every term has the shape of the first.
///
/// The weights are applied here, after every term has been computed, and a weight of 1 costs
/// no operation: on a fusion backend (wgpu) a small `l_t * w_t` queued between two terms
/// joins the next term's first fused block and breaks its fusion (burn 0.22 then ran the
/// segment one operation at a time: 30 kernels over the batch instead of 10 for a Dice + BCE
/// forward and backward, seen in burn's fusion log).
fn sum_of(parts: Vec<(f64, Tensor<1>)>) -> Result<Tensor<1>, SegLossError> {
    let weighted = |(weight, loss): (f64, Tensor<1>)| {
        if weight == 1.0 {
            loss
        } else {
            loss.mul_scalar(weight)
        }
    };
    let mut parts = parts.into_iter();
    let mut total = weighted(parts.next().ok_or_else(no_terms)?);
    for part in parts {
        let (left, right) = (total.dims(), part.1.dims());
        if left != right {
            return Err(SegLossError::ShapeMismatch {
                left_name: "the sum of the earlier terms",
                left: left.to_vec(),
                right_name: "the next term",
                right: right.to_vec(),
            });
        }
        total = total + weighted(part);
    }
    Ok(total)
}
