//! A loss call as its body decides to run it: on the host (a kernel and its inputs, kept
//! apart so that a compound loss can run several host terms with one shared gradient
//! buffer), or already computed with burn operations; and the choice between the two.

use burn::tensor::{DType, Device, Int, Tensor};

use crate::Reduction;
use crate::engine::HostKernel;
use crate::engine::surrogate::host_loss;
use crate::{Execution, SegLossError};

/// How a loss runs.
#[allow(clippy::large_enum_variant)] // made once per call and consumed at once: no boxing.
pub(crate) enum Plan<const D: usize> {
    Host(HostCall<D>),
    Computed(Tensor<1>),
    /// Computed with burn operations up to sums that the data-parallel workers add up.
    Exchange(Exchange),
}

/// A loss computed up to a few sums that the data-parallel workers add up (see
/// `crate::distributed`): its local sums, and the rest of the loss once the sums of every
/// worker are known. Splitting the loss there lets a call check all its inputs, and run all
/// its other terms, before it waits for the other workers, so that no failure can leave them
/// waiting.
pub(crate) struct Exchange {
    /// The local sums `[R, K]`, detached: what the workers add up.
    pub local: Tensor<2>,
    /// The sums of every worker, once exchanged; `None`: this worker's alone.
    pub global: Option<Tensor<2>>,
    /// The rest of the loss, from `global - local`.
    pub rest: Box<dyn FnOnce(Tensor<2>) -> Tensor<1>>,
}

impl Exchange {
    /// The loss from the exchanged sums (or from this worker's alone, before any exchange).
    pub fn finish(self) -> Tensor<1> {
        let offset = match self.global {
            Some(global) => global - self.local,
            None => self.local.zeros_like(),
        };
        (self.rest)(offset)
    }
}

/// A host kernel with its inputs and the reduction of its per-problem values.
pub(crate) struct HostCall<const D: usize> {
    pub logits: Tensor<D>,
    pub targets: HostTargets<D>,
    pub reduction: Reduction,
    pub kernel: Box<dyn HostKernel>,
}

/// The targets a host kernel reads: float values (binary, or per class), or class indices.
#[derive(Clone)]
pub(crate) enum HostTargets<const D: usize> {
    Values(Tensor<D>),
    Indices(Tensor<D, Int>),
}

impl<const D: usize> From<Tensor<D>> for HostTargets<D> {
    fn from(values: Tensor<D>) -> Self {
        HostTargets::Values(values)
    }
}

impl<const D: usize> From<Tensor<D, Int>> for HostTargets<D> {
    fn from(indices: Tensor<D, Int>) -> Self {
        HostTargets::Indices(indices)
    }
}

impl<const D: usize> Plan<D> {
    /// The host plan of `kernel`.
    pub fn host(
        logits: Tensor<D>,
        targets: impl Into<HostTargets<D>>,
        reduction: Reduction,
        kernel: impl HostKernel + 'static,
    ) -> Self {
        Plan::Host(HostCall {
            logits,
            targets: targets.into(),
            reduction,
            kernel: Box::new(kernel),
        })
    }

    /// Runs the plan.
    pub fn run(self) -> Result<Tensor<1>, SegLossError> {
        match self {
            Plan::Host(call) => call.run(),
            Plan::Computed(loss) => Ok(loss),
            Plan::Exchange(exchange) => Ok(exchange.finish()),
        }
    }

    /// The exchange this plan waits for, if any.
    pub fn exchange_mut(&mut self) -> Option<&mut Exchange> {
        match self {
            Plan::Exchange(exchange) => Some(exchange),
            _ => None,
        }
    }
}

impl<const D: usize> HostCall<D> {
    /// Runs the kernel and reduces its values.
    pub fn run(self) -> Result<Tensor<1>, SegLossError> {
        host_loss(self.logits, self.targets, self.reduction, &*self.kernel)
    }

    /// `true` when the result is one value per image (`[N]`): a per-image kernel with
    /// [`Reduction::None`].
    pub fn per_image_result(&self) -> bool {
        self.kernel.per_image() && self.reduction == Reduction::None
    }
}

/// Whether this call runs on the host: `Host`, or `Auto` on a CPU backend with f32/f64 input
/// and targets that take no gradient (`targets_tracked` false). Errors where `Host` cannot apply.
pub(crate) fn runs_on_host<const D: usize>(
    execution: Execution,
    logits: &Tensor<D>,
    targets_tracked: bool,
) -> Result<bool, SegLossError> {
    let supported_dtype = matches!(logits.dtype(), DType::F32 | DType::F64);
    match execution {
        Execution::Device => Ok(false),
        Execution::Auto => Ok(supported_dtype && !targets_tracked && is_cpu(&logits.device())),
        Execution::Host if !supported_dtype => Err(SegLossError::InvalidOption {
            name: "execution",
            value: "Execution::Host".into(),
            allowed: "Execution::Host takes f32 or f64 inputs; use Auto or Device",
        }),
        Execution::Host if targets_tracked => Err(SegLossError::InvalidOption {
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
