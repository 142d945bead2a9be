//! Explicit validation of target tensors.
//!
//! The losses never read their inputs back to the host just to check them (that would force a
//! device sync on every call). The host kernels, which read the targets anyway, refuse a
//! binary target outside `[0, 1]` in the same pass; the device path (wgpu, `Execution::Device`,
//! the batch statistics of the `*_shared` losses) reads nothing and does not see one. Call
//! [`validate_targets`] there, once on a data set or a batch, as the opt-in form of that check.

use burn::tensor::{Int, Tensor};

use crate::check::batch_shape;
use crate::engine::host::{read_counts, read_f64};
use crate::error::SegLossError;

/// Which values a target tensor may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// Hard masks: every value is exactly `0` or `1`.
    Hard,
    /// Soft labels: every value lies in `[0, 1]`.
    Soft,
}

/// Checks a target tensor `[N, ...]`: rank >= 2, no zero-sized dimension, and every value
/// allowed by `kind` (NaN and infinities are never allowed).
///
/// Reads the tensor to the host (one device sync).
///
/// ```
/// # #[cfg(feature = "flex")] {
/// use burn::tensor::{Device, Tensor};
/// use segloss::{validate_targets, TargetKind};
/// let device = Device::flex();
/// let y = Tensor::<2>::from_floats([[0.0, 1.0], [1.0, 0.5]], &device);
/// assert!(validate_targets(y.clone(), TargetKind::Soft).is_ok());
/// assert!(validate_targets(y, TargetKind::Hard).is_err());
/// # }
/// ```
pub fn validate_targets<const D: usize>(
    targets: Tensor<D>,
    kind: TargetKind,
) -> Result<(), SegLossError> {
    batch_shape(&targets, "targets")?;
    check_values(&read_f64(targets, "targets")?, kind)
}

/// The value check of [`validate_targets`] on host values, shared with the functions that
/// read their targets anyway (Lovász).
pub(crate) fn check_values<T: Copy + Into<f64>>(
    values: &[T],
    kind: TargetKind,
) -> Result<(), SegLossError> {
    let bad = |v: f64| match kind {
        TargetKind::Hard => v != 0.0 && v != 1.0,
        TargetKind::Soft => !(0.0..=1.0).contains(&v),
    };
    // A branch-free scan first (it vectorises; the Lovász losses check every target on every
    // call), then the position only when something is wrong.
    let any_bad = match kind {
        TargetKind::Hard => values.iter().fold(false, |acc, &v| {
            let v: f64 = v.into();
            acc | ((v != 0.0) & (v != 1.0))
        }),
        TargetKind::Soft => values.iter().fold(false, |acc, &v| {
            let v: f64 = v.into();
            acc | !(0.0..=1.0).contains(&v)
        }),
    };
    if !any_bad {
        return Ok(());
    }
    match values.iter().position(|&v| bad(v.into())) {
        None => Ok(()),
        Some(i) => Err(SegLossError::InvalidTargets {
            reason: format!(
                "value {} at flat index {i}; expected {}",
                values[i].into(),
                match kind {
                    TargetKind::Hard => "0 or 1 (a hard mask)",
                    TargetKind::Soft => "a value in [0, 1]",
                }
            ),
        }),
    }
}

/// Checks class-index targets `[N, 1, ...]` of a `classes`-class loss (e.g.
/// [`multiclass_overlap`](crate::losses::multiclass_overlap)): rank >= 2, no zero-sized
/// dimension, and every index in `0..classes` or equal to `ignore_index`. The losses do not
/// check this themselves (it needs a device sync); an unchecked out-of-range index belongs to
/// no class.
///
/// Reads the tensor to the host (one device sync).
///
/// ```
/// # #[cfg(feature = "flex")] {
/// use burn::tensor::{Device, Int, Tensor};
/// use segloss::validate_class_indices;
/// let device = Device::flex();
/// let y = Tensor::<3, Int>::from_ints([[[0, 2, 255]]], &device);
/// assert!(validate_class_indices(y.clone(), 3, Some(255)).is_ok());
/// assert!(validate_class_indices(y, 3, None).is_err());
/// # }
/// ```
pub fn validate_class_indices<const D: usize>(
    indices: Tensor<D, Int>,
    classes: usize,
    ignore_index: Option<i64>,
) -> Result<(), SegLossError> {
    batch_shape(&indices, "targets")?;
    let values = read_counts(indices.flatten::<1>(0, D - 1), "the class indices")?;
    let allowed = |v: i64| (0..classes as i64).contains(&v) || Some(v) == ignore_index;
    match values.iter().position(|&v| !allowed(v)) {
        None => Ok(()),
        Some(i) => Err(SegLossError::InvalidTargets {
            reason: format!(
                "class index {} at flat index {i}; expected 0..{classes}{}",
                values[i],
                ignore_index.map_or(String::new(), |v| format!(" or the ignore_index {v}"))
            ),
        }),
    }
}
