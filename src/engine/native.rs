//! The host path on the CPU backends themselves (flex, ndarray): the kernel reads the logits and
//! targets where the backend keeps them (borrowed slices, no copy), writes the gradient once
//! into a fresh buffer, and the loss joins the autodiff graph as one custom operation whose
//! backward hands that buffer on, scaled in place by the incoming gradient.
//!
//! Why not the generic attach of `execution` (`value + (s - detach(s))`, `s = sum(x * g)`)
//! everywhere: through burn's tensor API it costs six full-size buffers per forward+backward
//! (a copy of the logits and of the targets to read them, `x * g`, and in the backward
//! burn-autodiff's `sum` builds `ones(shape) * grad` before the product's backward makes the
//! gradient). Each fresh full-size buffer costs page faults, more than the kernel itself
//! (benches/results/design_notes.md, "Fresh buffers"), because glibc hands large freed blocks
//! back to the kernel. Here a forward+backward makes one: the gradient the caller receives (plus the
//! targets' cast to the logits' dtype, made before, when their dtypes differ).
//!
//! The custom operation is burn-autodiff's public extension API (`Backward`, `OpsKind`), on the
//! concrete backend primitives that burn 0.22 exposes through `Tensor::try_into_primitive`.
//! Tensors it cannot take (other backends, non-contiguous views) go to the generic path.

// Without a CPU backend compiled in, nothing here has a backend to run on.
#![cfg_attr(not(any(feature = "flex", feature = "ndarray")), allow(dead_code))]

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::{Autodiff, Backend, DispatchKindConversion, DispatchTensor, TensorMetadata};
use burn::tensor::kind::Basic;
use burn::tensor::{BackendPrimitive, Bool, Int, Shape, Tensor, TensorData};

use crate::cpu::math::Real;
use crate::cpu::{gradient_buffer, parallel};
use crate::engine::kernel::run_checked;
use crate::engine::{Gradient, HostFloat, HostKernel, HostTargets, Indices, Labels, Targets};
use crate::error::SegLossError;

/// The contiguous values of a float tensor, borrowed from the backend's buffer.
pub(crate) enum Values<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
}

/// The values of a float tensor, borrowed mutably (the tensor owns its buffer alone).
pub(crate) enum ValuesMut<'a> {
    F32(&'a mut [f32]),
    F64(&'a mut [f64]),
}

/// A CPU backend whose float tensors the host kernels read and write in place.
pub(crate) trait NativeBackend: Backend {
    /// The tensor's values when they are contiguous f32 or f64 (`None` otherwise).
    fn values(tensor: &Self::FloatTensorPrimitive) -> Option<Values<'_>>;
    /// The values, when the tensor is contiguous and the only owner of its buffer.
    fn values_mut(tensor: &mut Self::FloatTensorPrimitive) -> Option<ValuesMut<'_>>;
    /// A tensor that takes `data`'s buffer (no copy).
    fn from_data(data: TensorData) -> Self::FloatTensorPrimitive;
    /// The values of a small float tensor, whatever its layout, as f64: all of them, for
    /// every float dtype the backend keeps (the backward checks the count).
    fn to_f64(tensor: &Self::FloatTensorPrimitive) -> Vec<f64>;
    /// The contiguous values of an integer tensor, in its own integer type (`None` when they
    /// are not contiguous).
    fn indices(tensor: &Self::IntTensorPrimitive) -> Option<Indices<'_>>;
    /// The contiguous values of a boolean tensor kept one byte per value (nonzero where true),
    /// as bytes (`None` for another store or a non-contiguous view).
    fn mask_bytes(tensor: &Self::BoolTensorPrimitive) -> Option<&[u8]>;
}

#[cfg(feature = "flex")]
impl NativeBackend for burn::backend::Flex {
    fn values(tensor: &Self::FloatTensorPrimitive) -> Option<Values<'_>> {
        match tensor.dtype() {
            burn::tensor::DType::F32 => tensor.as_slice::<f32>().map(Values::F32),
            burn::tensor::DType::F64 => tensor.as_slice::<f64>().map(Values::F64),
            _ => None,
        }
    }
    fn values_mut(tensor: &mut Self::FloatTensorPrimitive) -> Option<ValuesMut<'_>> {
        let offsets = tensor.layout().contiguous_offsets();
        let (start, end) = offsets.filter(|&(start, _)| start == 0)?;
        match tensor.dtype() {
            burn::tensor::DType::F32 => tensor
                .try_storage_mut::<f32>()
                .map(|s| ValuesMut::F32(&mut s[start..end])),
            burn::tensor::DType::F64 => tensor
                .try_storage_mut::<f64>()
                .map(|s| ValuesMut::F64(&mut s[start..end])),
            _ => None,
        }
    }
    fn from_data(data: TensorData) -> Self::FloatTensorPrimitive {
        burn::backend::flex::FlexTensor::from_data(data)
    }
    fn to_f64(tensor: &Self::FloatTensorPrimitive) -> Vec<f64> {
        // `iter` converts from any element type: every value comes back, whatever the dtype.
        tensor.to_contiguous().into_data().iter::<f64>().collect()
    }
    fn indices(tensor: &Self::IntTensorPrimitive) -> Option<Indices<'_>> {
        use burn::tensor::DType;
        match tensor.dtype() {
            DType::I64 => tensor.as_slice().map(Indices::I64),
            DType::I32 => tensor.as_slice().map(Indices::I32),
            DType::I16 => tensor.as_slice().map(Indices::I16),
            DType::I8 => tensor.as_slice().map(Indices::I8),
            DType::U64 => tensor.as_slice().map(Indices::U64),
            DType::U32 => tensor.as_slice().map(Indices::U32),
            DType::U16 => tensor.as_slice().map(Indices::U16),
            DType::U8 => tensor.as_slice().map(Indices::U8),
            _ => None,
        }
    }
    fn mask_bytes(tensor: &Self::BoolTensorPrimitive) -> Option<&[u8]> {
        use burn::tensor::{BoolStore, DType};
        match tensor.dtype() {
            DType::Bool(BoolStore::Native | BoolStore::U8) => {
                let (start, end) = tensor.layout().contiguous_offsets()?;
                Some(&tensor.bytes()[start..end])
            }
            _ => None,
        }
    }
}

#[cfg(feature = "ndarray")]
#[allow(deprecated)] // burn-ndarray is deprecated upstream; the crate still supports it.
impl NativeBackend for burn::backend::NdArray {
    fn values(tensor: &Self::FloatTensorPrimitive) -> Option<Values<'_>> {
        use burn::backend::ndarray::NdArrayTensor;
        match tensor {
            NdArrayTensor::F32(s) => s.view().to_slice().map(Values::F32),
            NdArrayTensor::F64(s) => s.view().to_slice().map(Values::F64),
            _ => None,
        }
    }
    fn values_mut(tensor: &mut Self::FloatTensorPrimitive) -> Option<ValuesMut<'_>> {
        use burn::backend::ndarray::NdArrayTensor;
        match tensor {
            NdArrayTensor::F32(s) if s.is_unique() => {
                s.ensure_owned().as_slice_mut().map(ValuesMut::F32)
            }
            NdArrayTensor::F64(s) if s.is_unique() => {
                s.ensure_owned().as_slice_mut().map(ValuesMut::F64)
            }
            _ => None,
        }
    }
    fn from_data(data: TensorData) -> Self::FloatTensorPrimitive {
        burn::backend::ndarray::NdArrayTensor::from_data(data)
    }
    fn to_f64(tensor: &Self::FloatTensorPrimitive) -> Vec<f64> {
        use burn::backend::ndarray::NdArrayTensor;
        match tensor {
            NdArrayTensor::F32(s) => s.view().iter().map(|&v| f64::from(v)).collect(),
            NdArrayTensor::F64(s) => s.view().iter().copied().collect(),
            // ndarray keeps float tensors as f32 or f64 only (its other variants hold integers
            // and booleans): never reached for a float primitive, and the backward checks the
            // count if it ever were.
            _ => Vec::new(),
        }
    }
    fn indices(tensor: &Self::IntTensorPrimitive) -> Option<Indices<'_>> {
        use burn::backend::ndarray::NdArrayTensor;
        match tensor {
            NdArrayTensor::I64(s) => s.view().to_slice().map(Indices::I64),
            NdArrayTensor::I32(s) => s.view().to_slice().map(Indices::I32),
            NdArrayTensor::I16(s) => s.view().to_slice().map(Indices::I16),
            NdArrayTensor::I8(s) => s.view().to_slice().map(Indices::I8),
            NdArrayTensor::U64(s) => s.view().to_slice().map(Indices::U64),
            NdArrayTensor::U32(s) => s.view().to_slice().map(Indices::U32),
            NdArrayTensor::U16(s) => s.view().to_slice().map(Indices::U16),
            NdArrayTensor::U8(s) => s.view().to_slice().map(Indices::U8),
            _ => None,
        }
    }
    fn mask_bytes(tensor: &Self::BoolTensorPrimitive) -> Option<&[u8]> {
        use burn::backend::ndarray::NdArrayTensor;
        match tensor {
            // A `bool` is one byte, 0 or 1.
            NdArrayTensor::Bool(s) => s.view().to_slice().map(bytemuck::cast_slice),
            _ => None,
        }
    }
}

/// A boolean tensor's buffer on a CPU backend, held so that its bytes can be borrowed.
pub(crate) enum NativeMask {
    #[cfg(feature = "flex")]
    Flex(burn::backend::flex::FlexTensor),
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    NdArray(burn::backend::ndarray::NdArrayTensor),
}

impl NativeMask {
    /// The mask's buffer when it lives on flex or ndarray (with or without autodiff, which
    /// keeps the inner backend's boolean tensors as they are) and its bytes can be borrowed.
    /// Holding the buffer costs nothing (a shared reference), whoever else holds the tensor.
    pub(crate) fn of<const D: usize>(mask: &Tensor<D, Bool>) -> Option<Self> {
        #[cfg(feature = "flex")]
        if let Some(p) = inner_primitive::<burn::backend::Flex, Bool, D>(mask)
            .filter(|p| <burn::backend::Flex as NativeBackend>::mask_bytes(p).is_some())
        {
            return Some(NativeMask::Flex(p));
        }
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        if let Some(p) = inner_primitive::<burn::backend::NdArray, Bool, D>(mask)
            .filter(|p| <burn::backend::NdArray as NativeBackend>::mask_bytes(p).is_some())
        {
            return Some(NativeMask::NdArray(p));
        }
        let _ = mask;
        None
    }

    /// The mask's bytes, one per value, nonzero where true.
    pub(crate) fn bytes(&self) -> &[u8] {
        // `of` only holds buffers whose bytes it could borrow.
        match self {
            #[cfg(feature = "flex")]
            NativeMask::Flex(p) => {
                <burn::backend::Flex as NativeBackend>::mask_bytes(p).unwrap_or_default()
            }
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            NativeMask::NdArray(p) => {
                <burn::backend::NdArray as NativeBackend>::mask_bytes(p).unwrap_or_default()
            }
            #[cfg(not(any(feature = "flex", feature = "ndarray")))]
            _ => &[],
        }
    }
}

/// The primitive on `B` of an integer or boolean tensor, with or without autodiff (either
/// checkpointing strategy): autodiff keeps the inner backend's tensors of these kinds as they
/// are.
fn inner_primitive<B, K, const D: usize>(
    tensor: &Tensor<D, K>,
) -> Option<<K as BackendPrimitive<B>>::Primitive>
where
    B: Backend,
    K: Basic
        + BackendPrimitive<B>
        + BackendPrimitive<
            Autodiff<B, NoCheckpointing>,
            Primitive = <K as BackendPrimitive<B>>::Primitive,
        > + BackendPrimitive<
            Autodiff<B, BalancedCheckpointing>,
            Primitive = <K as BackendPrimitive<B>>::Primitive,
        >,
    DispatchTensor: Conversions<B>,
{
    if let Ok(p) = tensor.clone().try_into_primitive::<B>() {
        return Some(p);
    }
    if let Ok(p) = tensor
        .clone()
        .try_into_primitive::<Autodiff<B, NoCheckpointing>>()
    {
        return Some(p);
    }
    tensor
        .clone()
        .try_into_primitive::<Autodiff<B, BalancedCheckpointing>>()
        .ok()
}

/// Runs `kernel` on `logits` and `targets` natively when they live on a backend of this
/// crate's [`NativeBackend`]s and their values can be borrowed; `Ok(None)` sends the call to
/// the generic path. The result is one value per problem (`[N]`, or `[1]` for the batch).
pub(crate) fn native_loss<const D: usize>(
    logits: &Tensor<D>,
    targets: &HostTargets<D>,
    weights: Option<&Tensor<D>>,
    rows: usize,
    kernel: &dyn HostKernel,
) -> Result<Option<Tensor<1>>, SegLossError> {
    let inputs = (logits, targets, weights);
    #[cfg(feature = "flex")]
    if let Some(loss) = on_backend::<burn::backend::Flex, D>(inputs, rows, kernel)? {
        return Ok(Some(loss));
    }
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    if let Some(loss) = on_backend::<burn::backend::NdArray, D>(inputs, rows, kernel)? {
        return Ok(Some(loss));
    }
    let _ = (inputs, rows, kernel);
    Ok(None)
}

/// The conversions between burn's tensors and the primitives of `B`, with or without autodiff
/// (either checkpointing strategy).
trait Conversions<B: Backend>:
    DispatchKindConversion<B>
    + DispatchKindConversion<Autodiff<B, NoCheckpointing>>
    + DispatchKindConversion<Autodiff<B, BalancedCheckpointing>>
{
}

impl<B: Backend, T> Conversions<B> for T where
    T: DispatchKindConversion<B>
        + DispatchKindConversion<Autodiff<B, NoCheckpointing>>
        + DispatchKindConversion<Autodiff<B, BalancedCheckpointing>>
{
}

/// [`native_loss`] on backend `B`, with or without autodiff (either checkpointing strategy).
#[allow(clippy::type_complexity)]
fn on_backend<B: NativeBackend, const D: usize>(
    (logits, targets, weights): (&Tensor<D>, &HostTargets<D>, Option<&Tensor<D>>),
    rows: usize,
    kernel: &dyn HostKernel,
) -> Result<Option<Tensor<1>>, SegLossError>
where
    DispatchTensor: Conversions<B>,
{
    let Some(labels) = TargetPrimitive::<B>::of(targets) else {
        return Ok(None);
    };
    let weights = match weights {
        Some(w) => match float_primitive::<B, D>(w) {
            Some(w) => Some(w),
            None => return Ok(None),
        },
        None => None,
    };
    let y = (labels, weights);
    if let Ok(x) = logits.clone().try_into_primitive::<B>() {
        let Some((values, _)) = run::<B>(kernel, &x, &y, rows, false)? else {
            return Ok(None);
        };
        return Ok(Some(Tensor::from_primitive::<B>(values)));
    }
    if let Some(loss) = with_autodiff::<B, NoCheckpointing, D>(logits, &y, rows, kernel)? {
        return Ok(Some(loss));
    }
    with_autodiff::<B, BalancedCheckpointing, D>(logits, &y, rows, kernel)
}

/// The loss as a node of burn-autodiff's graph on `Autodiff<B, C>`, when `logits` live there.
fn with_autodiff<B, C, const D: usize>(
    logits: &Tensor<D>,
    y: &(TargetPrimitive<B>, Option<B::FloatTensorPrimitive>),
    rows: usize,
    kernel: &dyn HostKernel,
) -> Result<Option<Tensor<1>>, SegLossError>
where
    B: NativeBackend,
    C: CheckpointStrategy,
    DispatchTensor: DispatchKindConversion<Autodiff<B, C>>,
{
    let Ok(x) = logits.clone().try_into_primitive::<Autodiff<B, C>>() else {
        return Ok(None);
    };
    if B::values(x.primitive()).is_none() {
        return Ok(None);
    }
    // The kernel writes the gradient only when the graph will ask for it.
    let output = match HostGradient
        .prepare::<C>([x.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => match run::<B>(kernel, x.primitive(), y, rows, true)? {
            Some((values, Some(gradient))) => prep.finish(gradient, values),
            _ => return Ok(None),
        },
        OpsKind::UnTracked(prep) => match run::<B>(kernel, x.primitive(), y, rows, false)? {
            Some((values, _)) => prep.finish(values),
            None => return Ok(None),
        },
    };
    Ok(Some(Tensor::from_primitive::<Autodiff<B, C>>(output)))
}

/// The targets' backend primitive on `B` (targets take no gradient: under autodiff, the
/// inner backend's tensor).
enum TargetPrimitive<B: Backend> {
    Values(B::FloatTensorPrimitive),
    Indices(B::IntTensorPrimitive),
}

impl<B: NativeBackend> TargetPrimitive<B> {
    /// `None` when the targets do not live on `B`.
    fn of<const D: usize>(targets: &HostTargets<D>) -> Option<Self>
    where
        DispatchTensor: Conversions<B>,
    {
        match targets {
            HostTargets::Values(t) => float_primitive::<B, D>(t).map(Self::Values),
            HostTargets::Indices(t) => inner_primitive::<B, Int, D>(t).map(Self::Indices),
        }
    }
}

/// The primitive on `B` of a float tensor that takes no gradient here (targets, weights):
/// under autodiff, the inner backend's tensor. `None` when it does not live on `B`.
fn float_primitive<B: NativeBackend, const D: usize>(
    t: &Tensor<D>,
) -> Option<B::FloatTensorPrimitive>
where
    DispatchTensor: Conversions<B>,
{
    if let Ok(p) = t.clone().try_into_primitive::<B>() {
        return Some(p);
    }
    if let Ok(p) = t
        .clone()
        .try_into_primitive::<Autodiff<B, NoCheckpointing>>()
    {
        return Some(p.into_primitive());
    }
    t.clone()
        .try_into_primitive::<Autodiff<B, BalancedCheckpointing>>()
        .ok()
        .map(|p| p.into_primitive())
}

/// The kernel on borrowed values: the values per problem as a tensor and, when `grad`, the
/// gradient as a tensor shaped like `x`. `None` when either tensor cannot be borrowed.
#[allow(clippy::type_complexity)]
fn run<B: NativeBackend>(
    kernel: &dyn HostKernel,
    x: &B::FloatTensorPrimitive,
    (y, w): &(TargetPrimitive<B>, Option<B::FloatTensorPrimitive>),
    rows: usize,
    grad: bool,
) -> Result<Option<(B::FloatTensorPrimitive, Option<B::FloatTensorPrimitive>)>, SegLossError> {
    let shape = TensorMetadata::shape(x);
    let weights = match w {
        Some(w) => match B::values(w) {
            Some(values) => Some(values),
            None => return Ok(None),
        },
        None => None,
    };
    let labels = match y {
        TargetPrimitive::Indices(t) => match B::indices(t) {
            Some(indices) => BorrowedLabels::Indices(indices),
            None => return Ok(None),
        },
        TargetPrimitive::Values(t) => match B::values(t) {
            Some(values) => BorrowedLabels::Values(values),
            None => return Ok(None),
        },
    };
    let inputs = (labels, weights);
    let typed_run = match B::values(x) {
        Some(Values::F32(x)) => typed(kernel, x, &inputs, rows, grad, shape)?,
        Some(Values::F64(x)) => typed(kernel, x, &inputs, rows, grad, shape)?,
        None => None,
    };
    let Some((values, gradient)) = typed_run else {
        return Ok(None);
    };
    Ok(Some((B::from_data(values), gradient.map(B::from_data))))
}

/// The labels of a call as borrowed from the backend, before their float type is matched
/// with the logits'.
enum BorrowedLabels<'a> {
    Values(Values<'a>),
    Indices(Indices<'a>),
}

/// The float types of [`Values`].
trait OfValues: HostFloat {
    /// The slice of `values` when it holds this type.
    fn of<'a>(values: &Values<'a>) -> Option<&'a [Self]>;
}

impl OfValues for f32 {
    fn of<'a>(values: &Values<'a>) -> Option<&'a [f32]> {
        match values {
            Values::F32(v) => Some(v),
            Values::F64(_) => None,
        }
    }
}

impl OfValues for f64 {
    fn of<'a>(values: &Values<'a>) -> Option<&'a [f64]> {
        match values {
            Values::F64(v) => Some(v),
            Values::F32(_) => None,
        }
    }
}

/// [`run`] in the element type `F` of the logits `x`: `None` when float labels or the weights
/// hold another type (the generic path converts them). The gradient buffer comes zeroed from
/// the allocator (`calloc`: fresh pages are zero already, reused memory is cleared), on huge
/// pages when large ([`gradient_buffer`]).
#[allow(clippy::type_complexity)]
fn typed<F: OfValues>(
    kernel: &dyn HostKernel,
    x: &[F],
    (labels, weights): &(BorrowedLabels<'_>, Option<Values<'_>>),
    rows: usize,
    grad: bool,
    shape: Shape,
) -> Result<Option<(TensorData, Option<TensorData>)>, SegLossError> {
    let labels = match labels {
        BorrowedLabels::Values(values) => match F::of(values) {
            Some(values) => Labels::Values(values),
            None => return Ok(None),
        },
        BorrowedLabels::Indices(indices) => Labels::Indices(*indices),
    };
    let weights = match weights {
        Some(w) => match F::of(w) {
            Some(w) => Some(w),
            None => return Ok(None),
        },
        None => None,
    };
    let y = Targets { labels, weights };
    let mut gradient = grad.then(|| gradient_buffer::zeroed(x.len()));
    let values = run_checked(
        kernel,
        x,
        y,
        rows,
        gradient.as_deref_mut().map(Gradient::new),
    )?;
    let problems = values.len();
    let values: Vec<F> = values.into_iter().map(F::from_f64).collect();
    Ok(Some((
        TensorData::new(values, [problems]),
        gradient.map(|g| TensorData::new(g, shape)),
    )))
}

/// The backward of a host-kernel loss: its state is `g = d value_problem / d x` (shaped like
/// `x`, problems along the first axis in equal rows), and the gradient with respect to `x` is
/// `g` with each problem's rows scaled by the incoming gradient of that problem's value.
#[derive(Debug)]
struct HostGradient;

impl<B: NativeBackend> Backward<B, 1> for HostGradient {
    type State = B::FloatTensorPrimitive;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let gradient = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |incoming| {
            let factors = B::to_f64(&incoming);
            // One factor per problem, and the problems split the gradient into equal parts. A
            // real check: a missing factor would pass the gradient on unscaled, silently.
            let problems = TensorMetadata::shape(&incoming).num_elements();
            let elements = TensorMetadata::shape(&gradient).num_elements();
            assert!(
                factors.len() == problems && problems > 0 && elements % problems == 0,
                "host gradient: {} factors for {problems} problems of {elements} elements",
                factors.len()
            );
            scale_problems::<B>(gradient, &factors)
        });
    }
}

/// `g` with problem `k`'s equal share of rows multiplied by `factors[k]`: in place (the state
/// is the buffer's only owner), and not at all when every factor is 1 (a plain `sum`).
fn scale_problems<B: NativeBackend>(
    mut g: B::FloatTensorPrimitive,
    factors: &[f64],
) -> B::FloatTensorPrimitive {
    if factors.iter().all(|&f| f == 1.0) {
        return g;
    }
    match B::values_mut(&mut g) {
        Some(ValuesMut::F32(values)) => scale(values, factors),
        Some(ValuesMut::F64(values)) => scale(values, factors),
        None => {
            // Shared or strided (not produced by this module): scale a contiguous copy.
            let shape = TensorMetadata::shape(&g);
            let mut copy = B::to_f64(&g);
            scale(&mut copy, factors);
            let dtype = TensorMetadata::dtype(&g);
            return B::from_data(TensorData::new(copy, shape).convert_dtype(dtype));
        }
    }
    g
}

/// Multiplies each of `factors.len()` equal consecutive parts of `values` by its factor, in
/// parallel.
fn scale<F: Real>(values: &mut [F], factors: &[f64]) {
    let problems = factors.len().max(1);
    let chunks = parallel::chunks(problems, values.len() / problems);
    parallel::map_mut(&chunks, values, |c, part| {
        let f = F::from_f64(factors[c.row]);
        for v in part {
            *v = *v * f;
        }
    });
}

#[cfg(all(test, feature = "flex", feature = "ndarray"))]
pub(crate) mod tests {
    use burn::tensor::{DType, Device, Tensor, TensorData};

    /// flex and ndarray, each plain, with autodiff, and with autodiff and gradient
    /// checkpointing: every combination the in-place operation is written for.
    pub(crate) fn devices() -> Vec<(String, Device)> {
        #[allow(deprecated)] // burn-ndarray is deprecated upstream; the crate still supports it.
        let backends = [("flex", Device::flex()), ("ndarray", Device::ndarray())];
        backends
            .into_iter()
            .flat_map(|(name, device)| {
                [
                    (name.to_string(), device.clone()),
                    (format!("{name} autodiff"), device.clone().autodiff()),
                    (
                        format!("{name} checkpointing"),
                        device.autodiff().gradient_checkpointing(),
                    ),
                ]
            })
            .collect()
    }

    /// The backward's factors: every value of the incoming gradient, whatever its layout (a
    /// strided view) and float dtype, so that none is missing when the problems are scaled.
    #[test]
    fn to_f64_returns_every_value() {
        use super::NativeBackend;
        use burn::backend::Flex;
        for dtype in [DType::F32, DType::F64, DType::F16] {
            let data = TensorData::new(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]);
            let t = Tensor::<2>::from_data(data.convert_dtype(dtype), (&Device::flex(), dtype));
            let p = t.transpose().try_into_primitive::<Flex>().unwrap();
            assert_eq!(
                Flex::to_f64(&p),
                [1.0, 4.0, 2.0, 5.0, 3.0, 6.0],
                "{dtype:?}"
            );
        }
    }

    /// The surface metrics read masks in place: a silent fallback to a read would copy every
    /// mask (and only this test would notice). The tensor is shared, as a caller's clone is.
    #[test]
    fn masks_are_borrowed_on_every_cpu_backend_combination() {
        use super::NativeMask;
        use burn::tensor::Bool;
        let values = vec![true, false, false, true, true, false];
        for (name, device) in devices() {
            let mask =
                Tensor::<2, Bool>::from_data(TensorData::new(values.clone(), [2, 3]), &device);
            let kept = mask.clone();
            let native = NativeMask::of(&mask).unwrap_or_else(|| panic!("{name}: not borrowed"));
            assert_eq!(native.bytes(), [1, 0, 0, 1, 1, 0], "{name}");
            // A non-contiguous view is not borrowed (its bytes are not the mask's order).
            let transposed = kept.transpose();
            assert!(
                NativeMask::of(&transposed).is_none(),
                "{name}: transposed view borrowed"
            );
        }
    }
}
