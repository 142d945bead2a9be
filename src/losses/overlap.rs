//! Soft overlap statistics shared by the soft Dice and soft Jaccard losses.
//!
//! With `p` the predicted probabilities and `y` the targets, summed over the pixels of an
//! image (or of the whole batch, [`Aggregation::Batch`]):
//!
//! - intersection `I = sum(p * y)` (the soft true positives),
//! - `|p| = sum(p)` and `|y| = sum(y)`, or `sum(p^2)` and `sum(y^2)` when `squared`.

use burn::tensor::Tensor;

use crate::check;
use crate::losses::{probabilities, row_sums, rows};
use crate::{Aggregation, Reduction, SegLossError};

/// The options common to every overlap loss, gathered from its config.
pub(crate) struct OverlapOptions {
    pub smooth_nr: f64,
    pub smooth_dr: f64,
    pub squared: bool,
    pub aggregation: Aggregation,
    pub from_logits: bool,
    pub reduction: Reduction,
}

/// Soft statistics, each `[N]` (per image) or `[1]` (batch aggregation).
pub(crate) struct SoftStatistics {
    /// `sum(p * y)`.
    pub intersection: Tensor<1>,
    /// `sum(p)`, or `sum(p^2)` when squared.
    pub predicted: Tensor<1>,
    /// `sum(y)`, or `sum(y^2)` when squared.
    pub target: Tensor<1>,
}

/// Checks the inputs and options, then computes the soft statistics.
pub(crate) fn soft_statistics<const D: usize>(
    logits: Tensor<D>,
    targets: Tensor<D>,
    options: &OverlapOptions,
) -> Result<SoftStatistics, SegLossError> {
    check::non_negative("smooth_nr", options.smooth_nr)?;
    check::non_negative("smooth_dr", options.smooth_dr)?;
    let targets = check::binary_pair(&logits, targets)?;
    let p = rows(probabilities(logits, options.from_logits));
    let y = rows(targets);
    let intersection = row_sums(p.clone().mul(y.clone()));
    let (predicted, target) = if options.squared {
        (row_sums(p.square()), row_sums(y.square()))
    } else {
        (row_sums(p), row_sums(y))
    };
    Ok(match options.aggregation {
        Aggregation::PerImage => SoftStatistics {
            intersection,
            predicted,
            target,
        },
        Aggregation::Batch => SoftStatistics {
            intersection: intersection.sum(),
            predicted: predicted.sum(),
            target: target.sum(),
        },
    })
}

/// `1 - numerator / denominator`, reduced, for a score whose denominator is zero only when
/// prediction and target are both all-zero: that `0/0` is a perfect match (score 1, loss 0),
/// so the loss stays finite with `smooth_dr = 0`. The substitution is a `mask_where`, whose
/// gradient is zero where it applies, so no `0/0` reaches the backward pass either.
pub(crate) fn one_minus_ratio(
    numerator: Tensor<1>,
    denominator: Tensor<1>,
    reduction: Reduction,
) -> Tensor<1> {
    let empty = denominator.clone().lower_equal_elem(0.0);
    let one = numerator.ones_like();
    let numerator = numerator.mask_where(empty.clone(), one.clone());
    let denominator = denominator.mask_where(empty, one);
    reduction.apply(numerator.div(denominator).neg().add_scalar(1.0))
}
