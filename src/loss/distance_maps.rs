//! The distance maps of the boundary losses: computed on the host from hard masks (one read of
//! the masks), uploaded as constants of the logits' dtype, no gradient through them.

use burn::tensor::{Bool, DType, Tensor};

use super::classes::{ClassMode, check_background, probabilities_and_targets};
use super::pixel_weights::{WeightedClassTargets, class_rows_of};
use crate::check;
use crate::check::checked_spacing;
use crate::cpu::edt::squared_distances;
use crate::engine::host::{read_mask, upload};
use crate::error::SegLossError;
use crate::tensors::rows;

/// Which map of a mask `m` a loss uses (distances between voxel centres, with spacing).
#[derive(Clone, Copy, Debug)]
pub(crate) enum MapKind {
    /// Kervadec et al.'s signed map: outside `m`, the distance to the nearest voxel of `m`;
    /// inside, `-(d - 1)` with `d` the distance to the nearest voxel outside (so, with unit
    /// spacing, `m`'s border voxels get 0).
    Signed,
    /// MONAI `HausdorffDTLoss`'s field: outside `m`, the distance to the nearest voxel of `m`;
    /// inside, the distance to the nearest voxel outside.
    Unsigned,
}

/// Kervadec et al.'s signed distance map of hard target masks, the map
/// [`boundary_loss`](crate::losses::boundary_loss) multiplies the probabilities with
/// (`one_hot2dist` in their code): for each image of
/// `targets` (`[N, ...]`, a voxel is in the mask where `y > 0.5`), a voxel outside the mask
/// gets `+` its distance to the nearest mask voxel, a voxel inside gets `-(d - 1)` with `d`
/// its distance to the nearest voxel outside (with unit spacing the mask's border voxels get
/// 0, deeper voxels negative values). Distances are Euclidean between voxel centres in the units of `spacing`
/// (see [`BoundaryConfig::spacing`](crate::losses::BoundaryConfig::spacing); the `- 1`
/// is one voxel, whatever the spacing, as in their code). An empty mask, or one that fills its
/// image, has no boundary: its map is 0 (Kervadec et al.'s code gives 0 for the first and
/// leaves the second undefined).
///
/// Computed on the host (exact distance transform), returned on the targets' device in their
/// dtype, so a data loader can compute it once per sample and pass it to
/// [`boundary_loss_with_map`](crate::losses::boundary_loss_with_map).
///
/// # Errors
/// Rank < 2, a zero-sized dimension, a spacing of the wrong length or not finite and positive,
/// or a failed read.
pub fn signed_distance_map<const D: usize>(
    targets: Tensor<D>,
    spacing: Option<&[f64]>,
) -> Result<Tensor<D>, SegLossError> {
    check::batch_shape(&targets, "targets")?;
    let grid = binary_grid(&targets.dims(), spacing)?;
    let (dims, device, dtype) = (targets.dims(), targets.device(), targets.dtype());
    let masks = rows(targets.greater_elem(0.5));
    let maps = maps_of(masks, &grid, MapKind::Signed)?;
    Ok(upload(maps, dims, &device, dtype))
}

/// Every given spacing value finite and positive (the count is checked against the inputs).
pub(crate) fn check_spacing_values(spacing: Option<&[f64]>) -> Result<(), SegLossError> {
    spacing.map_or(Ok(()), |s| checked_spacing(Some(s), s.len()).map(|_| ()))
}

/// The grid of one image of a binary batch `[N, ...]` (the axes after `N`) and its spacing:
/// `spacing` has one value per axis after `N`, or, for `[N, 1, ...]`, one per axis after the
/// channel (a single-voxel axis has no distance along it).
pub(crate) fn binary_grid(dims: &[usize], spacing: Option<&[f64]>) -> Result<Grid, SegLossError> {
    let shape = dims[1..].to_vec();
    let spacing = match spacing {
        Some(s) if dims.len() > 2 && dims[1] == 1 && s.len() == dims.len() - 2 => {
            let mut full = vec![1.0];
            full.extend(checked_spacing(Some(s), s.len())?);
            full
        }
        s => checked_spacing(s, shape.len())?,
    };
    Ok(Grid { shape, spacing })
}

/// The grid of one channel of a multiclass batch `[N, C, ...]` (the axes after `C`): one
/// spacing per axis after `C`.
fn class_grid(dims: &[usize], spacing: Option<&[f64]>) -> Result<Grid, SegLossError> {
    let shape = if dims.len() > 2 {
        dims[2..].to_vec()
    } else {
        vec![1]
    };
    let spacing = checked_spacing(spacing, shape.len())?;
    Ok(Grid { shape, spacing })
}

/// What the multiclass boundary losses share: the options that pick the classes and read the
/// logits.
pub(crate) struct ClassOptions<'a> {
    pub spacing: Option<&'a [f64]>,
    pub include_background: bool,
    pub mode: ClassMode,
    pub ignore_index: Option<i64>,
    pub from_logits: bool,
}

/// The probabilities, targets and pixel weights of the scored classes (all, or all but class
/// 0), one row per image and class `[N * C', P]` (image-major), with `N` and the grid of one
/// channel.
pub(crate) fn scored_class_rows<const D: usize>(
    logits: Tensor<D>,
    targets: WeightedClassTargets<D>,
    options: ClassOptions<'_>,
) -> Result<ScoredRows, SegLossError> {
    let dims = logits.dims();
    check::batch_shape(&logits, "logits")?;
    check_background(options.include_background, dims[1])?;
    let grid = class_grid(&dims, options.spacing)?;
    let (logits, targets, weights) = targets.checked(logits, options.ignore_index)?;
    let (p, y) = probabilities_and_targets(
        logits,
        targets,
        options.mode,
        options.from_logits,
        options.ignore_index,
    )?;
    let [n, classes, pixels] = p.dims();
    let first = usize::from(!options.include_background);
    let kept = [0..n, first..classes, 0..pixels];
    let rows = [n * (classes - first), pixels];
    let p = p.slice(kept.clone()).reshape(rows);
    let y = y.slice(kept).reshape(rows);
    // One image's weights for each of its scored classes' rows.
    let weights =
        class_rows_of(weights).map(|w| w.expand([n, classes - first, pixels]).reshape(rows));
    Ok(ScoredRows {
        p,
        y,
        weights,
        images: n,
        grid,
    })
}

/// The scored classes of a multiclass distance-map loss, one row `[P]` per image and class
/// (image-major): probabilities, targets and the pixel weights of the row's image.
pub(crate) struct ScoredRows {
    pub p: Tensor<2>,
    pub y: Tensor<2>,
    pub weights: Option<Tensor<2>>,
    pub images: usize,
    pub grid: Grid,
}

/// A grid of voxels and the distances between neighbours along each axis.
pub(crate) struct Grid {
    pub shape: Vec<usize>,
    pub spacing: Vec<f64>,
}

/// The `kind` map of every row of `masks` (`[M, P]`, each row one image or one image's channel,
/// a grid of `grid.shape`), flattened in row order.
pub(crate) fn maps_of(
    masks: Tensor<2, Bool>,
    grid: &Grid,
    kind: MapKind,
) -> Result<Vec<f64>, SegLossError> {
    let size = masks.dims()[1];
    let masks = read_mask(masks, "the masks of the distance maps")?;
    let mut out = Vec::with_capacity(masks.len());
    for mask in masks.chunks(size) {
        out.extend(map_of(mask, grid, kind));
    }
    Ok(out)
}

/// The `kind` map of one mask; 0 everywhere for a mask without boundary (empty or full).
fn map_of(mask: &[bool], grid: &Grid, kind: MapKind) -> Vec<f64> {
    if !mask.contains(&true) || !mask.contains(&false) {
        return vec![0.0; mask.len()];
    }
    let outside: Vec<bool> = mask.iter().map(|&m| !m).collect();
    let to_mask = squared_distances(mask, &grid.shape, &grid.spacing);
    let to_outside = squared_distances(&outside, &grid.shape, &grid.spacing);
    mask.iter()
        .zip(to_mask.iter().zip(&to_outside))
        .map(|(&inside, (&a, &b))| match (inside, kind) {
            (false, _) => a.sqrt(),
            (true, MapKind::Signed) => 1.0 - b.sqrt(),
            (true, MapKind::Unsigned) => b.sqrt(),
        })
        .collect()
}

/// Host values `[M * P]` uploaded as `[M, P]` next to `like`, in its dtype.
pub(crate) fn upload_rows(values: Vec<f64>, like: &Tensor<2>) -> Tensor<2> {
    let dtype: DType = like.dtype();
    upload(values, like.dims(), &like.device(), dtype)
}
