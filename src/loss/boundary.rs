//! The boundary loss of Kervadec et al. (2019): probabilities weighted by the signed distance
//! map of the target, binary and multiclass.

use burn::config::Config;
use burn::tensor::Tensor;

use super::classes::ClassMode;
use super::distance_maps::{
    ClassOptions, MapKind, check_spacing_values, maps_of, scored_class_rows, signed_distance_map,
    upload_rows,
};
use super::pixel_weights::{BinaryTargets, WeightedClassTargets, weighted};
use super::sigmoid_keeping_nan;
use crate::check;
use crate::engine::Plan;
use crate::error::SegLossError;
use crate::loss::description::LossDescription;
use crate::options::Reduction;
use crate::tensors::rows;

/// Options of [`boundary_loss`] and [`boundary_loss_with_map`].
#[derive(Config, Debug)]
pub struct BoundaryConfig {
    /// The distance between neighbouring voxels along each axis after `N` (for `[N, 1, ...]`
    /// inputs, the axes after the channel may be given alone), e.g. millimetres; `None`
    /// (default): 1 on every axis. Scales the map, and with it the loss.
    #[config(default = "None")]
    pub spacing: Option<Vec<f64>>,
    /// `true` (default): inputs are logits (`p = sigmoid(x)`); `false`: probabilities.
    #[config(default = true)]
    pub from_logits: bool,
    /// How the per-image losses are combined (default [`Reduction::Mean`]).
    #[config(default = "Reduction::Mean")]
    pub reduction: Reduction,
}

/// Boundary loss (Kervadec et al., "Boundary loss for highly unbalanced segmentation",
/// MIDL 2019; beyond the paper). Per image, the mean over its pixels of `p_i * phi_i`, with
/// `phi` the [`signed_distance_map`] of the target (positive outside the object, growing with
/// the distance; at most 0 inside): a prediction is penalised by how far its probability mass
/// lies from the target, and rewarded for mass deep inside it. Then reduced over images.
///
/// `phi` is computed on the host from the hard target (`y > 0.5`; one read of the targets per
/// call) and is a constant: the gradient is `phi_i * dp_i/dx_i / P`. Its code is
/// Kervadec et al.'s `SurfaceLoss` on one foreground channel (`idc=[1]`), whose values it
/// matches (`tests/boundary_losses.rs`). The loss is not bounded below by 0 and has no
/// meaningful minimum on its own: Kervadec et al. add it to a regional loss, with a weight
/// raised during training (e.g. `GDL + alpha * boundary`, alpha from 0.01 up by 0.01 per epoch);
/// see [`compound`](crate::losses::compound) and [`Loss::Boundary`](crate::losses::Loss).
///
/// # Errors
/// Shape mismatch, rank < 2, a zero-sized dimension, different devices, a spacing of the wrong
/// length or not finite and positive, a failed read, and the [refused inputs](crate::losses#inputs-every-loss-refuses-or-widens)
/// (channels; the map only reads `y > 0.5`, so a 0/255 mask gives the right map).
pub fn boundary_loss<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<BinaryTargets<D>>,
    config: &BoundaryConfig,
) -> Result<Tensor<1>, SegLossError> {
    config.validate()?;
    let (logits, targets, weights) = targets.into().checked(logits)?;
    let map = signed_distance_map(targets, config.spacing.as_deref())?;
    Ok(loss_of_map(logits, map, weights, config))
}

/// [`boundary_loss`] with a map computed beforehand (by [`signed_distance_map`], in a data
/// loader, say): no read to the host. `config.spacing` is not used (the map has it).
///
/// # Errors
/// Shape mismatch, rank < 2, a zero-sized dimension, different devices, and
/// the [refused inputs](crate::losses#inputs-every-loss-refuses-or-widens) (channels).
pub fn boundary_loss_with_map<const D: usize>(
    logits: Tensor<D>,
    map: Tensor<D>,
    config: &BoundaryConfig,
) -> Result<Tensor<1>, SegLossError> {
    let (logits, map) = check::binary_inputs(logits, map)?;
    Ok(loss_of_map(logits, map, None, config))
}

/// `mean_i(w_i p_i phi_i)` per image, reduced: the body of the boundary loss, from checked
/// inputs.
fn loss_of_map<const D: usize>(
    logits: Tensor<D>,
    map: Tensor<D>,
    weights: Option<Tensor<D>>,
    config: &BoundaryConfig,
) -> Tensor<1> {
    let map = map.detach();
    let p = if config.from_logits {
        sigmoid_keeping_nan(logits)
    } else {
        logits
    };
    let terms = weighted(rows(p * map), weights.map(rows).as_ref());
    config.reduction.apply(terms.mean_dim(1).flatten(0, 1))
}

/// Options of [`multiclass_boundary_loss`].
#[derive(Config, Debug)]
pub struct MulticlassBoundaryConfig {
    /// The distance between neighbouring voxels along each axis after the channel axis; `None`
    /// (default): 1 on every axis.
    #[config(default = "None")]
    pub spacing: Option<Vec<f64>>,
    /// `false` (default, Kervadec et al.'s `idc` without the background): class 0 is left out;
    /// `true`: every class is scored.
    #[config(default = false)]
    pub include_background: bool,
    /// Softmax over the channels (default) or a sigmoid per channel.
    #[config(default = "ClassMode::Softmax")]
    pub mode: ClassMode,
    /// A class index whose pixels count for no class (default `None`; index targets only):
    /// they are outside every class's mask and add 0 to the sum (the mean still divides by
    /// every pixel).
    #[config(default = "None")]
    pub ignore_index: Option<i64>,
    /// `true` (default): inputs are logits; `false`: per-class probabilities.
    #[config(default = true)]
    pub from_logits: bool,
    /// How the per-image losses are combined (default [`Reduction::Mean`]).
    #[config(default = "Reduction::Mean")]
    pub reduction: Reduction,
}

impl MulticlassBoundaryConfig {
    fn class_options(&self) -> ClassOptions<'_> {
        ClassOptions {
            spacing: self.spacing.as_deref(),
            include_background: self.include_background,
            mode: self.mode,
            ignore_index: self.ignore_index,
            from_logits: self.from_logits,
        }
    }
}

/// Multiclass boundary loss (Kervadec et al. 2019): per image, the mean over the scored
/// classes `c` and the pixels `i` of `p_ic * phi_ic`, with `p` the softmax (or sigmoid) of the
/// logits `[N, C, ...]` and `phi_c` the [`signed_distance_map`] of class `c`'s target mask
/// (from class indices `[N, 1, ...]` or per-class values `> 0.5`); then reduced over images.
/// Kervadec et al.'s `SurfaceLoss(idc)`, with `idc` the classes `1..C` (or all with
/// `include_background`); their mean over the batch equals our [`Reduction::Mean`].
///
/// # Errors
/// As [`boundary_loss`], plus `include_background = false` with one channel and
/// `ignore_index` with per-class targets.
pub fn multiclass_boundary_loss<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<WeightedClassTargets<D>>,
    config: &MulticlassBoundaryConfig,
) -> Result<Tensor<1>, SegLossError> {
    config.validate()?;
    let rows = scored_class_rows(logits, targets.into(), config.class_options())?;
    let maps = maps_of(rows.y.greater_elem(0.5), &rows.grid, MapKind::Signed)?;
    let map = upload_rows(maps, &rows.p);
    // Rows are image-major: an image's classes are consecutive rows, so one image per row of
    // `[N, C' * P]`.
    let terms = weighted(rows.p * map, rows.weights.as_ref()).reshape([rows.images as i64, -1]);
    Ok(config.reduction.apply(terms.mean_dim(1).flatten(0, 1)))
}

impl LossDescription for BoundaryConfig {
    type Targets<const D: usize> = BinaryTargets<D>;

    /// Every spacing value finite and positive.
    fn validate(&self) -> Result<(), SegLossError> {
        check_spacing_values(self.spacing.as_deref())
    }

    fn plan<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: BinaryTargets<D>,
        _share: bool,
    ) -> Result<Plan<D>, SegLossError> {
        Ok(Plan::Computed(boundary_loss(logits, targets, self)?))
    }
}

impl LossDescription for MulticlassBoundaryConfig {
    type Targets<const D: usize> = WeightedClassTargets<D>;

    /// Every spacing value finite and positive.
    fn validate(&self) -> Result<(), SegLossError> {
        check_spacing_values(self.spacing.as_deref())
    }

    fn plan<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: WeightedClassTargets<D>,
        _share: bool,
    ) -> Result<Plan<D>, SegLossError> {
        Ok(Plan::Computed(multiclass_boundary_loss(
            logits, targets, self,
        )?))
    }
}
