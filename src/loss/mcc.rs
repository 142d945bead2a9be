//! The Matthews correlation coefficient loss.

use burn::config::Config;
use burn::tensor::Tensor;

use crate::check;
use crate::engine::{Plan, runs_on_host};
use crate::error::SegLossError;
use crate::kernels::mcc::MccParams;
use crate::loss::description::{LossDescription, compute};
use crate::loss::pixel_weights::{BinaryTargets, weighted};
use crate::loss::probabilities;
use crate::options::{Aggregation, Execution, Reduction};
use crate::tensors::{row_sums, rows};

/// Options of [`mcc`]. Defaults follow smp's `MCCLoss` (`eps = 1e-5`, counts over the batch).
#[derive(Config, Debug)]
pub struct MccConfig {
    /// Added to each of the four soft counts (default `1e-5`, smp's): it keeps the
    /// coefficient defined when a count is zero, e.g. an empty target (where the true MCC is
    /// `0/0`). Must be > 0 and finite.
    #[config(default = 1e-5)]
    pub eps: f64,
    /// Counts over the whole batch (default [`Aggregation::Batch`], as smp: one loss for the
    /// batch) or per image ([`Aggregation::PerImage`]: one loss per image, then reduced).
    #[config(default = "Aggregation::Batch")]
    pub aggregation: Aggregation,
    /// `true` (default): inputs are logits and `p = sigmoid(x)`; `false`: probabilities (what
    /// smp's `MCCLoss` takes).
    #[config(default = true)]
    pub from_logits: bool,
    /// How the per-image losses are combined (default [`Reduction::Mean`]). With batch counts
    /// there is one loss, which every reduction returns as it is.
    #[config(default = "Reduction::Mean")]
    pub reduction: Reduction,
    /// Host kernel or burn operations (default [`Execution::Auto`]: the host kernel on the
    /// CPU backends).
    #[config(default = "Execution::Auto")]
    pub execution: Execution,
}

/// MCC loss (Abhishek & Hamarneh 2021; smp's `MCCLoss`): one minus the Matthews correlation
/// coefficient of the soft confusion counts, which, unlike Dice, rewards the true negatives
/// too and stays informative when the foreground is tiny or absent.
///
/// With `p = sigmoid(x)` and sums over the pixels of the batch (or of each image with
/// [`Aggregation::PerImage`]), `e = eps`:
///
/// `TP = sum(p y) + e`, `FP = sum(p (1 - y)) + e`, `FN = sum((1 - p) y) + e`,
/// `TN = sum((1 - p)(1 - y)) + e`,
///
/// `loss = 1 - (TP TN - FP FN) / sqrt((TP + FP)(TP + FN)(TN + FP)(TN + FN))`,
///
/// in `[0, 2]`: 0 for a perfect prediction, 1 for an uncorrelated one, 2 for the inverted one.
/// The counts come from `sum(p y)`, `sum(p)`, `sum(y)` and the pixel count (`FP = sum(p) -
/// sum(p y)`, ...), and the square root is taken of two products of two factors each, so
/// that the product stays inside the f32 range for volumes of up to 10^9 pixels. With batch
/// counts this is smp's `MCCLoss(eps)` applied to `sigmoid(x)`; tested against it, values and
/// gradients.
///
/// On flex and ndarray ([`Execution::Auto`]) it runs as the soft Dice loss's host kernel with
/// this score: one pass for the sums, one for the gradient. Both paths give the same values
/// and gradients.
///
/// # Device path
/// Burn operations: three sums and a few scalar operations per problem, no read to the host,
/// no upload.
///
/// # Errors
/// Shape mismatch, rank < 2, a zero-sized dimension, different devices, `eps <= 0` or not
/// finite, and the [refused inputs](crate::losses#inputs-every-loss-refuses-or-widens)
/// (channels, targets outside `[0, 1]`).
///
/// ```
/// # #[cfg(feature = "flex")] {
/// use burn::tensor::{Device, Tensor};
/// use segloss::losses::{mcc, MccConfig};
/// let device = Device::flex();
/// // A confident, right prediction of two foreground and two background pixels: loss ~ 0.
/// let logits = Tensor::<2>::from_floats([[20.0, 20.0, -20.0, -20.0]], &device);
/// let targets = Tensor::<2>::from_floats([[1.0, 1.0, 0.0, 0.0]], &device);
/// let loss = mcc(logits, targets, &MccConfig::new()).unwrap().into_scalar::<f32>();
/// assert!(loss < 1e-4);
/// # }
/// ```
pub fn mcc<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<BinaryTargets<D>>,
    config: &MccConfig,
) -> Result<Tensor<1>, SegLossError> {
    compute(config, logits, targets.into())
}

impl LossDescription for MccConfig {
    type Targets<const D: usize> = BinaryTargets<D>;

    /// The checks of the options alone: `eps > 0` and finite.
    fn validate(&self) -> Result<(), SegLossError> {
        check::positive("eps", self.eps)
    }

    fn plan<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: BinaryTargets<D>,
        _share: bool,
    ) -> Result<Plan<D>, SegLossError> {
        self.validate()?;
        let (logits, targets, weights) = targets.checked(logits)?;
        let batch = self.aggregation == Aggregation::Batch;
        if runs_on_host(self.execution, &logits, targets.is_tracked())? {
            let params = MccParams {
                eps: self.eps,
                batch,
                from_logits: self.from_logits,
            };
            return Ok(Plan::host(logits, targets, weights, self.reduction, params));
        }
        let p = probabilities(rows(logits), self.from_logits);
        let y = rows(targets);
        let w = weights.map(rows);
        let sum = |t: Tensor<2>| {
            let per_image = row_sums(weighted(t, w.as_ref()));
            if batch { per_image.sum() } else { per_image }
        };
        let [images, len] = p.dims();
        let intersection = sum(p.clone().mul(y.clone()));
        let (predicted, target) = (sum(p), sum(y));
        let eps = self.eps;
        let tp = intersection.clone().add_scalar(eps);
        let fp = predicted.clone().sub(intersection.clone()).add_scalar(eps);
        let false_negatives = target.clone().sub(intersection.clone()).add_scalar(eps);
        // TN = n - sum(p) - sum(y) + sum(p y), n the pixel count (the sum of the weights, with
        // weights).
        let tn = intersection.sub(predicted).sub(target);
        let tn = match &w {
            Some(w) => {
                let per_image = row_sums(w.clone());
                tn.add(if batch { per_image.sum() } else { per_image })
            }
            None => tn.add_scalar(if batch { images * len } else { len } as f64),
        }
        .add_scalar(eps);
        let numerator = tp.clone().mul(tn.clone()) - fp.clone().mul(false_negatives.clone());
        let positive = (tp.clone() + fp.clone()).mul(tp + false_negatives.clone());
        let negative = (tn.clone() + fp).mul(tn + false_negatives);
        let denominator = positive.sqrt().mul(negative.sqrt());
        let loss = numerator.div(denominator).neg().add_scalar(1.0);
        Ok(Plan::Computed(self.reduction.apply(loss)))
    }
}
