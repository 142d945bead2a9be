//! Input checks shared by every loss: written once, so every function rejects the same bad
//! inputs with the same error.

use burn::tensor::Tensor;
use burn::tensor::kind::Basic;

use crate::SegLossError;

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
    let dtype = logits.dtype();
    Ok(if targets.dtype() == dtype {
        targets
    } else {
        targets.cast(dtype)
    })
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

/// Checks that `count` pixels per image can be summed in `int_dtype`, the device's integer
/// type that `bool.int()` makes (i64 on ndarray, i32 on wgpu and on flex), so that an integer
/// sum never wraps.
pub(crate) fn countable(count: usize, int_dtype: burn::tensor::DType) -> Result<(), SegLossError> {
    use burn::tensor::DType;
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

#[cfg(test)]
mod tests {
    use burn::tensor::DType;

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
}
