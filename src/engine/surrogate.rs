//! The host path on any backend: read the inputs, run the kernel, upload the gradient once,
//! and attach it with a surrogate term.
//!
//! On flex and ndarray the kernel runs on the backends' own buffers and joins the graph as a
//! custom autodiff operation ([`native`](super::native)). Elsewhere (a forced
//! `Execution::Host` on another backend, or a non-contiguous view) this reads the logits and
//! targets once, uploads `g = d value / d x` once, and returns
//!
//! `value + (s - detach(s))`, with `s = sum(x * g)` per problem,
//!
//! whose value is exactly `value` (`s - s` is 0) and whose gradient with respect to `x` is
//! exactly `g`, for finite logits: an infinite logit makes `s` infinite or NaN and the loss
//! NaN on this attach (the in-place operation of flex and ndarray has no such term, and gives
//! what burn operations give). Either way the result composes with anything else in the graph
//! (sums of losses, reductions), and when the logits take no part in autodiff the bare values
//! are returned and no gradient is computed at all.

use std::borrow::Cow;

use burn::tensor::{DType, Tensor, TensorData};

use crate::check;
use crate::cpu::gradient_buffer;
use crate::engine::host::{read, read_data, upload};
use crate::engine::kernel::run_checked;
use crate::engine::native::native_loss;
use crate::engine::{Gradient, HostFloat, HostKernel, HostTargets, Indices, Labels, Targets};
use crate::error::SegLossError;
use crate::options::Reduction;
use crate::tensors::{row_sums, rows};

/// Runs `kernel` on the host and returns the loss, reduced by `reduction` when there is one
/// problem per image. Float `targets` must already have the logits' dtype
/// (`check::binary_pair`).
pub(crate) fn host_loss<const D: usize>(
    logits: Tensor<D>,
    targets: HostTargets<D>,
    weights: Option<Tensor<D>>,
    reduction: Reduction,
    kernel: &dyn HostKernel,
) -> Result<Tensor<1>, SegLossError> {
    let (n, _) = check::batch_shape(&logits, "logits")?;
    if let Some(loss) = native_loss(&logits, &targets, weights.as_ref(), n, kernel)? {
        // Reduced over images; with one problem for the whole batch ([1]) any reduction is
        // the value itself.
        return Ok(reduction.apply(loss));
    }
    let (device, dtype) = (logits.device(), logits.dtype());
    let tracked = logits.is_tracked();
    let x = read(logits.clone(), "logits")?;
    let y = match targets {
        HostTargets::Values(values) => read(values, "targets")?,
        HostTargets::Indices(indices) => read_data(indices, "targets")?,
    };
    let w = weights.map(|w| read(w, "pixel weights")).transpose()?;
    let (values, grad) = match dtype {
        DType::F32 => run_typed::<f32>(kernel, x, (&y, w.as_ref()), n, tracked)?,
        DType::F64 => run_typed::<f64>(kernel, x, (&y, w.as_ref()), n, tracked)?,
        _ => {
            return Err(SegLossError::InvalidOption {
                name: "execution",
                value: format!("the host path with {dtype:?} inputs"),
                allowed: "the host path takes f32 or f64 inputs",
            });
        }
    };
    drop((y, w));
    let problems = values.len();
    let mut loss = upload(values, [problems], &device, dtype);
    if let Some(grad) = grad {
        let x = rows(logits);
        let g = Tensor::<2>::from_data(grad, (&device, dtype));
        let product = x.mul(g);
        let s = if kernel.per_image() {
            row_sums(product)
        } else {
            product.sum()
        };
        loss = loss + (s.clone() - s.detach());
    }
    // Reduced over images; with one problem for the whole batch ([1]) any reduction is the
    // value itself.
    Ok(reduction.apply(loss))
}

/// Runs the kernel on the slices of `x` and `y` as `F`; returns the values and, when `tracked`,
/// the gradient as tensor data `[rows, len]`.
fn run_typed<F: HostFloat>(
    kernel: &dyn HostKernel,
    x: TensorData,
    (y, w): (&TensorData, Option<&TensorData>),
    rows: usize,
    tracked: bool,
) -> Result<(Vec<f64>, Option<TensorData>), SegLossError> {
    let xs = slice::<F>(&x);
    let ys = targets::<F>(y)?;
    let ws = w.map(slice::<F>);
    let mut grad = tracked.then(|| gradient_buffer::zeroed(xs.len()));
    let values = run_checked(
        kernel,
        &xs,
        Targets {
            labels: ys.borrow(),
            weights: ws.as_deref(),
        },
        rows,
        grad.as_deref_mut().map(Gradient::new),
    )?;
    let len = xs.len() / rows;
    Ok((values, grad.map(|g| TensorData::new(g, [rows, len]))))
}

/// Targets read to the host: float values in the logits' type, or class indices.
enum OwnedTargets<'a, F: Clone> {
    Values(Cow<'a, [F]>),
    Indices(Indices<'a>),
}

impl<F: Clone> OwnedTargets<'_, F> {
    fn borrow(&self) -> Labels<'_, F> {
        match self {
            OwnedTargets::Values(v) => Labels::Values(v),
            OwnedTargets::Indices(i) => Labels::Indices(*i),
        }
    }
}

/// The targets' data as the kernel reads it.
fn targets<F: HostFloat>(data: &TensorData) -> Result<OwnedTargets<'_, F>, SegLossError> {
    let indices = match data.dtype() {
        DType::I64 => data.as_slice().map(Indices::I64),
        DType::I32 => data.as_slice().map(Indices::I32),
        DType::I16 => data.as_slice().map(Indices::I16),
        DType::I8 => data.as_slice().map(Indices::I8),
        DType::U64 => data.as_slice().map(Indices::U64),
        DType::U32 => data.as_slice().map(Indices::U32),
        DType::U16 => data.as_slice().map(Indices::U16),
        DType::U8 => data.as_slice().map(Indices::U8),
        _ => return Ok(OwnedTargets::Values(slice::<F>(data))),
    };
    indices
        .map(OwnedTargets::Indices)
        .map_err(|e| SegLossError::HostRead {
            what: "class-index targets",
            reason: format!("{e:?}"),
        })
}

/// The data as a slice of `F`: borrowed when its bytes are aligned for `F` (always, in
/// practice), copied otherwise.
fn slice<F: HostFloat>(data: &TensorData) -> Cow<'_, [F]> {
    match data.as_slice::<F>() {
        Ok(values) => Cow::Borrowed(values),
        Err(_) => Cow::Owned(data.iter::<F>().collect()),
    }
}
