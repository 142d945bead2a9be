//! Binary cross-entropy and the paper's weighted cross-entropy.

use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::activation::log_sigmoid;

use crate::check;
use crate::loss::description::{LossDescription, compute};
use crate::loss::pixel_weights::{BinaryTargets, weighted};

use crate::engine::{Plan, runs_on_host};
use crate::error::SegLossError;
use crate::kernels::cross_entropy::{ClassWeights, CrossEntropyKernel};
use crate::options::{Execution, Reduction};
use crate::tensors::{row_sums, rows};

/// The smallest positive normal f32: probabilities are clamped to it before `ln`, so
/// `-ln(p)` is at most about 87.3 and its gradient stays finite where `p` is exactly 0.
/// (torch's `BCELoss` caps `ln` at -100 instead; the two only differ for `p < 1.2e-38`.)
pub(crate) const MIN_PROB: f64 = f32::MIN_POSITIVE as f64;

/// Options of [`binary_cross_entropy`].
#[derive(Config, Debug)]
pub struct BinaryCrossEntropyConfig {
    /// `true` (default): inputs are logits `x` and `p = sigmoid(x)`; `false`: inputs are
    /// probabilities `p` in `[0, 1]`.
    #[config(default = true)]
    pub from_logits: bool,
    /// How the per-image losses are combined (default [`Reduction::Mean`]).
    #[config(default = "Reduction::Mean")]
    pub reduction: Reduction,
    /// Host kernels or burn operations (default [`Execution::Auto`]: host kernels on the CPU
    /// backends).
    #[config(default = "Execution::Auto")]
    pub execution: Execution,
}

/// Binary cross-entropy, the paper's baseline loss (CE, Sect. 2).
///
/// Per image, the mean over its `P` pixels of
///
/// `l_i = max(x_i, 0) - x_i * y_i + ln(1 + exp(-|x_i|))  =  -y_i ln p_i - (1 - y_i) ln(1 - p_i)`
///
/// with `p = sigmoid(x)`; then reduced over images. With `Reduction::Mean` this is torch's
/// `BCEWithLogitsLoss()` (all images have the same number of pixels). It is computed as
/// `(1 - y) x - log_sigmoid(x)`, whose gradient is exactly `sigmoid(x) - y` everywhere and
/// stays finite for logits of any magnitude.
///
/// With `from_logits = false`, `-y ln(max(p, m)) - (1 - y) ln(max(1 - p, m))` with
/// `m = 1.2e-38` (torch `BCELoss` caps the logarithm at -100 instead).
///
/// Targets may be soft (any value in `[0, 1]`).
///
/// # Device path
/// On wgpu: burn operations that burn's fusion fuses, no read to the host, no upload; the
/// kernel counts are in the [device-path table](crate::losses#device-path).
///
/// # Errors
/// Shape mismatch, rank < 2, a zero-sized dimension or different devices, and
/// the [refused inputs](crate::losses#inputs-every-loss-refuses-or-widens) (channels, targets outside `[0, 1]`).
///
/// ```
/// # #[cfg(feature = "flex")] {
/// use burn::tensor::{Device, Tensor};
/// use segloss::losses::{binary_cross_entropy, BinaryCrossEntropyConfig};
/// let device = Device::flex();
/// let logits = Tensor::<3>::from_floats([[[0.0, 2.0], [-1.0, 3.0]]], &device);
/// let targets = Tensor::<3>::from_floats([[[0.0, 1.0], [0.0, 1.0]]], &device);
/// let loss = binary_cross_entropy(logits, targets, &BinaryCrossEntropyConfig::new()).unwrap();
/// assert_eq!(loss.dims(), [1]);
/// # }
/// ```
pub fn binary_cross_entropy<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<BinaryTargets<D>>,
    config: &BinaryCrossEntropyConfig,
) -> Result<Tensor<1>, SegLossError> {
    compute(config, logits, targets.into())
}

/// The foreground prior `q` that sets the weights of [`weighted_cross_entropy`].
#[derive(Config, Debug, Copy, PartialEq)]
pub enum Prior {
    /// `q` = the foreground fraction of the current batch's targets, `mean(y)` (the default;
    /// the paper's choice). Computed on the device, no sync.
    Batch,
    /// A fixed `q` in `(0, 1)`, e.g. the foreground fraction of the training set.
    Fixed(f64),
}

/// Options of [`weighted_cross_entropy`].
#[derive(Config, Debug)]
pub struct WeightedCrossEntropyConfig {
    /// The foreground prior `q` behind the weights `1/(2q)` and `1/(2-2q)` (default
    /// [`Prior::Batch`]).
    #[config(default = "Prior::Batch")]
    pub prior: Prior,
    /// Explicit foreground weight, replacing `1/(2q)` (must be > 0). Default `None`.
    pub fg_weight: Option<f64>,
    /// Explicit background weight, replacing `1/(2-2q)` (must be > 0). Default `None`.
    pub bg_weight: Option<f64>,
    /// `true` (default): inputs are logits; `false`: probabilities.
    #[config(default = true)]
    pub from_logits: bool,
    /// How the per-image losses are combined (default [`Reduction::Mean`]).
    #[config(default = "Reduction::Mean")]
    pub reduction: Reduction,
    /// Host kernels or burn operations (default [`Execution::Auto`]: host kernels on the CPU
    /// backends).
    #[config(default = "Execution::Auto")]
    pub execution: Execution,
}

/// Weighted binary cross-entropy with the paper's class-balancing weights (wCE, Sect. 2).
///
/// Per image, the mean over its pixels of
///
/// `l_i = -w_fg y_i ln p_i - w_bg (1 - y_i) ln(1 - p_i)`,  `w_fg = 1/(2q)`, `w_bg = 1/(2 - 2q)`
///
/// where `q` is the foreground prior ([`Prior`]). These weights make the expected weight of a
/// pixel 1 and turn the expected 0/1 error into the weighted Hamming similarity of Eq. 3 with
/// `gamma = 1/2`, i.e. `1 - balanced accuracy`; Prop. 2 shows why that is still not Dice.
/// `fg_weight`/`bg_weight` override either weight. For hard targets this equals torch's
/// `BCEWithLogitsLoss(weight=w)` with `w = y w_fg + (1 - y) w_bg` per pixel (a plain mean,
/// not divided by the sum of weights); for soft targets each log-likelihood term carries the
/// weight of its class.
///
/// A batch with no foreground (`q = 0`) or no background (`q = 1`) is the limit of the
/// formula: the absent class's term is zero and the present class keeps weight `1/2`, so the
/// loss is finite (no `0 * inf`).
///
/// # Device path
/// On wgpu: burn operations that burn's fusion fuses, no read to the host, no upload; the
/// kernel counts are in the [device-path table](crate::losses#device-path).
///
/// # Errors
/// As [`binary_cross_entropy`], plus `Prior::Fixed(q)` outside `(0, 1)` and a non-positive
/// explicit weight.
pub fn weighted_cross_entropy<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<BinaryTargets<D>>,
    config: &WeightedCrossEntropyConfig,
) -> Result<Tensor<1>, SegLossError> {
    compute(config, logits, targets.into())
}

/// `(w_fg, w_bg)` as `[1]` tensors that broadcast over the `[N]` per-image sums; the batch
/// prior is the mean of the targets `y` (`[N, P]`), or with pixel weights `w` their weighted
/// mean `sum(w y) / sum(w)`.
fn class_weights(
    y: &Tensor<2>,
    w: Option<&Tensor<2>>,
    like: &Tensor<1>,
    config: &WeightedCrossEntropyConfig,
) -> (Tensor<1>, Tensor<1>) {
    let device = like.device();
    let dtype = like.dtype();
    let constant = |v: f64| Tensor::<1>::full([1], v, (&device, dtype));
    let (fg_from_prior, bg_from_prior) = match config.prior {
        Prior::Fixed(q) => (constant(0.5 / q), constant(0.5 / (1.0 - q))),
        Prior::Batch => {
            // The weights are constants of the loss (as in the paper), so no gradient flows
            // into the targets through q. Clamping q only matters when a class is absent from
            // the batch, where its term is multiplied by a zero target anyway.
            let q = match w {
                // All weights 0: q = 0, whose (clamped) weights multiply zero sums.
                Some(w) => (y.clone() * w.clone())
                    .sum()
                    .div(w.clone().sum().clamp_min(MIN_PROB))
                    .detach(),
                None => y.clone().detach().mean(),
            };
            let fg = q.clone().clamp_min(MIN_PROB).mul_scalar(2.0).recip();
            let bg = q
                .neg()
                .add_scalar(1.0)
                .clamp_min(MIN_PROB)
                .mul_scalar(2.0)
                .recip();
            (fg, bg)
        }
    };
    (
        config.fg_weight.map(constant).unwrap_or(fg_from_prior),
        config.bg_weight.map(constant).unwrap_or(bg_from_prior),
    )
}

/// `(-ln p, -ln(1 - p))` per pixel, in forms whose gradient is exact and finite: from logits
/// `softplus(-x) = -log_sigmoid(x)` and `softplus(x) = x - log_sigmoid(x)`; from probabilities
/// the logarithm of `p` clamped to [`MIN_PROB`].
pub(crate) fn log_likelihood_terms<const D: usize>(
    input: Tensor<D>,
    from_logits: bool,
) -> (Tensor<D>, Tensor<D>) {
    if from_logits {
        let neg_log_p = log_sigmoid(input.clone()).neg();
        let neg_log_not_p = neg_log_p.clone() + input;
        (neg_log_p, neg_log_not_p)
    } else {
        let neg_log_p = input.clone().clamp_min(MIN_PROB).log().neg();
        let neg_log_not_p = input.neg().add_scalar(1.0).clamp_min(MIN_PROB).log().neg();
        (neg_log_p, neg_log_not_p)
    }
}

pub(crate) fn pixel_count(rows: &Tensor<2>) -> f64 {
    rows.dims()[1] as f64
}

impl LossDescription for BinaryCrossEntropyConfig {
    type Targets<const D: usize> = BinaryTargets<D>;

    /// Every option is valid.
    fn validate(&self) -> Result<(), SegLossError> {
        Ok(())
    }

    fn plan<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: BinaryTargets<D>,
        _share: bool,
    ) -> Result<Plan<D>, SegLossError> {
        let (logits, targets, weights) = targets.checked(logits)?;
        if runs_on_host(self.execution, &logits, targets.is_tracked())? {
            let kernel = CrossEntropyKernel {
                from_logits: self.from_logits,
                weights: ClassWeights::Fixed { fg: 1.0, bg: 1.0 },
            };
            return Ok(Plan::host(logits, targets, weights, self.reduction, kernel));
        }
        let (pos, neg) = log_likelihood_terms(rows(logits), self.from_logits);
        let y = rows(targets);
        // -w [y ln p + (1 - y) ln(1 - p)]
        let pixel = y.clone().mul(pos) + y.neg().add_scalar(1.0).mul(neg);
        let pixel = weighted(pixel, weights.map(rows).as_ref());
        Ok(Plan::Computed(self.reduction.apply(
            row_sums(pixel.clone()).div_scalar(pixel_count(&pixel)),
        )))
    }
}

impl LossDescription for WeightedCrossEntropyConfig {
    type Targets<const D: usize> = BinaryTargets<D>;

    /// The checks of the options alone (no input needed): a fixed prior in `(0, 1)` whose
    /// weights stay finite in f32, explicit weights positive and finite.
    fn validate(&self) -> Result<(), SegLossError> {
        if let Prior::Fixed(q) = self.prior {
            check::open_unit("prior", q)?;
            // q so close to 0 or 1 that a weight overflows f32 is rejected like a bad weight.
            check::positive("prior: 1/(2q)", 0.5 / q)?;
            check::positive("prior: 1/(2-2q)", 0.5 / (1.0 - q))?;
        }
        if let Some(w) = self.fg_weight {
            check::positive("fg_weight", w)?;
        }
        if let Some(w) = self.bg_weight {
            check::positive("bg_weight", w)?;
        }
        Ok(())
    }

    fn plan<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: BinaryTargets<D>,
        _share: bool,
    ) -> Result<Plan<D>, SegLossError> {
        self.validate()?;
        let (logits, targets, pixel_weights) = targets.checked(logits)?;
        if runs_on_host(self.execution, &logits, targets.is_tracked())? {
            let weights = match self.prior {
                Prior::Fixed(q) => ClassWeights::Fixed {
                    fg: self.fg_weight.unwrap_or(0.5 / q),
                    bg: self.bg_weight.unwrap_or(0.5 / (1.0 - q)),
                },
                Prior::Batch => ClassWeights::BatchPrior {
                    fg: self.fg_weight,
                    bg: self.bg_weight,
                },
            };
            let kernel = CrossEntropyKernel {
                from_logits: self.from_logits,
                weights,
            };
            let plan = Plan::host(logits, targets, pixel_weights, self.reduction, kernel);
            return Ok(plan);
        }
        let y = rows(targets);
        let w = pixel_weights.map(rows);
        let (pos, neg) = log_likelihood_terms(rows(logits), self.from_logits);
        // Each pixel's terms times its weight; the prior is then `sum(w y) / sum(w)`.
        let (pos, neg) = (weighted(pos, w.as_ref()), weighted(neg, w.as_ref()));
        let count = pixel_count(&pos);
        // The weights multiply the per-image sums of each class's terms, not every pixel:
        // `sum(w_fg y l_fg + w_bg (1 - y) l_bg) = w_fg sum(y l_fg) + w_bg sum((1 - y) l_bg)`.
        // The same loss, and it keeps the per-pixel chain free of the batch prior's `[1]`
        // tensors, which break burn's fusion of that chain (benches/results/design_notes.md,
        // "Weighted cross-entropy on the device"). The weights are finite (the prior is
        // clamped), so a weight times a zero sum stays 0.
        let fg = row_sums(y.clone().mul(pos));
        let (w_fg, w_bg) = class_weights(&y, w.as_ref(), &fg, self);
        let bg = row_sums(y.neg().add_scalar(1.0).mul(neg));
        let per_image = fg.mul(w_fg).add(bg.mul(w_bg)).div_scalar(count);
        Ok(Plan::Computed(self.reduction.apply(per_image)))
    }
}
