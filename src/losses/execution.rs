//! The choice between the device path (burn tensor operations) and the host path (the fused
//! kernels of `crate::kernels`), and how a host-computed gradient joins the autodiff graph.
//!
//! The host path runs a kernel that returns each problem's value and `g = d value / d x`. On
//! flex and ndarray it runs on the backends' own buffers and joins the graph as a custom
//! autodiff operation (`losses::native`). Elsewhere (a forced `Execution::Host` on another
//! backend, or a non-contiguous view) it reads the logits and targets once, uploads `g` once,
//! and returns
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

use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::SegLossError;
use crate::check;
use crate::host::{read, upload};
use crate::kernels::Gradient;
use crate::kernels::math::Real;
use crate::losses::cross_entropy::CrossEntropyKernel;
use crate::losses::focal::FocalKernel;
use crate::losses::lovasz::LovaszKernel;
use crate::losses::native::native_loss;
use crate::losses::overlap::OverlapKernel;
use crate::losses::{row_sums, rows};
use crate::{Execution, Reduction};

/// A loss as the host path runs it: values per problem from slices and, when `grad` is given,
/// the gradient of each problem's value with respect to `x` written into it (scaled, or
/// added to what is there: see [`Gradient`]).
pub(crate) trait HostKernel {
    /// `true` when the loss has one problem per image (`[N]` values), `false` for one
    /// problem over the whole batch (`[1]`).
    fn per_image(&self) -> bool;
    fn run<F: Real>(
        &self,
        x: &[F],
        y: &[F],
        rows: usize,
        grad: Option<Gradient<'_, F>>,
    ) -> Result<Vec<f64>, SegLossError>;
}

/// How a binary loss runs, as its body decides: on the host (everything [`host_loss`] needs,
/// kept apart so that [`compound`](crate::losses::compound) can run several host terms with
/// one shared gradient buffer), or already computed with burn operations.
#[allow(clippy::large_enum_variant)] // made once per call and consumed at once: no boxing.
pub(crate) enum Plan<const D: usize> {
    Host {
        logits: Tensor<D>,
        targets: Tensor<D>,
        reduction: Reduction,
        kernel: AnyKernel,
    },
    Computed(Tensor<1>),
}

impl<const D: usize> Plan<D> {
    /// The host plan of `kernel`.
    pub fn host(
        logits: Tensor<D>,
        targets: Tensor<D>,
        reduction: Reduction,
        kernel: impl Into<AnyKernel>,
    ) -> Self {
        Plan::Host {
            logits,
            targets,
            reduction,
            kernel: kernel.into(),
        }
    }

    /// Runs the plan.
    pub fn run(self) -> Result<Tensor<1>, SegLossError> {
        match self {
            Plan::Host {
                logits,
                targets,
                reduction,
                kernel,
            } => host_loss(logits, targets, reduction, &kernel),
            Plan::Computed(loss) => Ok(loss),
        }
    }
}

/// The host kernel of any binary loss.
pub(crate) enum AnyKernel {
    CrossEntropy(CrossEntropyKernel),
    Overlap(OverlapKernel),
    Focal(FocalKernel),
    Lovasz(LovaszKernel),
}

impl HostKernel for AnyKernel {
    fn per_image(&self) -> bool {
        match self {
            AnyKernel::CrossEntropy(k) => k.per_image(),
            AnyKernel::Overlap(k) => k.per_image(),
            AnyKernel::Focal(k) => k.per_image(),
            AnyKernel::Lovasz(k) => k.per_image(),
        }
    }
    fn run<F: Real>(
        &self,
        x: &[F],
        y: &[F],
        rows: usize,
        grad: Option<Gradient<'_, F>>,
    ) -> Result<Vec<f64>, SegLossError> {
        match self {
            AnyKernel::CrossEntropy(k) => k.run(x, y, rows, grad),
            AnyKernel::Overlap(k) => k.run(x, y, rows, grad),
            AnyKernel::Focal(k) => k.run(x, y, rows, grad),
            AnyKernel::Lovasz(k) => k.run(x, y, rows, grad),
        }
    }
}

impl From<CrossEntropyKernel> for AnyKernel {
    fn from(kernel: CrossEntropyKernel) -> Self {
        AnyKernel::CrossEntropy(kernel)
    }
}

impl From<OverlapKernel> for AnyKernel {
    fn from(kernel: OverlapKernel) -> Self {
        AnyKernel::Overlap(kernel)
    }
}

impl From<FocalKernel> for AnyKernel {
    fn from(kernel: FocalKernel) -> Self {
        AnyKernel::Focal(kernel)
    }
}

impl From<LovaszKernel> for AnyKernel {
    fn from(kernel: LovaszKernel) -> Self {
        AnyKernel::Lovasz(kernel)
    }
}

/// Whether this call runs on the host: `Host`, or `Auto` on a CPU backend with f32/f64 input
/// and targets that take no gradient. Errors where `Host` cannot apply.
pub(crate) fn runs_on_host<const D: usize>(
    execution: Execution,
    logits: &Tensor<D>,
    targets: &Tensor<D>,
) -> Result<bool, SegLossError> {
    let supported_dtype = matches!(logits.dtype(), DType::F32 | DType::F64);
    match execution {
        Execution::Device => Ok(false),
        Execution::Auto => Ok(supported_dtype && !targets.is_tracked() && is_cpu(&logits.device())),
        Execution::Host if !supported_dtype => Err(SegLossError::InvalidOption {
            name: "execution",
            value: "Execution::Host".into(),
            allowed: "Execution::Host takes f32 or f64 inputs; use Auto or Device",
        }),
        Execution::Host if targets.is_tracked() => Err(SegLossError::InvalidOption {
            name: "execution",
            value: "Execution::Host".into(),
            allowed: "Execution::Host gives targets no gradient; use Auto or Device for \
                      targets that require one",
        }),
        Execution::Host => Ok(true),
    }
}

/// flex and ndarray: the backends whose tensors already live in host memory.
fn is_cpu(device: &Device) -> bool {
    let device = device.clone().without_autodiff();
    #[cfg(feature = "flex")]
    if device == Device::flex() {
        return true;
    }
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)] // burn-ndarray is deprecated upstream; the crate still supports it.
    if device == Device::ndarray() {
        return true;
    }
    let _ = device;
    false
}

/// Runs `kernel` on the host and returns the loss, reduced by `reduction` when there is one
/// problem per image. `targets` must already have the logits' dtype (`check::binary_pair`).
pub(crate) fn host_loss<const D: usize>(
    logits: Tensor<D>,
    targets: Tensor<D>,
    reduction: Reduction,
    kernel: &impl HostKernel,
) -> Result<Tensor<1>, SegLossError> {
    let (n, _) = check::batch_shape(&logits, "logits")?;
    if let Some(loss) = native_loss(&logits, &targets, n, kernel)? {
        // Reduced over images; with one problem for the whole batch ([1]) any reduction is
        // the value itself.
        return Ok(reduction.apply(loss));
    }
    let (device, dtype) = (logits.device(), logits.dtype());
    let tracked = logits.is_tracked();
    let x = read(logits.clone());
    let y = read(targets);
    let (values, grad) = match dtype {
        DType::F32 => run_typed::<f32>(kernel, x, &y, n, tracked)?,
        DType::F64 => run_typed::<f64>(kernel, x, &y, n, tracked)?,
        _ => {
            return Err(SegLossError::InvalidOption {
                name: "execution",
                value: format!("the host path with {dtype:?} inputs"),
                allowed: "the host path takes f32 or f64 inputs",
            });
        }
    };
    drop(y);
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
/// the gradient as tensor data.
fn run_typed<F: Real>(
    kernel: &impl HostKernel,
    x: TensorData,
    y: &TensorData,
    rows: usize,
    tracked: bool,
) -> Result<(Vec<f64>, Option<TensorData>), SegLossError> {
    let (xs, ys) = (slice::<F>(&x), slice::<F>(y));
    let mut grad = tracked.then(|| vec![F::ZERO; xs.len()]);
    let values = kernel.run(&xs, &ys, rows, grad.as_deref_mut().map(Gradient::new))?;
    let len = xs.len() / rows;
    Ok((values, grad.map(|g| TensorData::new(g, [rows, len]))))
}

/// The data as a slice of `F`: borrowed when its bytes are aligned for `F` (always, in
/// practice), copied otherwise.
fn slice<F: Real>(data: &TensorData) -> Cow<'_, [F]> {
    match data.as_slice::<F>() {
        Ok(values) => Cow::Borrowed(values),
        Err(_) => Cow::Owned(data.iter::<F>().collect()),
    }
}
