//! Row-wise radix sort, prefix sums and Lovász weights on CubeCL devices (wgpu, CUDA, ROCm):
//! a burn backend extension ([`RowSortOps`]) for what burn 0.22 does on the host or in
//! `O(n^2)`.
//!
//! burn 0.22's `sort`/`argsort` on a cube device read the tensor to the host, sort there and
//! upload the result, and its cube `cumsum` adds `O(n)` terms per element. The Lovász losses
//! need both on every training step; with these two operations their device path (see
//! `segloss::losses::lovasz_hinge`) stays on the device from the errors to the loss, with no
//! read, sync or upload.
//!
//! - [`sort_rows_descending`]: a stable, segmented (one segment per row of `[R, P]`),
//!   descending LSD radix sort of f32 keys carrying their pixel index, in eight passes of 4-bit
//!   digits (per-block digit counts, a scan of the digit-by-block counts per row, a stable
//!   scatter). Equal keys keep ascending index, the order of the host kernels.
//! - [`cumsum_rows`]: per-row inclusive prefix sums of integers (reduce, scan, rescan: three
//!   kernels), exact for up to `2^31 - 1` elements whose sums fit in `i32`.
//! - [`lovasz_weights`]: both at once for the Lovász losses: the sort carries each pixel's
//!   label in its payload, and one scan of the sorted labels writes every pixel's weight.
//!
//! They run without plane (subgroup) operations and without any workgroup waiting for another,
//! so they run on Mesa's lavapipe (software Vulkan, which CI uses), and use at most 17 KiB of
//! workgroup memory. The workgroup layout and the shared scan are in `block.rs`, the kernels in
//! `scan.rs`, `radix_sort.rs` and `lovasz.rs`, the launch grid in `launch.rs`, and in
//! `limits.rs` the check of every buffer length against the kernels' 32-bit indices, which
//! each public function makes before launching anything (the launches are unchecked).

// The kernels are CubeCL code: its macro turns index loops and nested `if`s into device
// code, where iterator adapters and comptime-conditions joined with `&&` do not exist.
#![allow(clippy::needless_range_loop, clippy::collapsible_if)]

mod block;
mod launch;
mod limits;
mod lovasz;
mod radix_sort;
mod scan;

use burn::backend::Cube;
use burn::backend::backend_extension;
use burn::backend::fusion::custom::TensorSpec;
use burn::backend::ops::{FloatTensorOps, IntTensorOps};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::tensor::{DType, FloatDType, Int, IntDType, Tensor};
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;

use crate::error::SegLossError;
use limits::RowOp;

/// The backend extension: the row operations on a cube device, for the plain cube backend and
/// its fusion wrapper (burn's wgpu, cuda and rocm backends). Call them through
/// [`sort_rows_descending`], [`cumsum_rows`] and [`lovasz_weights`], which check their inputs.
#[backend_extension(Cube, Fusion)]
pub trait RowSortOps: burn::backend::Backend {
    /// Every row of `keys` (`[R, P]`, f32) sorted in descending order, stably, and the pixel
    /// index (`0..P`, i32) each sorted key came from.
    #[fusion(meta = sorted_specs)]
    fn sort_rows_descending(keys: FloatTensor<Self>) -> (FloatTensor<Self>, IntTensor<Self>);

    /// The inclusive prefix sums of every row of `values` (`[R, P]`, i32).
    #[fusion(dtype = values, shape = values)]
    fn cumsum_rows(values: IntTensor<Self>) -> IntTensor<Self>;

    /// The Lovász-Jaccard weight of every pixel of every row of `errors` (`[R, P]`) with the
    /// labels `labels` (1 for foreground), at the pixel's own position (f32).
    #[fusion(meta = weights_spec)]
    fn lovasz_weights(errors: FloatTensor<Self>, labels: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// The output of [`RowSortOps::lovasz_weights`] for the fusion stream: f32 of the errors'
/// shape.
fn weights_spec(errors: &TensorSpec, _labels: &TensorSpec) -> TensorSpec {
    TensorSpec::new(errors.shape.clone(), DType::F32)
}

/// The outputs of [`RowSortOps::sort_rows_descending`] for the fusion stream: f32 keys and i32
/// indices of the input's shape.
fn sorted_specs(keys: &TensorSpec) -> (TensorSpec, TensorSpec) {
    (
        TensorSpec::new(keys.shape.clone(), DType::F32),
        TensorSpec::new(keys.shape.clone(), DType::I32),
    )
}

/// `tensor` as contiguous f32.
fn f32_contiguous(tensor: CubeTensor) -> CubeTensor {
    into_contiguous(CubeBackend::float_cast(tensor, FloatDType::F32))
}

/// A contiguous tensor of `like`'s shape, client and device on `handle`.
fn like(
    like: &CubeTensor,
    handle: burn_cubecl::cubecl::server::Handle,
    dtype: DType,
) -> CubeTensor {
    CubeTensor::new_contiguous(
        like.client.clone(),
        like.device.clone(),
        like.meta.shape().clone(),
        handle,
        dtype,
    )
}

/// `(rows, len)` of a `[R, P]` tensor.
fn rows_and_len(tensor: &CubeTensor) -> (usize, usize) {
    let shape = tensor.meta.shape();
    let len = shape[shape.num_dims() - 1];
    (shape.num_elements() / len.max(1), len)
}

impl RowSortOps for CubeBackend {
    fn sort_rows_descending(keys: CubeTensor) -> (CubeTensor, CubeTensor) {
        let keys = f32_contiguous(keys);
        let (rows, len) = rows_and_len(&keys);
        let client = &keys.client;
        let sorted = radix_sort::sort_rows(client, keys.handle.clone(), None, rows, len);
        let values = radix_sort::values_of(client, sorted.keys, rows * len);
        (
            like(&keys, values, DType::F32),
            // The payloads are the indices, below 2^31 (checked by the caller): the same bits
            // as i32.
            like(&keys, sorted.payloads, DType::I32),
        )
    }

    fn lovasz_weights(errors: CubeTensor, labels: CubeTensor) -> CubeTensor {
        let errors = f32_contiguous(errors);
        let labels = f32_contiguous(labels);
        let (rows, len) = rows_and_len(&errors);
        let client = &errors.client;
        let sorted = radix_sort::sort_rows(
            client,
            errors.handle.clone(),
            Some(labels.handle.clone()),
            rows,
            len,
        );
        let weights = lovasz::weights_of_sorted(client, sorted.payloads, rows, len);
        like(&errors, weights, DType::F32)
    }

    fn cumsum_rows(values: IntTensor<Self>) -> IntTensor<Self> {
        let values = into_contiguous(Self::int_cast(values, IntDType::I32));
        let (rows, len) = rows_and_len(&values);
        let sums = scan::scan_rows::<i32>(&values.client, values.handle.clone(), rows, len, true);
        like(&values, sums, DType::I32)
    }
}

/// Whether `tensor` lives on a cube device (with or without autodiff).
pub(crate) fn on_cube_device<const D: usize, K>(tensor: &Tensor<D, K>) -> bool
where
    K: burn::tensor::kind::Autodiff + burn::tensor::BackendPrimitive<Cube>,
{
    tensor.clone().inner().try_into_primitive::<Cube>().is_ok()
}

/// Whether [`lovasz_weights`] can run `rows` rows of `len` pixels within the kernels' 32-bit
/// indices (the losses read the errors to the host instead where it cannot).
pub(crate) fn lovasz_weights_fit(rows: usize, len: usize) -> bool {
    limits::check_lengths(limits::RowOp::LovaszWeights, rows, len).is_ok()
}

/// The error for a tensor that is not on a cube device.
fn not_on_cube(name: &'static str) -> SegLossError {
    SegLossError::InvalidOption {
        name,
        value: "a tensor on a CPU backend".into(),
        allowed: "a tensor on a CubeCL device (wgpu, cuda, rocm)",
    }
}

/// Checks a `[R, P]` input of the row operation `op`: no empty dimension, every buffer the
/// launches will use within CubeCL's 32-bit indices ([`limits::check_lengths`]: `R * P` and
/// `P` at most `2^31 - 1`, and the sort's digit counts), and a cube device.
fn check_rows<K>(tensor: &Tensor<2, K>, name: &'static str, op: RowOp) -> Result<(), SegLossError>
where
    K: burn::tensor::kind::Autodiff + burn::tensor::BackendPrimitive<Cube>,
{
    let (rows, len) = crate::check::batch_shape(tensor, name)?;
    limits::check_lengths(op, rows, len)?;
    if !on_cube_device(tensor) {
        return Err(not_on_cube(name));
    }
    Ok(())
}

/// Sorts every row of `keys` (`[R, P]`) in descending order on its cube device, stably (equal
/// keys keep ascending column order), and returns the sorted keys and, for each, the column it
/// came from: `sorted[r][k] = keys[r][indices[r][k]]`.
///
/// The order is `f32::total_cmp` reversed (NaN first, then `+inf`, ..., `+0`, `-0`, ...,
/// `-inf`); other float dtypes are cast to f32 first. Nothing is read to the host: the result
/// stays on the device, queued behind the input (fusion streams included). The outputs carry
/// no gradient (the input's autodiff, if any, is left out of the sort). Cost: eight passes
/// of 20 bytes per element.
///
/// # Errors
/// A tensor that is not on a cube device (use burn's `sort_descending_with_indices` on the
/// CPU backends), an empty dimension, or [`SegLossError::TooLarge`], before anything is
/// launched, where a buffer would pass the kernels' 32-bit indices: more than `2^31 - 1`
/// elements (rows × columns), or more than `2^31 - 1` digit counts (16 per row and per block
/// of 3840 columns: at most `2^27 - 1` rows shorter than 16 columns).
pub fn sort_rows_descending(keys: Tensor<2>) -> Result<(Tensor<2>, Tensor<2, Int>), SegLossError> {
    check_rows(&keys, "keys", RowOp::Sort)?;
    let autodiff = keys.is_autodiff();
    let (sorted, indices) =
        burn::backend::Dispatch::sort_rows_descending(keys.inner().into_dispatch());
    let sorted = Tensor::<2>::from_dispatch(sorted);
    let indices = Tensor::<2, Int>::from_dispatch(indices);
    Ok(if autodiff {
        (sorted.autodiff(), indices.autodiff())
    } else {
        (sorted, indices)
    })
}

/// The inclusive prefix sums of every row of `values` (`[R, P]`) on its cube device:
/// `out[r][k] = sum(values[r][..=k])`, exact in i32 (the input is cast to i32 first; the sums
/// must stay within `i32`). Three kernels (reduce, scan, rescan); nothing is read to the host.
///
/// # Errors
/// A tensor that is not on a cube device (use burn's `cumsum` on the CPU backends), an empty
/// dimension, or [`SegLossError::TooLarge`], before anything is launched, for more than
/// `2^31 - 1` elements (rows × columns: the kernels index in 32 bits).
pub fn cumsum_rows(values: Tensor<2, Int>) -> Result<Tensor<2, Int>, SegLossError> {
    check_rows(&values, "values", RowOp::Cumsum)?;
    let autodiff = values.is_autodiff();
    let sums = Tensor::<2, Int>::from_dispatch(burn::backend::Dispatch::cumsum_rows(
        values.inner().into_dispatch(),
    ));
    Ok(if autodiff { sums.autodiff() } else { sums })
}

/// The weight `lovasz_grad` (Berman et al. 2018, Alg. 1) gives every pixel of every row of
/// `errors` (`[R, P]`, one Lovász problem per row) with the hard labels `labels` (`[R, P]`,
/// 1 for foreground, anything else background), at the pixel's own position: the row sorted by
/// decreasing error (stable: equal errors in ascending pixel order, as the host kernels), and
/// with `f_k` foreground pixels among the first `k + 1` sorted and `G` in the row, the
/// intersection `I_k = G - f_k`, the union `U_k = G + (k + 1) - f_k`, `J_k = 1 - I_k / U_k`,
/// and the weight `J_k - J_(k-1)` (`J_(-1) = 0`).
///
/// Each weight is computed in f32 as one fraction of the exact integer counts, never as that
/// difference (two values near 1 whose difference, about `1 / (4G)` late in a row of 10^6
/// foreground pixels, is below f32's spacing there): `J_0 = (U_0 - I_0) / U_0` at position 0,
/// `1 / U_k` at a foreground pixel, `(I_k / U_(k-1)) / U_k` at a background one. So every
/// weight is within a few f32 roundings (`~1e-6`) of its own value, at any row length.
///
/// `sum(errors * weights)` is the Lovász extension of the Jaccard loss at `errors`, and,
/// with the weights held constant, its exact gradient. The radix sort carries the labels in
/// its payloads, and one scan of them computes the weights and writes them in place: eight
/// sort passes and three kernels, nothing read to the host. The result carries no gradient.
///
/// # Errors
/// Tensors not on a cube device, of different shapes or devices, with an empty dimension, or
/// [`SegLossError::TooLarge`], before anything is launched, as [`sort_rows_descending`]: more
/// than `2^31 - 1` elements, or more than `2^27 - 1` rows shorter than 16 columns.
pub fn lovasz_weights(errors: Tensor<2>, labels: Tensor<2>) -> Result<Tensor<2>, SegLossError> {
    check_rows(&errors, "errors", RowOp::LovaszWeights)?;
    crate::check::same_shape_and_device(&errors, "errors", &labels, "labels")?;
    let autodiff = errors.is_autodiff();
    let weights = Tensor::<2>::from_dispatch(burn::backend::Dispatch::lovasz_weights(
        errors.inner().into_dispatch(),
        labels.inner().into_dispatch(),
    ));
    Ok(if autodiff {
        weights.autodiff()
    } else {
        weights
    })
}
