//! Input checks shared by every loss: written once, so every function rejects the same bad
//! inputs with the same error.

use burn::tensor::kind::Basic;
use burn::tensor::{DType, Tensor};

use crate::error::SegLossError;

/// Checks the inputs of a binary loss and returns them ready to compute with: the checks of
/// [`binary_pair`] (shape, rank, device), then one channel ([`one_channel`]); the logits
/// widened to f32 when they are half precision ([`widened`]) and the targets cast to the
/// logits' dtype, each check made once.
pub(crate) fn binary_inputs<const D: usize>(
    logits: Tensor<D>,
    targets: Tensor<D>,
) -> Result<(Tensor<D>, Tensor<D>), SegLossError> {
    same_shape_and_device(&logits, "logits", &targets, "targets")?;
    one_channel(&logits)?;
    let logits = widened(logits);
    let targets = in_dtype(targets, logits.dtype());
    Ok((logits, targets))
}

/// A binary loss scores one channel: `[N, H, W]` (rank 3 has no channel axis), `[N, 1, ...]`,
/// or `[N, P]`. A rank >= 4 input with more than one channel is an error rather than one score
/// pooled over the channels, which would mix classes silently.
pub(crate) fn one_channel<const D: usize>(logits: &Tensor<D>) -> Result<(), SegLossError> {
    let dims = logits.dims();
    if D >= 4 && dims[1] > 1 {
        return Err(SegLossError::UnsupportedShape {
            name: "logits of a binary loss",
            shape: dims.to_vec(),
            expected: "one channel, [N, 1, ...] (or [N, H, W]): a binary loss never pools C > 1 \
                       channels into one score; score several labels or classes with \
                       multiclass_overlap and ClassMode::Multilabel (or ClassMode::Softmax)",
        });
    }
    Ok(())
}

/// Half precision (f16, bf16) widened to f32, any other dtype as it is.
///
/// The losses compute in f32 for half-precision inputs, as PyTorch's autocast does for losses:
/// f16 cannot hold the probability clamps (`f32::MIN_POSITIVE` is 0 in f16) nor accumulate a
/// sum over an image, and bf16 keeps 8 bits of mantissa. The cast is part of the autodiff
/// graph, so the gradient reaches the half-precision logits in their own dtype; the loss
/// itself is f32.
pub(crate) fn widened<const D: usize>(tensor: Tensor<D>) -> Tensor<D> {
    let dtype = compute_dtype(tensor.dtype());
    in_dtype(tensor, dtype)
}

/// The dtype a loss computes in (and shares its statistics in) for inputs of `dtype`: f32 for
/// half precision ([`widened`]), `dtype` itself otherwise.
pub(crate) fn compute_dtype(dtype: DType) -> DType {
    match dtype {
        DType::F16 | DType::BF16 => DType::F32,
        other => other,
    }
}

/// Checks that `logits` and `targets` can be scored together: rank >= 2 (`[N, ...]`), the
/// same shape, no zero-sized dimension and the same device (autodiff aside: targets created
/// on the plain device may be combined with logits on its autodiff twin).
///
/// Returns the targets cast to the logits' dtype, since burn panics on mixed dtypes.
pub(crate) fn binary_pair<const D: usize>(
    logits: &Tensor<D>,
    targets: Tensor<D>,
) -> Result<Tensor<D>, SegLossError> {
    same_shape_and_device(logits, "logits", &targets, "targets")?;
    Ok(in_dtype(targets, logits.dtype()))
}

/// `tensor` in `dtype` (a cast only where it differs).
pub(crate) fn in_dtype<const D: usize>(tensor: Tensor<D>, dtype: DType) -> Tensor<D> {
    if tensor.dtype() == dtype {
        tensor
    } else {
        tensor.cast(dtype)
    }
}

/// Rank >= 2, no empty dimension, same shape and same device, for any two tensor kinds.
pub(crate) fn same_shape_and_device<const D: usize, K1: Basic, K2: Basic>(
    left: &Tensor<D, K1>,
    left_name: &'static str,
    right: &Tensor<D, K2>,
    right_name: &'static str,
) -> Result<(), SegLossError> {
    batch_shape(left, left_name)?;
    if left.dims() != right.dims() {
        return Err(SegLossError::ShapeMismatch {
            left_name,
            left: left.dims().to_vec(),
            right_name,
            right: right.dims().to_vec(),
        });
    }
    same_device(left, left_name, right, right_name)
}

/// The same device (autodiff aside), for tensors of any rank and kind.
pub(crate) fn same_device<const D1: usize, const D2: usize, K1: Basic, K2: Basic>(
    left: &Tensor<D1, K1>,
    left_name: &'static str,
    right: &Tensor<D2, K2>,
    right_name: &'static str,
) -> Result<(), SegLossError> {
    let (ld, rd) = (left.device(), right.device());
    if ld.clone().without_autodiff() != rd.clone().without_autodiff() {
        return Err(SegLossError::DeviceMismatch {
            left_name,
            left: format!("{ld:?}"),
            right_name,
            right: format!("{rd:?}"),
        });
    }
    Ok(())
}

/// Checks that a tensor is a batch `[N, ...]` of rank >= 2 with no zero-sized dimension and
/// returns `(N, pixels per image)`.
pub(crate) fn batch_shape<const D: usize, K: Basic>(
    tensor: &Tensor<D, K>,
    name: &'static str,
) -> Result<(usize, usize), SegLossError> {
    if D < 2 {
        return Err(SegLossError::UnsupportedRank {
            name,
            rank: D,
            min: 2,
        });
    }
    let dims = tensor.dims();
    if dims.contains(&0) {
        return Err(SegLossError::EmptyTensor {
            name,
            shape: dims.to_vec(),
        });
    }
    Ok((dims[0], dims[1..].iter().product()))
}

/// `0 <= value <= f32::MAX` (smoothing terms, weights, exponents): finite, and still finite
/// once uploaded or multiplied into an f32 tensor.
pub(crate) fn non_negative(name: &'static str, value: f64) -> Result<(), SegLossError> {
    if (0.0..=f64::from(f32::MAX)).contains(&value) {
        Ok(())
    } else {
        Err(SegLossError::InvalidParameter {
            name,
            value,
            allowed: "[0, 3.4e38] (non-negative, finite in f32)",
        })
    }
}

/// `0 < value <= f32::MAX` (class weights: they must stay finite in an f32 tensor).
pub(crate) fn positive(name: &'static str, value: f64) -> Result<(), SegLossError> {
    if value > 0.0 && value <= f64::from(f32::MAX) {
        Ok(())
    } else {
        Err(SegLossError::InvalidParameter {
            name,
            value,
            allowed: "(0, 3.4e38] (positive, finite in f32)",
        })
    }
}

/// `0 < value < 1` (a class prior).
pub(crate) fn open_unit(name: &'static str, value: f64) -> Result<(), SegLossError> {
    if value > 0.0 && value < 1.0 {
        Ok(())
    } else {
        Err(SegLossError::InvalidParameter {
            name,
            value,
            allowed: "(0, 1)",
        })
    }
}

/// `0 <= value <= 1` (a mixing weight such as the weighted Hamming `gamma`).
pub(crate) fn closed_unit(name: &'static str, value: f64) -> Result<(), SegLossError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(SegLossError::InvalidParameter {
            name,
            value,
            allowed: "[0, 1]",
        })
    }
}

/// The number of elements of a shape given by the caller (not read from a tensor, which burn
/// has allocated already), or [`SegLossError::TooLarge`] when the product overflows or
/// exceeds what one allocation of 8-byte elements can hold: checked, so that a huge shape is
/// an error in release builds too instead of a wrapped, plausible count.
pub(crate) fn element_count(dims: &[usize], what: &'static str) -> Result<usize, SegLossError> {
    let limit = isize::MAX as u64 / 8;
    let mut count: u64 = 1;
    for &d in dims {
        count = count.saturating_mul(d as u64);
    }
    if count > limit {
        return Err(SegLossError::TooLarge { what, count, limit });
    }
    Ok(count as usize)
}

/// A class count the crate can name: class ids are compared with a class range built in the
/// device's integers (i32 on flex and wgpu), and a one-hot map holds a mask per class, so a
/// count past `i32::MAX` (`1 << 40` passed by mistake) is [`SegLossError::TooLarge`] rather
/// than an allocation that aborts the process.
pub(crate) fn class_count(classes: usize) -> Result<(), SegLossError> {
    if i32::try_from(classes).is_err() {
        return Err(SegLossError::TooLarge {
            what: "classes (class ids are the device's integers)",
            count: classes as u64,
            limit: i32::MAX as u64,
        });
    }
    Ok(())
}

/// Checks that `count` pixels per image can be summed in `int_dtype`, the device's integer
/// type that `bool.int()` makes (i64 on ndarray, i32 on wgpu and on flex), so that an integer
/// sum never wraps.
pub(crate) fn countable(count: usize, int_dtype: DType) -> Result<(), SegLossError> {
    let limit: u64 = match int_dtype {
        DType::I64 | DType::U64 => i64::MAX as u64,
        _ => i32::MAX as u64,
    };
    if count as u64 > limit {
        return Err(SegLossError::TooLarge {
            what: "pixels per image, counted in the device's integer type",
            count: count as u64,
            limit,
        });
    }
    Ok(())
}

/// A voxel spacing (distance maps, surface metrics): `spacing` for `dims` axes, checked (one
/// finite, positive value per axis), or 1 on every axis when `None`.
pub(crate) fn checked_spacing(
    spacing: Option<&[f64]>,
    dims: usize,
) -> Result<Vec<f64>, SegLossError> {
    let Some(spacing) = spacing else {
        return Ok(vec![1.0; dims]);
    };
    if spacing.len() != dims {
        return Err(SegLossError::InvalidOption {
            name: "spacing",
            value: format!("{spacing:?}"),
            allowed: "one value per spatial axis",
        });
    }
    if let Some(&bad) = spacing.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(SegLossError::InvalidParameter {
            name: "spacing",
            value: bad,
            allowed: "finite and > 0",
        });
    }
    Ok(spacing.to_vec())
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn counts_past_the_device_integer_range_are_an_error() {
        assert!(countable(i32::MAX as usize, DType::I32).is_ok());
        assert_eq!(
            countable(i32::MAX as usize + 1, DType::I32),
            Err(SegLossError::TooLarge {
                what: "pixels per image, counted in the device's integer type",
                count: 1 << 31,
                limit: i32::MAX as u64,
            })
        );
        assert!(countable(1 << 40, DType::I64).is_ok());
    }

    #[test]
    fn shape_products_past_the_allocation_limit_are_an_error() {
        let limit = isize::MAX as u64 / 8;
        assert_eq!(element_count(&[3, 4, 5], "x"), Ok(60));
        assert_eq!(element_count(&[limit as usize], "x"), Ok(limit as usize));
        assert_eq!(
            element_count(&[limit as usize + 1], "x"),
            Err(SegLossError::TooLarge {
                what: "x",
                count: limit + 1,
                limit
            })
        );
        // A product that wraps in usize (2^32 * 2^32 = 0 mod 2^64) is not mistaken for 0.
        assert!(element_count(&[1 << 32, 1 << 32], "x").is_err());
        assert!(element_count(&[usize::MAX, 2], "x").is_err());
    }
}
