//! Soft overlap statistics shared by the soft Dice, soft Jaccard and Tversky losses, and the
//! one body that turns them into any of those losses on the device or on the host.
//!
//! With `p` the predicted probabilities and `y` the targets, summed over the pixels of an
//! image (or of the whole batch, [`Aggregation::Batch`]):
//!
//! - intersection `I = sum(p * y)` (the soft true positives), or with `soft_label`
//!   `I = (|p| + |y| - sum|p - y|) / 2` (Wang & Blaschko's L1 form: equal to `sum(p y)` for
//!   hard targets, and, unlike it, maximal at `p = y` for soft targets),
//! - `|p| = sum(p)` and `|y| = sum(y)`, or `sum(p^2)` and `sum(y^2)` when `squared`.
//!
//! Every loss scores the linear ratio `(a I + s_nr) / (b I + c |p| + d |y| + s_dr)`
//! ([`Ratio`]) and returns `1 - ratio`, or `-ln(max(ratio, 1e-7))` with `log_loss`.

use burn::tensor::Tensor;

use crate::check;
use crate::engine::{Exchange, Plan, runs_on_host};
use crate::error::SegLossError;
use crate::kernels::overlap::{LOG_FLOOR, OverlapParams};
use crate::loss::pixel_weights::{BinaryTargets, weighted};
use crate::loss::probabilities;
use crate::options::{Aggregation, Execution, Reduction};
use crate::tensors::{row_sums, rows};

pub(crate) use crate::kernels::overlap::Ratio;

/// The config struct of an overlap loss (soft Dice, soft Jaccard, Tversky, the multiclass
/// overlap loss): its own fields as given, then the eight options every overlap loss shares,
/// written once here with their docs, and `overlap_params`, the kernel's view of them.
macro_rules! overlap_config {
    (
        $(#[$doc:meta])*
        pub struct $name:ident {
            $($(#[$attr:meta])* pub $field:ident: $ty:ty,)*
        }
    ) => {
        $(#[$doc])*
        #[derive(burn::config::Config, Debug)]
        pub struct $name {
            $($(#[$attr])* pub $field: $ty,)*
            /// Added to the score's numerator (default `1e-5`, MONAI's). Must be >= 0 and
            /// finite.
            #[config(default = 1e-5)]
            pub smooth_nr: f64,
            /// Added to the score's denominator (default `1e-5`). Must be >= 0 and finite. With
            /// both smoothing terms equal, an empty target predicted empty scores loss 0.
            #[config(default = 1e-5)]
            pub smooth_dr: f64,
            /// `false` (default): `I = sum(p y)`; `true`: `I = (sum(p) + sum(y) - sum|p - y|) / 2`,
            /// the L1 form of Wang & Blaschko (MONAI's and smp's `soft_label`): the same value
            /// for hard targets (and the same gradient, except at probabilities of exactly 0 or
            /// 1, where `|p - y|` has a kink), and for soft targets the loss is minimal at
            /// `p = y`, where with `sum(p y)` it is not. Needs plain sums (`squared = false`).
            #[config(default = false)]
            pub soft_label: bool,
            /// `false` (default): `loss = 1 - score`; `true`: `loss = -ln(max(score, 1e-7))`
            /// (smp's `log_loss`; steeper for poor scores, the floor keeps it finite).
            #[config(default = false)]
            pub log_loss: bool,
            /// Statistics per image (default, as MONAI and the paper) or over the whole batch
            /// first ([`Aggregation::Batch`]: nnU-Net's `batch_dice`, smp).
            #[config(default = "Aggregation::PerImage")]
            pub aggregation: Aggregation,
            /// `true` (default): inputs are logits and `p` their sigmoid (or softmax);
            /// `false`: probabilities.
            #[config(default = true)]
            pub from_logits: bool,
            /// How the per-image losses are combined (default [`Reduction::Mean`]).
            #[config(default = "Reduction::Mean")]
            pub reduction: Reduction,
            /// Host kernels or burn operations (default [`Execution::Auto`]: host kernels on
            /// the CPU backends).
            #[config(default = "Execution::Auto")]
            pub execution: Execution,
        }

        impl $name {
            /// The kernel's view of the shared options, scoring `ratio` with `squared` sums.
            fn overlap_params(
                &self,
                ratio: $crate::loss::overlap::Ratio,
                squared: bool,
            ) -> $crate::kernels::overlap::OverlapParams {
                $crate::kernels::overlap::OverlapParams {
                    ratio,
                    smooth_nr: self.smooth_nr,
                    smooth_dr: self.smooth_dr,
                    squared,
                    soft_label: self.soft_label,
                    log_loss: self.log_loss,
                    batch: self.aggregation == Aggregation::Batch,
                    from_logits: self.from_logits,
                    gamma: 1.0,
                }
            }
        }
    };
}
pub(crate) use overlap_config;

/// The loss of `ratio` of the soft statistics, per image or per batch, reduced: the body of
/// [`soft_dice`](crate::losses::soft_dice), [`soft_jaccard`](crate::losses::soft_jaccard) and
/// [`tversky`](crate::losses::tversky). The options are checked by the caller (each config's
/// `validate`, which also checks that loss's own options).
///
/// With `shared` and batch statistics, the statistics are computed with burn operations and
/// the plan waits for their sums across workers ([`SharedStatistics`]).
pub(crate) fn overlap_plan<const D: usize>(
    logits: Tensor<D>,
    targets: BinaryTargets<D>,
    params: OverlapParams,
    (reduction, execution): (Reduction, Execution),
    share: bool,
) -> Result<Plan<D>, SegLossError> {
    let (logits, targets, weights) = targets.checked(logits)?;
    let share = share && params.batch;
    if !share && runs_on_host(execution, &logits, targets.is_tracked())? {
        return Ok(Plan::host(logits, targets, weights, reduction, params));
    }
    // Flattened before any arithmetic: a reshape between the sigmoid and the products would
    // end the fused kernel there (burn 0.22's fusion), costing a kernel over the batch.
    let p = probabilities(rows(logits), params.from_logits);
    let y = rows(targets);
    let w = weights.map(rows);
    let statistics = soft_statistics(p, y, params.soft_label, params.squared, |t| {
        let per_image = row_sums(weighted(t, w.as_ref()));
        if params.batch {
            per_image.sum()
        } else {
            per_image
        }
    });
    let finish = move |s: SoftStatistics<1>| {
        reduction.apply(raised(loss_of_statistics(&s, &params), params.gamma))
    };
    Ok(statistics_plan(statistics, share, finish))
}

/// The plan of the soft statistics `statistics` and their loss `finish`: computed now, or,
/// with `share`, waiting for the statistics' sums over the data-parallel workers (the
/// statistics are the three rows of the exchanged sums).
pub(crate) fn statistics_plan<const D: usize, const O: usize>(
    statistics: SoftStatistics<O>,
    share: bool,
    finish: impl FnOnce(SoftStatistics<O>) -> Tensor<1> + 'static,
) -> Plan<D> {
    if !share {
        return Plan::Computed(finish(statistics));
    }
    let SoftStatistics {
        intersection,
        predicted,
        target,
    } = statistics;
    Plan::Exchange(Exchange::of_sums(
        [intersection, predicted, target],
        move |[intersection, predicted, target]| {
            finish(SoftStatistics {
                intersection,
                predicted,
                target,
            })
        },
    ))
}

/// The widths of a binary overlap loss's shared sums: one `[3, 1]` sum with batch statistics,
/// none per image.
pub(crate) fn batch_width(aggregation: Aggregation) -> Vec<usize> {
    match aggregation {
        Aggregation::Batch => vec![1],
        Aggregation::PerImage => Vec::new(),
    }
}

/// The checks every overlap loss shares: smoothing in range, and `soft_label` only with plain
/// sums.
pub(crate) fn check_params(params: &OverlapParams) -> Result<(), SegLossError> {
    check::non_negative("smooth_nr", params.smooth_nr)?;
    check::non_negative("smooth_dr", params.smooth_dr)?;
    check::positive("gamma", params.gamma)?;
    if params.soft_label && params.squared {
        return Err(SegLossError::InvalidOption {
            name: "soft_label",
            value: "true".into(),
            allowed: "soft_label = true needs squared = false (the L1 intersection is defined \
                      for plain sums)",
        });
    }
    Ok(())
}

/// The loss of `params.ratio` of the statistics, elementwise (one value per problem).
pub(crate) fn loss_of_statistics<const D: usize>(
    s: &SoftStatistics<D>,
    params: &OverlapParams,
) -> Tensor<D> {
    let r = params.ratio;
    let numerator = linear(&[(r.nr_intersection, &s.intersection)], params.smooth_nr);
    let denominator = linear(
        &[
            (r.dr_intersection, &s.intersection),
            (r.dr_predicted, &s.predicted),
            (r.dr_target, &s.target),
        ],
        params.smooth_dr,
    );
    loss_of_ratio(numerator, denominator, params.log_loss)
}

/// `loss^gamma` elementwise, 0 (with zero gradient) where the loss is 0 or below, NaN kept:
/// the device path of [`focal_power`](crate::kernels::overlap::focal_power), whose docs say
/// why. `gamma = 1` adds no operation.
///
/// burn 0.22's wgpu `powf` turns a NaN into a number (measured on lavapipe: a NaN logit gave a
/// finite focal Tversky loss), so the NaN is added back as [`sigmoid_keeping_nan`] does: the
/// loss where it is NaN, 0 elsewhere (a term with zero gradient there).
///
/// [`sigmoid_keeping_nan`]: crate::loss::sigmoid_keeping_nan
pub(crate) fn raised<const D: usize>(loss: Tensor<D>, gamma: f64) -> Tensor<D> {
    if gamma == 1.0 {
        return loss;
    }
    let perfect = loss.clone().lower_equal_elem(0.0);
    let not_nan = loss.clone().equal(loss.clone());
    let powered = loss
        .clone()
        .mask_fill(perfect.clone(), 1.0)
        .powf_scalar(gamma)
        .mask_fill(perfect, 0.0);
    powered + loss.mask_fill(not_nan, 0.0)
}

/// `sum_k c_k t_k + constant`, skipping zero coefficients and multiplications by one (so
/// Dice's denominator stays `|p| + |y| + s_dr` on the device).
fn linear<const D: usize>(terms: &[(f64, &Tensor<D>)], constant: f64) -> Tensor<D> {
    let mut sum: Option<Tensor<D>> = None;
    for &(c, t) in terms {
        if c == 0.0 {
            continue;
        }
        let term = if c == 1.0 {
            t.clone()
        } else {
            t.clone().mul_scalar(c)
        };
        sum = Some(match sum {
            Some(s) => s + term,
            None => term,
        });
    }
    let sum = sum.unwrap_or_else(|| terms[0].1.zeros_like());
    sum.add_scalar(constant)
}

/// Soft statistics, one value per problem (an image, an image and class, or the batch).
pub(crate) struct SoftStatistics<const D: usize> {
    /// `sum(p * y)`, or `(|p| + |y| - sum|p - y|) / 2` with soft labels.
    pub intersection: Tensor<D>,
    /// `sum(p)`, or `sum(p^2)` when squared.
    pub predicted: Tensor<D>,
    /// `sum(y)`, or `sum(y^2)` when squared.
    pub target: Tensor<D>,
}

/// The soft statistics of probabilities `p` and targets `y` as burn operations (the device
/// path), `sum` reducing a `p`-shaped tensor to one value per problem.
pub(crate) fn soft_statistics<const I: usize, const O: usize>(
    p: Tensor<I>,
    y: Tensor<I>,
    soft_label: bool,
    squared: bool,
    sum: impl Fn(Tensor<I>) -> Tensor<O>,
) -> SoftStatistics<O> {
    let first = if soft_label {
        sum(p.clone().sub(y.clone()).abs())
    } else {
        sum(p.clone().mul(y.clone()))
    };
    let (predicted, target) = if squared {
        (sum(p.square()), sum(y.square()))
    } else {
        (sum(p), sum(y))
    };
    let intersection = if soft_label {
        (predicted.clone() + target.clone() - first).mul_scalar(0.5)
    } else {
        first
    };
    SoftStatistics {
        intersection,
        predicted,
        target,
    }
}

/// `1 - numerator / denominator`, or `-ln(max(ratio, 1e-7))` when `log_loss`, elementwise,
/// for a score whose denominator is zero only when prediction and target are both all-zero:
/// that `0/0` is a perfect match (score 1, loss 0), so the loss stays finite with
/// `smooth_dr = 0`. The substitution is a `mask_fill`, whose gradient is zero where it
/// applies, so no `0/0` reaches the backward pass either. (A `mask_where` with a tensor of
/// ones fused worse: benches/results/design_notes.md, "`mask_fill` for the empty score".)
pub(crate) fn loss_of_ratio<const D: usize>(
    numerator: Tensor<D>,
    denominator: Tensor<D>,
    log_loss: bool,
) -> Tensor<D> {
    let empty = denominator.clone().lower_equal_elem(0.0);
    let numerator = numerator.mask_fill(empty.clone(), 1.0);
    let denominator = denominator.mask_fill(empty, 1.0);
    let ratio = numerator.div(denominator);
    if log_loss {
        ratio.clamp_min(LOG_FLOOR).log().neg()
    } else {
        ratio.neg().add_scalar(1.0)
    }
}
