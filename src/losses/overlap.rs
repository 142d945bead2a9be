//! Soft overlap statistics shared by the soft Dice and soft Jaccard losses, and the one body
//! that turns them into either loss on the device or on the host.
//!
//! With `p` the predicted probabilities and `y` the targets, summed over the pixels of an
//! image (or of the whole batch, [`Aggregation::Batch`]):
//!
//! - intersection `I = sum(p * y)` (the soft true positives),
//! - `|p| = sum(p)` and `|y| = sum(y)`, or `sum(p^2)` and `sum(y^2)` when `squared`.

use burn::tensor::Tensor;

use crate::check;
use crate::kernels::math::Real;
use crate::kernels::overlap::{OverlapParams, overlap};
use crate::losses::execution::{HostKernel, host_loss, runs_on_host};
use crate::losses::{probabilities, row_sums, rows};
use crate::{Aggregation, Execution, Reduction, SegLossError};

pub(crate) use crate::kernels::overlap::Ratio;

/// The options common to every overlap loss, gathered from its config.
pub(crate) struct OverlapOptions {
    pub smooth_nr: f64,
    pub smooth_dr: f64,
    pub squared: bool,
    pub aggregation: Aggregation,
    pub from_logits: bool,
    pub reduction: Reduction,
    pub execution: Execution,
}

/// `1 - ratio` of the soft statistics, per image or per batch, reduced: the body of
/// [`soft_dice`](crate::losses::soft_dice) and [`soft_jaccard`](crate::losses::soft_jaccard).
pub(crate) fn overlap_loss<const D: usize>(
    logits: Tensor<D>,
    targets: Tensor<D>,
    ratio: Ratio,
    options: &OverlapOptions,
) -> Result<Tensor<1>, SegLossError> {
    check::non_negative("smooth_nr", options.smooth_nr)?;
    check::non_negative("smooth_dr", options.smooth_dr)?;
    let targets = check::binary_pair(&logits, targets)?;
    let params = OverlapParams {
        ratio,
        smooth_nr: options.smooth_nr,
        smooth_dr: options.smooth_dr,
        squared: options.squared,
        batch: options.aggregation == Aggregation::Batch,
        from_logits: options.from_logits,
    };
    if runs_on_host(options.execution, &logits, &targets)? {
        return host_loss(logits, targets, options.reduction, &OverlapKernel(params));
    }
    let s = soft_statistics(logits, targets, options);
    let (numerator, denominator) = match ratio {
        Ratio::Dice => (
            s.intersection.mul_scalar(2.0).add_scalar(params.smooth_nr),
            (s.predicted + s.target).add_scalar(params.smooth_dr),
        ),
        Ratio::Jaccard => (
            s.intersection.clone().add_scalar(params.smooth_nr),
            (s.predicted + s.target - s.intersection).add_scalar(params.smooth_dr),
        ),
    };
    Ok(one_minus_ratio(numerator, denominator, options.reduction))
}

/// Soft statistics, each `[N]` (per image) or `[1]` (batch aggregation).
struct SoftStatistics {
    /// `sum(p * y)`.
    intersection: Tensor<1>,
    /// `sum(p)`, or `sum(p^2)` when squared.
    predicted: Tensor<1>,
    /// `sum(y)`, or `sum(y^2)` when squared.
    target: Tensor<1>,
}

/// The soft statistics as burn operations (the device path).
fn soft_statistics<const D: usize>(
    logits: Tensor<D>,
    targets: Tensor<D>,
    options: &OverlapOptions,
) -> SoftStatistics {
    let p = rows(probabilities(logits, options.from_logits));
    let y = rows(targets);
    let intersection = row_sums(p.clone().mul(y.clone()));
    let (predicted, target) = if options.squared {
        (row_sums(p.square()), row_sums(y.square()))
    } else {
        (row_sums(p), row_sums(y))
    };
    match options.aggregation {
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
    }
}

/// `1 - numerator / denominator`, reduced, for a score whose denominator is zero only when
/// prediction and target are both all-zero: that `0/0` is a perfect match (score 1, loss 0),
/// so the loss stays finite with `smooth_dr = 0`. The substitution is a `mask_where`, whose
/// gradient is zero where it applies, so no `0/0` reaches the backward pass either.
fn one_minus_ratio(
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

/// The host path of the overlap losses.
struct OverlapKernel(OverlapParams);

impl HostKernel for OverlapKernel {
    fn per_image(&self) -> bool {
        !self.0.batch
    }
    fn run<F: Real>(
        &self,
        x: &mut [F],
        y: &[F],
        rows: usize,
        grad: bool,
    ) -> Result<Vec<f64>, SegLossError> {
        Ok(overlap(x, y, rows, self.0, grad))
    }
}
