//! The generalized Wasserstein Dice loss (Fidon et al. 2017).

use burn::config::Config;
use burn::tensor::Tensor;

use crate::check;
use crate::engine::host::upload;
use crate::engine::{Plan, runs_on_host};
use crate::error::SegLossError;
use crate::kernels::wasserstein::WassersteinParams;
use crate::loss::classes::{ClassMode, probabilities_and_targets};
use crate::loss::description::{LossDescription, compute};
use crate::loss::pixel_weights::{WeightedClassTargets, class_rows_of, weighted};
use crate::options::{Execution, Reduction};

/// How the generalized Wasserstein Dice loss weighs the pixels of each true class.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum WassersteinWeighting {
    /// Fidon et al.'s (MONAI's `"default"`): weight 0 for the background (class 0), 1 for
    /// every other class; the denominator is `2 TP + sum_i w_i`.
    Default,
    /// Tilborghs et al.'s (MONAI's `"GDL"`): weight `1 / (V_k + 1)` for class `k`, `V_k` its
    /// pixel count in the image's target; the denominator is `sum_i a_i (2 - w_i)`.
    Gdl,
}

/// Options of [`wasserstein_dice`]. Defaults follow MONAI's `GeneralizedWassersteinDiceLoss`.
#[derive(Config, Debug)]
pub struct WassersteinDiceConfig {
    /// The distances `M [C][C]` between the classes (`M[k][c]`: the cost of predicting class
    /// `c` where the truth is `k`), each >= 0 and finite, with a largest value > 0; divided by
    /// that largest value, as MONAI does. Default `None`: 0 on the diagonal, 1 elsewhere (every
    /// mistake costs the same).
    #[config(default = "None")]
    pub distances: Option<Vec<Vec<f64>>>,
    /// The class weights of the true positives (default [`WassersteinWeighting::Default`]).
    #[config(default = "WassersteinWeighting::Default")]
    pub weighting: WassersteinWeighting,
    /// Added to the numerator (default `1e-5`, MONAI's). Must be >= 0 and finite.
    #[config(default = 1e-5)]
    pub smooth_nr: f64,
    /// Added to the denominator (default `1e-5`, MONAI's). Must be > 0 and finite: an image
    /// whose pixels are all background (or ignored) has a zero denominator otherwise.
    #[config(default = 1e-5)]
    pub smooth_dr: f64,
    /// A class index whose pixels are left out of every sum (default `None`; index targets
    /// only). It may lie outside `0..C` (255, -100).
    #[config(default = "None")]
    pub ignore_index: Option<i64>,
    /// `true` (default): inputs are logits and `p` their softmax; `false`: probabilities.
    #[config(default = true)]
    pub from_logits: bool,
    /// How the per-image losses are combined (default [`Reduction::Mean`]).
    #[config(default = "Reduction::Mean")]
    pub reduction: Reduction,
    /// Host kernel or burn operations (default [`Execution::Auto`]: the host kernel on the
    /// CPU backends).
    #[config(default = "Execution::Auto")]
    pub execution: Execution,
}

/// Generalized Wasserstein Dice loss (Fidon et al. 2017, MONAI's
/// `GeneralizedWassersteinDiceLoss`): a Dice loss whose mistakes cost what the distance
/// between the true and the predicted class says, so that confusing two tumour sub-regions
/// can cost less than confusing a tumour with the background.
///
/// With `p_ic` the softmax probabilities and `y_ik` the one-hot targets of pixel `i`, for each
/// image:
///
/// - `w_i = sum_k sum_c y_ik M[k][c] p_ic`, the Wasserstein distance between the prediction
///   and the true class (`M` divided by its largest entry);
/// - `a_i = sum_k y_ik a_k`, the weight of the true class ([`WassersteinWeighting`]);
/// - `TP = sum_i a_i (1 - w_i)`; the denominator `D = 2 TP + sum_i w_i` (`Default`) or
///   `sum_i a_i (2 - w_i)` (`Gdl`);
///
/// `loss = 1 - (2 TP + smooth_nr) / (D + smooth_dr)`, then reduced over images. Targets are
/// class indices `[N, 1, ...]` (MONAI's), or per-class values of the logits' shape, read as
/// the weights `y_ik` of the formula (one-hot values give the same loss as their indices).
/// A pixel of `ignore_index`, or with an index outside `0..C`, has `y_i = 0` and drops out.
/// Matches MONAI 1.6 `GeneralizedWassersteinDiceLoss(dist_matrix, weighting_mode,
/// smooth_nr, smooth_dr, reduction)`, values and gradients, 2D and 3D.
///
/// On flex and ndarray ([`Execution::Auto`]) it runs as a host kernel: per image, one pass
/// for the sums (each pixel's softmax computed in place) and one for the gradient, no one-hot
/// and no softmax tensor; elsewhere as burn operations. Both paths give the same values and
/// gradients.
///
/// # Device path
/// Burn operations; one upload of `M` (`C^2` values) and, with `Default` weighting, of the
/// class weights (`C` values); no read to the host.
///
/// # Errors
/// Rank < 2, a zero-sized dimension, targets whose shape is not `[N, 1, ...]` (indices) or
/// the logits' (per-class), different devices, `distances` not `C x C`, with a negative or
/// non-finite entry or no positive one, `smooth_nr < 0`, `smooth_dr` not > 0, `ignore_index`
/// with per-class targets.
///
/// ```
/// # #[cfg(feature = "flex")] {
/// use burn::tensor::{Device, Int, Tensor};
/// use segloss::losses::{wasserstein_dice, WassersteinDiceConfig};
/// let device = Device::flex();
/// // MONAI's docstring example: confident and right everywhere, loss 0.
/// let distances = vec![vec![0.0, 1.0, 1.0], vec![1.0, 0.0, 0.5], vec![1.0, 0.5, 0.0]];
/// let logits = Tensor::<3>::from_floats(
///     [[[1000.0, 0.0, 0.0], [0.0, 1000.0, 0.0], [0.0, 0.0, 1000.0]]],
///     &device,
/// );
/// let classes = Tensor::<3, Int>::from_ints([[[0, 1, 2]]], &device);
/// let config = WassersteinDiceConfig::new().with_distances(Some(distances));
/// let loss = wasserstein_dice(logits, classes, &config).unwrap();
/// assert!(loss.into_scalar::<f32>().abs() < 1e-4);
/// # }
/// ```
pub fn wasserstein_dice<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<WeightedClassTargets<D>>,
    config: &WassersteinDiceConfig,
) -> Result<Tensor<1>, SegLossError> {
    compute(config, logits, targets.into())
}

impl WassersteinDiceConfig {
    /// `M` for `classes` classes, divided by its largest entry, row-major.
    fn normalised_distances(&self, classes: usize) -> Result<Vec<f64>, SegLossError> {
        let Some(rows) = &self.distances else {
            return Ok((0..classes * classes)
                .map(|i| if i / classes == i % classes { 0.0 } else { 1.0 })
                .collect());
        };
        if rows.len() != classes || rows.iter().any(|row| row.len() != classes) {
            return Err(SegLossError::InvalidOption {
                name: "distances",
                value: format!(
                    "{} rows of lengths {:?} for {classes} classes",
                    rows.len(),
                    rows.iter().map(Vec::len).collect::<Vec<_>>()
                ),
                allowed: "a C x C matrix, C the logits' channel count",
            });
        }
        let largest = self.checked_distances(rows)?;
        Ok(rows.iter().flatten().map(|&d| d / largest).collect())
    }

    /// The entries' checks (each >= 0 and finite, one > 0); their largest value.
    fn checked_distances(&self, rows: &[Vec<f64>]) -> Result<f64, SegLossError> {
        for &d in rows.iter().flatten() {
            check::non_negative("distances", d)?;
        }
        let largest = rows.iter().flatten().fold(0.0, |m: f64, &d| m.max(d));
        if largest <= 0.0 {
            return Err(SegLossError::InvalidParameter {
                name: "distances",
                value: largest,
                allowed: "a largest entry > 0 (the matrix is divided by it)",
            });
        }
        Ok(largest)
    }
}

impl LossDescription for WassersteinDiceConfig {
    type Targets<const D: usize> = WeightedClassTargets<D>;

    /// The checks of the options alone: the smoothing in range, the distances' entries (their
    /// count is checked against the logits' channels in each call).
    fn validate(&self) -> Result<(), SegLossError> {
        check::non_negative("smooth_nr", self.smooth_nr)?;
        check::positive("smooth_dr", self.smooth_dr)?;
        if let Some(rows) = &self.distances {
            self.checked_distances(rows)?;
        }
        Ok(())
    }

    fn plan<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: WeightedClassTargets<D>,
        _share: bool,
    ) -> Result<Plan<D>, SegLossError> {
        self.validate()?;
        check::batch_shape(&logits, "logits")?;
        let classes = logits.dims()[1];
        let distances = self.normalised_distances(classes)?;
        let (logits, targets, pixel_weights) = targets.checked(logits, self.ignore_index)?;
        if runs_on_host(self.execution, &logits, targets.is_tracked())? {
            let params = WassersteinParams {
                classes,
                distances,
                gdl: self.weighting == WassersteinWeighting::Gdl,
                smooth_nr: self.smooth_nr,
                smooth_dr: self.smooth_dr,
                from_logits: self.from_logits,
                ignore_index: self.ignore_index,
            };
            return Ok(Plan::host(
                logits,
                targets.into_host(),
                pixel_weights,
                self.reduction,
                params,
            ));
        }
        let (p, y) = probabilities_and_targets(
            logits,
            targets,
            ClassMode::Softmax,
            self.from_logits,
            self.ignore_index,
        )?;
        let [images, _, pixels] = p.dims();
        let (device, dtype) = (p.device(), p.dtype());
        // (M^T y)_ci = sum_k M[k][c] y_ik, then w_i = sum_c (M^T y)_ci p_ci: [N, P].
        let transposed = upload(distances, [1, classes, classes], &device, dtype)
            .swap_dims(1, 2)
            .expand([images, classes, classes]);
        let costs = transposed.matmul(y.clone());
        let distance = costs.mul(p).sum_dim(1).reshape([images, pixels]);
        // Every sum over pixels weighted by the pixel weights (the class volumes of `Gdl`
        // too).
        let pixel_weights = class_rows_of(pixel_weights);
        let flat_weights = pixel_weights.clone().map(|w| w.reshape([images, pixels]));
        // a_i = sum_k y_ik a_k: [N, P] (constants of the loss: no gradient).
        let class_weights = match self.weighting {
            WassersteinWeighting::Default => {
                let mut weights = vec![1.0; classes];
                weights[0] = 0.0;
                upload(weights, [1, classes, 1], &device, dtype)
            }
            WassersteinWeighting::Gdl => weighted(y.clone(), pixel_weights.as_ref())
                .sum_dim(2)
                .add_scalar(1.0)
                .recip(),
        };
        let weight = y.mul(class_weights).sum_dim(1).reshape([images, pixels]);
        let weight = weighted(weight, flat_weights.as_ref());
        let row_sum = |t: Tensor<2>| t.sum_dim(1).reshape([images]);
        let true_positives = row_sum(weight.clone().mul(distance.clone().neg().add_scalar(1.0)));
        let denominator = match self.weighting {
            WassersteinWeighting::Default => {
                true_positives.clone().mul_scalar(2.0)
                    + row_sum(weighted(distance, flat_weights.as_ref()))
            }
            WassersteinWeighting::Gdl => row_sum(weight.mul(distance.neg().add_scalar(2.0))),
        };
        let score = true_positives
            .mul_scalar(2.0)
            .add_scalar(self.smooth_nr)
            .div(denominator.add_scalar(self.smooth_dr));
        Ok(Plan::Computed(
            self.reduction.apply(score.neg().add_scalar(1.0)),
        ))
    }
}
