//! The Hausdorff distance-transform loss of Karimi & Salcudean (2019), as MONAI's
//! `HausdorffDTLoss` computes it: binary and multiclass.

use burn::config::Config;
use burn::tensor::Tensor;

use super::classes::ClassMode;
use super::distance_maps::{
    ClassOptions, Grid, MapKind, binary_grid, check_spacing_values, maps_of, scored_class_rows,
    upload_rows,
};
use super::pixel_weights::{BinaryTargets, WeightedClassTargets, weighted};
use super::sigmoid_keeping_nan;
use crate::check;
use crate::engine::Plan;
use crate::engine::host::read_mask;
use crate::error::SegLossError;
use crate::loss::description::LossDescription;
use crate::options::Reduction;
use crate::tensors::rows;

/// Options of [`hausdorff_dt_loss`]. Defaults follow MONAI's `HausdorffDTLoss`.
#[derive(Config, Debug)]
pub struct HausdorffDtConfig {
    /// The exponent of the distances (default `2.0`, MONAI's). Must be >= 0.
    #[config(default = 2.0)]
    pub alpha: f64,
    /// The distance between neighbouring voxels along each axis after `N` (for `[N, 1, ...]`
    /// inputs, the axes after the channel may be given alone); `None` (default): 1 on every
    /// axis, MONAI's (which has no spacing).
    #[config(default = "None")]
    pub spacing: Option<Vec<f64>>,
    /// `true` (default): inputs are logits (`p = sigmoid(x)`); `false`: probabilities.
    #[config(default = true)]
    pub from_logits: bool,
    /// How the per-image losses are combined (default [`Reduction::Mean`]).
    #[config(default = "Reduction::Mean")]
    pub reduction: Reduction,
}

/// Hausdorff distance-transform loss (Karimi & Salcudean, "Reducing the Hausdorff Distance in
/// Medical Image Segmentation with Convolutional Neural Networks", IEEE TMI 2019; beyond the
/// paper). Per image, the mean over its pixels of
///
/// `(p_i - y_i)^2 * (d_p(i)^alpha + d_y(i)^alpha)`,
///
/// then reduced over images, where `d_m` is the distance field of a hard mask `m`: at a voxel
/// outside `m` the distance to the nearest voxel of `m`, inside it the distance to the nearest
/// voxel outside (0 everywhere for an empty or a full mask); `d_p` is that of the prediction
/// thresholded at `p > 0.5`, `d_y` that of the target (`y > 0.5`). Errors far from either
/// boundary cost the most, which approximates the Hausdorff distance.
///
/// The fields are computed on the host (one read of the thresholded prediction and the target
/// per call) and are constants: the gradient is `2 (p_i - y_i) w_i dp_i/dx_i / P`. MONAI's
/// `HausdorffDTLoss(sigmoid=True, include_background=True)` on `[N, 1, ...]` inputs, whose
/// values and gradients it matches (`tests/boundary_losses.rs`; MONAI's fields are float32).
///
/// # Errors
/// Shape mismatch, rank < 2, a zero-sized dimension, different devices, `alpha` negative or not
/// finite, a spacing of the wrong length or not finite and positive, a failed read, and
/// the [refused inputs](crate::losses#inputs-every-loss-refuses-or-widens) (channels, targets
/// outside `[0, 1]`).
pub fn hausdorff_dt_loss<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<BinaryTargets<D>>,
    config: &HausdorffDtConfig,
) -> Result<Tensor<1>, SegLossError> {
    config.validate()?;
    let (logits, targets, weights) = targets.into().checked(logits)?;
    let grid = binary_grid(&logits.dims(), config.spacing.as_deref())?;
    // The loss reads its targets' masks anyway (one sync): one boolean more finds a target
    // outside [0, 1], which would otherwise enter `(p - y)^2` as it is.
    let outside = targets
        .clone()
        .lower_elem(0.0)
        .bool_or(targets.clone().greater_elem(1.0))
        .any();
    if read_mask(outside, "the targets' range check")?[0] {
        return Err(SegLossError::InvalidTargets {
            reason: "a value outside [0, 1]; binary targets lie in [0, 1] (a 0/255 mask needs \
                     dividing by 255)"
                .into(),
        });
    }
    let p = if config.from_logits {
        sigmoid_keeping_nan(logits)
    } else {
        logits
    };
    let weights = weights.map(rows);
    let per_image = weighted_squared_errors(rows(p), rows(targets), weights, &grid, config.alpha)?;
    Ok(config.reduction.apply(per_image))
}

/// Options of [`multiclass_hausdorff_dt_loss`]. Defaults follow MONAI's `HausdorffDTLoss`.
#[derive(Config, Debug)]
pub struct MulticlassHausdorffDtConfig {
    /// The exponent of the distances (default `2.0`). Must be >= 0.
    #[config(default = 2.0)]
    pub alpha: f64,
    /// The distance between neighbouring voxels along each axis after the channel axis; `None`
    /// (default): 1 on every axis.
    #[config(default = "None")]
    pub spacing: Option<Vec<f64>>,
    /// `false` (default, MONAI's): class 0 is left out (after the softmax); `true`: every
    /// class is scored.
    #[config(default = false)]
    pub include_background: bool,
    /// Softmax over the channels (default) or a sigmoid per channel.
    #[config(default = "ClassMode::Softmax")]
    pub mode: ClassMode,
    /// A class index whose pixels count for no class (default `None`; index targets only):
    /// their probabilities and targets are set to 0, so they add 0 to the sum (the mean still
    /// divides by every pixel).
    #[config(default = "None")]
    pub ignore_index: Option<i64>,
    /// `true` (default): inputs are logits; `false`: per-class probabilities.
    #[config(default = true)]
    pub from_logits: bool,
    /// How the per-image losses are combined (default [`Reduction::Mean`]).
    #[config(default = "Reduction::Mean")]
    pub reduction: Reduction,
}

/// Multiclass Hausdorff distance-transform loss: per image, the mean over the scored classes
/// `c` and the pixels `i` of `(p_ic - y_ic)^2 * (d_pc(i)^alpha + d_yc(i)^alpha)`, with `p` the
/// softmax (or sigmoid) of the logits `[N, C, ...]`, `y` the one-hot (or per-class) targets and
/// the fields of [`hausdorff_dt_loss`] per class; then reduced over images. MONAI's
/// `HausdorffDTLoss(softmax=True, to_onehot_y=True)` with the same `include_background`.
///
/// # Errors
/// As [`hausdorff_dt_loss`], plus `include_background = false` with one channel and
/// `ignore_index` with per-class targets.
pub fn multiclass_hausdorff_dt_loss<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<WeightedClassTargets<D>>,
    config: &MulticlassHausdorffDtConfig,
) -> Result<Tensor<1>, SegLossError> {
    config.validate()?;
    let options = ClassOptions {
        spacing: config.spacing.as_deref(),
        include_background: config.include_background,
        mode: config.mode,
        ignore_index: config.ignore_index,
        from_logits: config.from_logits,
    };
    let rows = scored_class_rows(logits, targets.into(), options)?;
    let n = rows.images;
    let per_row = weighted_squared_errors(rows.p, rows.y, rows.weights, &rows.grid, config.alpha)?;
    // Rows are image-major and have the same pixel count: the mean of an image's rows is its
    // mean.
    let per_image = per_row.reshape([n as i64, -1]).mean_dim(1).flatten(0, 1);
    Ok(config.reduction.apply(per_image))
}

/// The mean over each row of `w (p - y)^2 * (d_p^alpha + d_y^alpha)`, `p`, `y` and the pixel
/// weights `w` (1 without) of shape `[M, P]` (each row one image or one image's class, on a grid
/// of `grid.shape`).
fn weighted_squared_errors(
    p: Tensor<2>,
    y: Tensor<2>,
    pixel_weights: Option<Tensor<2>>,
    grid: &Grid,
    alpha: f64,
) -> Result<Tensor<1>, SegLossError> {
    let [rows, pixels] = p.dims();
    // Both masks in one read: the thresholded prediction's rows, then the target's.
    let masks = Tensor::cat(
        vec![
            p.clone().detach().greater_elem(0.5),
            y.clone().greater_elem(0.5),
        ],
        0,
    );
    let fields = maps_of(masks, grid, MapKind::Unsigned)?;
    let (dp, dy) = fields.split_at(rows * pixels);
    let weights: Vec<f64> = dp
        .iter()
        .zip(dy)
        .map(|(a, b)| a.powf(alpha) + b.powf(alpha))
        .collect();
    let weights = upload_rows(weights, &p);
    let error = p - y;
    let terms = weighted(error.clone() * error * weights, pixel_weights.as_ref());
    Ok(terms.mean_dim(1).flatten(0, 1))
}

impl LossDescription for HausdorffDtConfig {
    type Targets<const D: usize> = BinaryTargets<D>;

    /// `alpha >= 0` and finite, every spacing value finite and positive.
    fn validate(&self) -> Result<(), SegLossError> {
        check::non_negative("alpha", self.alpha)?;
        check_spacing_values(self.spacing.as_deref())
    }

    fn plan<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: BinaryTargets<D>,
        _share: bool,
    ) -> Result<Plan<D>, SegLossError> {
        Ok(Plan::Computed(hausdorff_dt_loss(logits, targets, self)?))
    }
}

impl LossDescription for MulticlassHausdorffDtConfig {
    type Targets<const D: usize> = WeightedClassTargets<D>;

    /// `alpha >= 0` and finite, every spacing value finite and positive.
    fn validate(&self) -> Result<(), SegLossError> {
        check::non_negative("alpha", self.alpha)?;
        check_spacing_values(self.spacing.as_deref())
    }

    fn plan<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: WeightedClassTargets<D>,
        _share: bool,
    ) -> Result<Plan<D>, SegLossError> {
        Ok(Plan::Computed(multiclass_hausdorff_dt_loss(
            logits, targets, self,
        )?))
    }
}
