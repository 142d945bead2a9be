//! The exact Euclidean distance transform of a grid on the host, public for data loaders and
//! for comparison with scipy.

use crate::check;
use crate::cpu::edt::squared_distances;
use crate::error::SegLossError;

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
    if check::element_count(shape, "the grid's voxels")? != len {
        return Err(SegLossError::ShapeMismatch {
            left_name: "values",
            left: vec![len],
            right_name: "shape",
            right: shape.to_vec(),
        });
    }
    check::checked_spacing(spacing, shape.len())
}
