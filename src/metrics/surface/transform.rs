//! Distance maps on the host: the exact Euclidean distance transform and the signed distance
//! map of a mask, for data loaders and the boundary losses.

use crate::SegLossError;
use crate::cpu::edt::squared_distances;

/// The exact Euclidean distance from every voxel of a grid of `shape` (row-major, the last
/// axis contiguous, any number of axes) to the nearest voxel where `sites` is true, with
/// `spacing[a]` between neighbours along axis `a` (`None`: 1); `+inf` everywhere when there is
/// no site, 0 on the sites.
///
/// `distance_transform(sites, ..)` is `scipy.ndimage.distance_transform_edt(~sites,
/// sampling=spacing)`. Exact: separable lower envelopes of parabolas (Felzenszwalb &
/// Huttenlocher), in f64, on the thread pool; on a unit grid the squared distances are exact
/// integers.
///
/// # Errors
/// [`SegLossError::ShapeMismatch`] when `sites` does not have `prod(shape)` values, an empty
/// `shape` or a zero-sized axis, a spacing of the wrong length or not finite and positive.
pub fn distance_transform(
    sites: &[bool],
    shape: &[usize],
    spacing: Option<&[f64]>,
) -> Result<Vec<f64>, SegLossError> {
    let spacing = checked_grid(sites.len(), shape, spacing)?;
    let mut d = squared_distances(sites, shape, &spacing);
    for v in &mut d {
        *v = v.sqrt();
    }
    Ok(d)
}

/// The signed distance map of a mask: for a voxel outside the mask, `+` its distance to the
/// nearest mask voxel; for a voxel inside, `-` its distance to the nearest voxel outside
/// (`edt(!m) * !m - edt(m) * m` in scipy's terms); 0 everywhere for an empty mask, and `-inf`
/// inside a mask that fills the grid. Distances between voxel centres, with `spacing` as in
/// [`distance_transform`].
///
/// Kervadec et al.'s boundary loss code (`one_hot2dist`) uses the same map shifted by one
/// voxel inside, `edt(!m) * !m - (edt(m) - 1) * m`, so that the mask's border voxels get 0:
/// their map is this one plus the mask.
///
/// # Errors
/// As [`distance_transform`].
pub fn signed_distance_map(
    mask: &[bool],
    shape: &[usize],
    spacing: Option<&[f64]>,
) -> Result<Vec<f64>, SegLossError> {
    let spacing = checked_grid(mask.len(), shape, spacing)?;
    Ok(signed_distances(mask, shape, &spacing))
}

/// [`signed_distance_map`] with checked arguments.
pub(crate) fn signed_distances(mask: &[bool], shape: &[usize], spacing: &[f64]) -> Vec<f64> {
    if !mask.contains(&true) {
        return vec![0.0; mask.len()];
    }
    let outside: Vec<bool> = mask.iter().map(|&m| !m).collect();
    let to_mask = squared_distances(mask, shape, spacing);
    let to_outside = squared_distances(&outside, shape, spacing);
    mask.iter()
        .zip(to_mask.iter().zip(&to_outside))
        .map(|(&m, (&a, &b))| if m { -b.sqrt() } else { a.sqrt() })
        .collect()
}

/// The spacing of a grid of `shape` holding `len` values: the given one, checked, or 1.
fn checked_grid(
    len: usize,
    shape: &[usize],
    spacing: Option<&[f64]>,
) -> Result<Vec<f64>, SegLossError> {
    if shape.is_empty() || shape.contains(&0) {
        return Err(SegLossError::EmptyTensor {
            name: "shape",
            shape: shape.to_vec(),
        });
    }
    if shape.iter().product::<usize>() != len {
        return Err(SegLossError::ShapeMismatch {
            left_name: "values",
            left: vec![len],
            right_name: "shape",
            right: shape.to_vec(),
        });
    }
    super::config::checked_spacing(spacing, shape.len())
}
