//! Moving data between a tensor and the host, written once.
//!
//! burn copies a tensor element by element when its storage is shared (a clone still alive),
//! so callers pass owned tensors: a freshly computed one, never `x.clone()` of a live input.

use burn::tensor::{DType, Device, Tensor, TensorData};

/// Reads a float tensor to the host as `f64` (exact for f32, f16 and bf16 inputs).
pub(crate) fn read_f64<const D: usize>(tensor: Tensor<D>) -> Vec<f64> {
    tensor
        .into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .expect("converted TensorData holds f64")
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
