//! Moving data between a tensor and the host, written once.

use std::fmt::Debug;

use burn::tensor::kind::Basic;
use burn::tensor::{Bool, BoolStore, DType, Device, Int, Tensor, TensorData};

use crate::engine::NativeMask;
use crate::error::SegLossError;

/// Reads a float tensor to the host (detached), in its own dtype.
///
/// burn 0.22 reads a tensor whose storage is shared (a clone still alive, as for logits that
/// stay in the autodiff graph) element by element, many times slower than an owned tensor;
/// multiplying by one first makes an owned copy at memory speed and is exact, so every read
/// goes through it (benches/results/design_notes.md, "Reading shared tensors").
///
/// A backend that fails to read (a device error) gives [`SegLossError::HostRead`] naming
/// `what`, where burn's `into_data` would panic.
pub(crate) fn read<const D: usize>(
    tensor: Tensor<D>,
    what: &'static str,
) -> Result<TensorData, SegLossError> {
    read_data(tensor.detach().mul_scalar(1.0), what)
}

/// Reads a float tensor to the host as `f64` (exact for f32, f16 and bf16 inputs).
pub(crate) fn read_f64<const D: usize>(
    tensor: Tensor<D>,
    what: &'static str,
) -> Result<Vec<f64>, SegLossError> {
    read(tensor, what)?
        .convert::<f64>()
        .try_into_vec::<f64>()
        .map_err(|e| read_failed(what, e))
}

/// Reads a tensor of any kind to the host as it is, with burn's fallible read: every read of
/// the crate ends here or in [`NativeMask`] (which borrows a CPU backend's buffer).
pub(crate) fn read_data<const D: usize, K: Basic>(
    tensor: Tensor<D, K>,
    what: &'static str,
) -> Result<TensorData, SegLossError> {
    tensor.try_into_data().map_err(|e| read_failed(what, e))
}

/// The error of a failed read of `what`: burn's `ExecutionError` (the device failed) or
/// `DataError` (the data read was not of the expected type), kept as its debug text.
fn read_failed(what: &'static str, error: impl Debug) -> SegLossError {
    SegLossError::HostRead {
        what,
        reason: format!("{error:?}"),
    }
}

/// Uploads host values as a float tensor of the given `shape`, on `device`, in `dtype` (the
/// dtype of the input it will be combined with: burn panics on mixed dtypes).
pub(crate) fn upload<const D: usize>(
    values: Vec<f64>,
    shape: [usize; D],
    device: &Device,
    dtype: DType,
) -> Tensor<D> {
    let data = TensorData::new(values, shape).convert_dtype(dtype);
    Tensor::from_data(data, (device, dtype))
}

/// Reads integer counts to the host as `i64`.
pub(crate) fn read_counts(
    counts: Tensor<1, Int>,
    what: &'static str,
) -> Result<Vec<i64>, SegLossError> {
    read_data(counts, what)?
        .convert::<i64>()
        .try_into_vec::<i64>()
        .map_err(|e| read_failed(what, e))
}

/// Reads a boolean tensor to the host, flattened, whatever store the backend keeps booleans
/// in (native `bool`, `u8` or `u32`).
pub(crate) fn read_mask<const D: usize>(
    mask: Tensor<D, Bool>,
    what: &'static str,
) -> Result<Vec<bool>, SegLossError> {
    Ok(read_mask_bytes(mask, what)?
        .as_slice()
        .iter()
        .map(|&b| b != 0)
        .collect())
}

/// A boolean tensor on the host as one byte per element, nonzero where true: borrowed from the
/// backend's own buffer on flex and ndarray, else the read bytes themselves for the one-byte
/// stores, a converted copy for the others.
pub(crate) enum MaskBytes {
    /// The backend's buffer, borrowed (no copy, even when the caller keeps the tensor: a read
    /// of a shared tensor would copy it into fresh pages).
    Native(NativeMask),
    /// A native `bool` or `u8` store: its bytes are the mask.
    Read(TensorData),
    /// Any other store, converted.
    Converted(Vec<u8>),
}

impl MaskBytes {
    /// One byte per element, nonzero where true.
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            MaskBytes::Native(mask) => mask.bytes(),
            MaskBytes::Read(data) => data.as_bytes(),
            MaskBytes::Converted(bytes) => bytes,
        }
    }
}

/// Reads a boolean tensor to the host as [`MaskBytes`], flattened.
pub(crate) fn read_mask_bytes<const D: usize>(
    mask: Tensor<D, Bool>,
    what: &'static str,
) -> Result<MaskBytes, SegLossError> {
    if let Some(native) = NativeMask::of(&mask) {
        return Ok(MaskBytes::Native(native));
    }
    let data = read_data(mask, what)?;
    let failed = |e: burn::tensor::DataError| read_failed(what, e);
    Ok(match data.dtype() {
        DType::Bool(BoolStore::U8 | BoolStore::Native) => MaskBytes::Read(data),
        DType::Bool(BoolStore::U32) => MaskBytes::Converted(
            data.as_slice::<u32>()
                .map_err(failed)?
                .iter()
                .map(|&b| u8::from(b != 0))
                .collect(),
        ),
        _ => MaskBytes::Converted(
            data.convert_dtype(DType::Bool(BoolStore::Native))
                .try_into_vec::<bool>()
                .map_err(failed)?
                .into_iter()
                .map(u8::from)
                .collect(),
        ),
    })
}

/// Reads an integer tensor to the host as `i64`, flattened.
pub(crate) fn read_indices<const D: usize>(
    indices: Tensor<D, Int>,
    what: &'static str,
) -> Result<Vec<i64>, SegLossError> {
    let len = indices.shape().num_elements();
    read_counts(indices.reshape([len]), what)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device error cannot be provoked on the CPU backends (their reads do not fail), so this
    /// checks the mapping every read goes through on the errors burn's fallible reads return.
    #[test]
    fn failed_reads_are_host_read_errors() {
        let execution = burn::backend::ExecutionError::DevicePoisoned {
            reason: "illegal memory access".into(),
        };
        match read_failed("logits", execution) {
            SegLossError::HostRead { what, reason } => {
                assert_eq!(what, "logits");
                assert!(reason.contains("illegal memory access"), "{reason}");
            }
            other => panic!("expected HostRead, got {other:?}"),
        }
        // The other failure of a read: data of an unexpected type.
        let data = TensorData::new(vec![1.0f32, 2.0], [2]);
        let wrong_type = data.as_slice::<i64>().unwrap_err();
        assert!(matches!(
            read_failed("targets", wrong_type),
            SegLossError::HostRead {
                what: "targets",
                ..
            }
        ));
    }

    #[cfg(feature = "flex")]
    #[test]
    fn reads_return_the_values() {
        let device = Device::flex();
        let x = Tensor::<2>::from_floats([[1.5, -2.0], [0.25, 3.0]], &device);
        assert_eq!(
            read_f64(x.clone(), "x").unwrap(),
            vec![1.5, -2.0, 0.25, 3.0]
        );
        let counts = Tensor::<1, Int>::from_ints([3, -4, 7], &device);
        assert_eq!(read_counts(counts, "counts").unwrap(), vec![3, -4, 7]);
        let mask = x.greater_elem(0.0);
        assert_eq!(
            read_mask(mask, "mask").unwrap(),
            vec![true, false, true, true]
        );
    }
}
