//! A loss call as its body decides to run it: on the host (a kernel and its inputs, kept
//! apart so that a compound loss can run several host terms with one shared gradient
//! buffer), or already computed with burn operations; and the choice between the two.

use burn::tensor::{DType, Device, Int, Tensor};

use crate::engine::HostKernel;
use crate::engine::surrogate::host_loss;
use crate::error::SegLossError;
use crate::options::Execution;
use crate::options::Reduction;

/// How a loss runs.
#[allow(clippy::large_enum_variant)] // made once per call and consumed at once: no boxing.
pub(crate) enum Plan<const D: usize> {
    Host(HostCall<D>),
    Computed(Tensor<1>),
    /// Computed with burn operations up to sums that the data-parallel workers add up.
    Exchange(Exchange),
    /// The weighted sum of several plans (a compound loss): `sum_t w_t l_t`.
    Sum(Vec<(f64, Plan<D>)>),
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
    /// `Some(e)`: the loss's gradient is multiplied by `1 + e`, its value unchanged (set by
    /// the sharing, which knows how the workers' gradients are combined).
    pub extra_gradient: Option<f64>,
    /// The rest of the loss, from `global - local`.
    rest: Box<dyn FnOnce(Tensor<2>) -> Tensor<1>>,
}

impl Exchange {
    /// The exchange of the sums `sums` (`R` tensors of one shape, `K` values each, one row
    /// each of `local`), and the loss `finish` of them: `finish` gets each sum plus the
    /// detached difference to the global sums (global in value, local in gradient).
    pub fn of_sums<const O: usize, const R: usize>(
        sums: [Tensor<O>; R],
        finish: impl FnOnce([Tensor<O>; R]) -> Tensor<1> + 'static,
    ) -> Self {
        let dims = sums[0].dims();
        let rows = sums.iter().map(|t| t.clone().reshape([1, -1])).collect();
        Exchange {
            local: Tensor::cat(rows, 0).detach(),
            global: None,
            extra_gradient: None,
            rest: Box::new(move |offset: Tensor<2>| {
                let mut row = 0;
                let sums = sums.map(|t| {
                    let delta: Tensor<O> = offset.clone().narrow(0, row, 1).reshape(dims);
                    row += 1;
                    t + delta
                });
                finish(sums)
            }),
        }
    }

    /// The loss from the exchanged sums (or from this worker's alone, before any exchange).
    pub fn finish(self) -> Tensor<1> {
        let offset = match self.global {
            Some(global) => global - self.local,
            None => self.local.zeros_like(),
        };
        let loss = (self.rest)(offset);
        match self.extra_gradient {
            None => loss,
            Some(extra) => {
                let detached = loss.clone().detach();
                loss.clone() + (loss - detached).mul_scalar(extra)
            }
        }
    }
}

/// A host kernel with its inputs and the reduction of its per-problem values.
pub(crate) struct HostCall<const D: usize> {
    pub logits: Tensor<D>,
    pub targets: HostTargets<D>,
    /// The pixel weights `[N, 1, ...]` in the logits' dtype, for a kernel that reads them.
    pub weights: Option<Tensor<D>>,
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
    /// The host plan of `kernel`, weighing pixels by `weights` (only for a kernel that
    /// [reads them](crate::engine::TypedKernel::reads_pixel_weights): [`HostCall::run`]
    /// refuses the others).
    pub fn host(
        logits: Tensor<D>,
        targets: impl Into<HostTargets<D>>,
        weights: Option<Tensor<D>>,
        reduction: Reduction,
        kernel: impl HostKernel + 'static,
    ) -> Self {
        Plan::Host(HostCall {
            logits,
            targets: targets.into(),
            weights,
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
            Plan::Sum(parts) => {
                let parts = parts
                    .into_iter()
                    .map(|(weight, plan)| Ok((weight, plan.run()?)))
                    .collect::<Result<_, SegLossError>>()?;
                weighted_sum(parts)
            }
        }
    }

    /// The exchanges this plan waits for, in the order of its terms.
    pub fn exchanges_mut(&mut self) -> Vec<&mut Exchange> {
        match self {
            Plan::Exchange(exchange) => vec![exchange],
            Plan::Sum(parts) => parts
                .iter_mut()
                .flat_map(|(_, plan)| plan.exchanges_mut())
                .collect(),
            Plan::Host(_) | Plan::Computed(_) => Vec::new(),
        }
    }
}

impl<const D: usize> HostCall<D> {
    /// Runs the kernel and reduces its values.
    pub fn run(self) -> Result<Tensor<1>, SegLossError> {
        if self.weights.is_some() && !self.kernel.reads_pixel_weights() {
            // A guard: losses plan such a kernel only without weights.
            return Err(SegLossError::InvalidOption {
                name: "pixel_weights",
                value: "weights for a host kernel that does not read them".into(),
                allowed: "no weights for this kernel (a loss that plans it with weights is a bug)",
            });
        }
        host_loss(
            self.logits,
            self.targets,
            self.weights,
            self.reduction,
            &*self.kernel,
        )
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

/// `sum_t w_t l_t` over the terms `(w_t, l_t)` (at least one), checking that every term has
/// the shape of the first.
///
/// The weights are applied here, after every term has been computed, and a weight of 1 costs
/// no operation: on a fusion backend a small `l_t * w_t` queued between two terms joins the
/// next term's first fused block and breaks its fusion (measured in
/// `benches/results/design_notes.md`, "Weights after the terms").
fn weighted_sum(parts: Vec<(f64, Tensor<1>)>) -> Result<Tensor<1>, SegLossError> {
    let weighted = |(weight, loss): (f64, Tensor<1>)| {
        if weight == 1.0 {
            loss
        } else {
            loss.mul_scalar(weight)
        }
    };
    let mut parts = parts.into_iter();
    let Some(first) = parts.next() else {
        return Err(SegLossError::InvalidOption {
            name: "terms",
            value: "[]".into(),
            allowed: "at least one term (with_term)",
        });
    };
    let mut total = weighted(first);
    for part in parts {
        let (left, right) = (total.dims(), part.1.dims());
        if left != right {
            return Err(SegLossError::ShapeMismatch {
                left_name: "the sum of the earlier terms",
                left: left.to_vec(),
                right_name: "the next term",
                right: right.to_vec(),
            });
        }
        total = total + weighted(part);
    }
    Ok(total)
}
