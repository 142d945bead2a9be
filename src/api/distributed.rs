//! Batch statistics shared across data-parallel workers, so that a batch-aggregated loss
//! ([`Aggregation::Batch`](crate::Aggregation), nnU-Net's `batch_dice`) stays the loss of the
//! global batch under data-parallel training instead of becoming a per-shard loss.
//!
//! Each worker sees its shard of the batch. A batch Dice computed per shard is a different
//! objective, whose value and gradient change with the number of workers. With
//! [`SharedStatistics`], every worker sums its statistics (intersection, prediction and
//! target volumes: a `[3, C]` tensor) with the other workers' through a [`StatsReducer`],
//! once per loss term and step, in forward only, then scores the global sums:
//!
//! - **value**: every worker computes the loss of the global batch, exactly;
//! - **gradient**: the global sums enter as `S_local + stop_grad(S_global - S_local)`, so a
//!   worker's gradient is `dL/dS_global * dS_local/dx`: exactly the global loss's gradient
//!   with respect to that worker's logits, with no collective in backward. Summed over
//!   workers (burn-train's DDP with `ReduceOperation::Sum`) the parameter gradients are those
//!   of the global loss; with `ReduceOperation::Mean` burn-train divides by the number of
//!   workers `W`, so [`GradientReduction::Mean`] multiplies each worker's gradient by `W`
//!   (the value is unchanged) to compensate. This is the factor nnU-Net's `AllGatherGrad` and
//!   many `torch.distributed.nn.all_reduce` uses get wrong.
//!
//! Every worker must call the loss in the same order with the same options and class count
//! (the options decide which terms share statistics, and the statistics' shape depends on the
//! class count only, not on the shard size), as any collective requires.
//! Every loss takes the option, as a module (`XLoss::with_shared`, a field of the model) or a
//! call ([`Loss::compute_shared`], [`MulticlassLoss::compute_shared`], [`compound_shared`],
//! [`multiclass_compound_shared`]); the losses with batch statistics (soft Dice, soft Jaccard,
//! Tversky, multiclass overlap and generalized Dice with `Aggregation::Batch`) then score the
//! global batch. Their statistics are computed with burn operations on the device (the fused
//! host kernels compute theirs internally). Losses without batch statistics (per-image
//! aggregation, cross-entropy, focal, the boundary losses, Lovász per image) are per-image or
//! per-pixel already and are computed as without the option. Lovász with
//! `Aggregation::Batch` sorts the whole batch's errors, which cannot be shared as a few sums:
//! it stays a per-shard loss.
//!
//! # When a worker fails
//! A worker that left the collective would leave the others waiting in it for ever. So a
//! `*_shared` call checks everything of its own first (options, shapes, devices, the targets
//! it reads) and runs every term that needs no sharing, then takes part in each of the call's
//! collectives, in the order of its terms. A worker whose checks failed still takes part, with
//! zeros of the agreed shape (in the dtype the loss computes in, on its logits' device), and then returns its
//! error; the others go on with the sums of the workers that succeeded. The agreed shape is
//! `[3, 1]` for a binary loss and `[3, C]` for a multiclass one (`[3, C - 1]` for generalized
//! Dice without the background), `C` read from the logits' channel axis, so a failing worker
//! knows it as long as its logits have the right number of channels. A worker whose logits
//! have no channel at all (`C = 0`) cannot know it and takes part in no collective, and a
//! worker with another `C` than the others sends a tensor of another shape: what the other
//! workers then see is up to the transport (a [`StatsReducer`] of your own can compare the
//! shapes and fail on every worker; NCCL does not check them). A reducer that returns an error
//! ends the call at once (the transport has failed); one that returns sums of another shape or
//! on another device gives a [`ShapeMismatch`](SegLossError::ShapeMismatch) or a
//! [`DeviceMismatch`](SegLossError::DeviceMismatch) once the remaining collectives are done.
//!
//! [`Loss::compute_shared`]: crate::losses::Loss::compute_shared
//! [`MulticlassLoss::compute_shared`]: crate::losses::MulticlassLoss::compute_shared
//! [`compound_shared`]: crate::losses::compound_shared
//! [`multiclass_compound_shared`]: crate::losses::multiclass_compound_shared

use std::fmt::Debug;
use std::sync::Arc;

use burn::backend::{DeviceOps, DispatchDeviceId};
use burn::config::Config;
use burn::tensor::distributed::{ReduceOperation, all_reduce};
use burn::tensor::{DType, Device, Tensor};

use crate::check;
use crate::engine::Plan;
use crate::error::SegLossError;
use crate::loss::description::LossDescription;

/// Sums a small statistics tensor `[K, C]` across the data-parallel workers.
///
/// Implement it for your own transport (several nodes, say); [`SingleWorker`] and
/// [`DeviceAllReduce`] are the two this crate ships.
pub trait StatsReducer: Debug + Send + Sync {
    /// The element-wise sum of `statistics` (detached, on the worker's device) over all
    /// workers, on the same device. Every worker calls it with the same shape, in the same
    /// order, including a worker whose own inputs failed their checks (with zeros: see the
    /// [module docs](self)).
    ///
    /// # Errors
    /// Whatever the transport reports. The call that gets an error returns it at once,
    /// without its remaining collectives: an error on one worker only leaves the others
    /// waiting, so check what can be checked before communicating, on every worker alike.
    fn sum(&self, statistics: Tensor<2>) -> Result<Tensor<2>, SegLossError>;

    /// The number of workers `W` (for [`GradientReduction::Mean`]).
    fn workers(&self) -> usize;
}

/// One worker: the sum is the statistics themselves (the losses are then exactly as without
/// sharing).
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleWorker;

impl StatsReducer for SingleWorker {
    fn sum(&self, statistics: Tensor<2>) -> Result<Tensor<2>, SegLossError> {
        Ok(statistics)
    }

    fn workers(&self) -> usize {
        1
    }
}

/// burn's collective `all_reduce` (sum) over `devices`, the devices of a burn-train
/// `ExecutionStrategy::ddp` (which starts the communication server these need; otherwise start
/// one with `burn::tensor::distributed::DistributedContext::init`).
///
/// burn 0.22.1 runs collectives on CUDA devices (NCCL) and on remote devices only, and panics
/// when one is asked of any other backend: [`DeviceAllReduce::new`] turns those away with
/// [`SegLossError::Unsupported`], and [`DeviceAllReduce::supports`] asks first. On flex,
/// ndarray and wgpu, workers in one process can share their statistics through a
/// [`StatsReducer`] of your own (a barrier and a shared sum).
#[derive(Clone, Debug)]
pub struct DeviceAllReduce {
    devices: Vec<Device>,
}

/// The two ways burn 0.22.1 runs a collective.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    /// A CUDA device: NCCL, through cubecl.
    Nccl,
    /// A device of burn's remote backend: its server's collective.
    Remote,
}

impl Transport {
    /// How burn runs a collective on `device`, `None` where it cannot (it would panic).
    ///
    /// burn decides with its backend catalog (`burn-backend-extension`: only the cubecl and
    /// remote backends are marked `distributed`), and cubecl then refuses every runtime but
    /// CUDA (`ComputeServer::all_reduce` has no other implementation). Both are read from the
    /// device's id, which works in every build whatever burn features are on (an enum variant
    /// of a backend this crate does not enable could not be named): the dispatch backend is
    /// the id's high byte (`DispatchDeviceId`), and a cubecl device stamps its runtime in
    /// bits 5 to 7 of the low byte, CUDA being 0 (`cubecl::RuntimeId`, "fixed per runtime so
    /// that a stored id means the same thing in every build").
    fn get(device: &Device) -> Option<Transport> {
        const DISPATCH_SHIFT: u16 = 8;
        const RUNTIME_SHIFT: u16 = 5;
        const RUNTIME_MASK: u16 = 0x7;
        const CUDA: u16 = 0;
        let type_id = device.clone().without_autodiff().as_dispatch().id().type_id;
        let backend = type_id >> DISPATCH_SHIFT;
        if backend == DispatchDeviceId::Remote as u16 {
            Some(Transport::Remote)
        } else if backend == DispatchDeviceId::Cube as u16
            && (type_id >> RUNTIME_SHIFT) & RUNTIME_MASK == CUDA
        {
            Some(Transport::Nccl)
        } else {
            None
        }
    }
}

impl DeviceAllReduce {
    /// The reducer of the workers on `devices` (at least one, all where burn runs
    /// collectives: [`DeviceAllReduce::supports`]).
    ///
    /// # Errors
    /// [`SegLossError::InvalidOption`] for an empty list; [`SegLossError::Unsupported`] for
    /// a device without collectives (flex, ndarray, wgpu, the CPU runtime), or for devices of
    /// two transports (CUDA and remote).
    pub fn new(devices: Vec<Device>) -> Result<Self, SegLossError> {
        let Some(first) = devices.first() else {
            return Err(SegLossError::InvalidOption {
                name: "devices",
                value: "[]".into(),
                allowed: "at least one device",
            });
        };
        let transport = Transport::get(first);
        for device in &devices {
            match Transport::get(device) {
                None => {
                    return Err(SegLossError::Unsupported {
                        what: "DeviceAllReduce",
                        reason: format!(
                            "burn 0.22.1 runs collectives on CUDA and remote devices only, \
                             not on {device:?}; share the statistics through a StatsReducer \
                             of your own"
                        ),
                    });
                }
                t if t != transport => {
                    return Err(SegLossError::Unsupported {
                        what: "DeviceAllReduce",
                        reason: format!(
                            "one collective over devices of two transports ({first:?} and \
                             {device:?})"
                        ),
                    });
                }
                _ => {}
            }
        }
        Ok(DeviceAllReduce { devices })
    }

    /// Whether burn 0.22.1 runs collectives on `device` (CUDA or remote; not flex, ndarray,
    /// wgpu or the CPU runtime). A CUDA device also needs the NCCL library at run time, which
    /// cubecl looks for when the device is first used.
    pub fn supports(device: &Device) -> bool {
        Transport::get(device).is_some()
    }
}

impl StatsReducer for DeviceAllReduce {
    fn sum(&self, statistics: Tensor<2>) -> Result<Tensor<2>, SegLossError> {
        let device = statistics.device().without_autodiff();
        if !self
            .devices
            .iter()
            .any(|d| d.clone().without_autodiff() == device)
        {
            return Err(SegLossError::DeviceMismatch {
                left_name: "the statistics",
                left: format!("{device:?}"),
                right_name: "the reducer's devices",
                right: format!("{:?}", self.devices),
            });
        }
        Ok(all_reduce(statistics, ReduceOperation::Sum, self.devices.clone()).resolve())
    }

    fn workers(&self) -> usize {
        self.devices.len()
    }
}

/// How the training loop combines the workers' gradients (burn-train's
/// `DistributedConfig::all_reduce_op`): the factor each worker's loss gradient gets.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum GradientReduction {
    /// Gradients summed over workers: factor 1.
    Sum,
    /// Gradients averaged over workers: factor `W`, so that the average is the global loss's
    /// gradient.
    Mean,
}

/// The reducer and the gradient reduction of a data-parallel run: what the `*_shared`
/// functions take.
#[derive(Clone, Debug)]
pub struct SharedStatistics {
    reducer: Arc<dyn StatsReducer>,
    gradient: GradientReduction,
}

impl SharedStatistics {
    /// Statistics summed by `reducer`; worker gradients combined by `gradient`.
    pub fn new(reducer: Arc<dyn StatsReducer>, gradient: GradientReduction) -> Self {
        SharedStatistics { reducer, gradient }
    }

    /// Runs the collectives of one `*_shared` call, after everything else of it that can
    /// fail: `local` is the call's plan, or the first error of its checks (the plan's
    /// `Exchange`s, in the order of its terms, are what is sent); `agreed` is the width
    /// `K` of each collective the call's options ask for (`[3, K]`, from the options and the
    /// class count alone, so that a worker whose checks failed knows them too; 0: none), and
    /// `zeros` the device and dtype of the statistics ([`statistics_kind`]).
    ///
    /// Every collective of `agreed` takes place, whatever failed: with the local statistics
    /// where all is well, with zeros once anything failed (this worker then returns its
    /// error). Only an error of the reducer itself ends the call at once.
    pub(crate) fn settle<const D: usize>(
        &self,
        local: Result<Plan<D>, SegLossError>,
        agreed: &[usize],
        zeros: &(Device, DType),
    ) -> Result<Plan<D>, SegLossError> {
        let agreed: Vec<usize> = agreed.iter().copied().filter(|&k| k > 0).collect();
        let mut local = local;
        let planned = local.is_ok();
        let mut terms = match &mut local {
            Ok(plan) => plan.exchanges_mut(),
            Err(_) => Vec::new(),
        };
        let widths: Vec<usize> = terms.iter().map(|t| t.local.dims()[1]).collect();
        let mut error = None;
        if planned && (widths != agreed || terms.iter().any(|t| t.local.dims()[0] != 3)) {
            // Statistics of another shape than the options agree on (a bug, not an input):
            // caught before anything is sent, and zeros of the agreed shape sent instead.
            error = Some(SegLossError::ShapeMismatch {
                left_name: "the widths of the local statistics",
                left: widths,
                right_name: "the widths the options agree on",
                right: agreed.clone(),
            });
        }
        let mut transport = None;
        for (i, &width) in agreed.iter().enumerate() {
            // Terms are empty when planning failed: zeros then.
            let term = if error.is_none() {
                terms.get_mut(i)
            } else {
                None
            };
            let sent = match &term {
                Some(term) => term.local.clone(),
                None => Tensor::zeros([3, width], (&zeros.0, zeros.1)),
            };
            let global = match self.reducer.sum(sent) {
                Ok(global) => global,
                Err(e) => {
                    transport = Some(e);
                    break;
                }
            };
            if let Some(term) = term {
                match checked(&term.local, global) {
                    Ok(global) => {
                        term.global = Some(global);
                        term.extra_gradient = self.extra_gradient();
                    }
                    Err(e) => error = Some(e),
                }
            }
        }
        drop(terms);
        // The first failure is the one reported: the call's own checks, then the reducer.
        match (local, error.or(transport)) {
            (Err(e), _) | (Ok(_), Some(e)) => Err(e),
            (Ok(plans), None) => Ok(plans),
        }
    }

    /// The extra multiple of the gradient that [`GradientReduction`] asks for (see
    /// `Exchange::extra_gradient`): none for `Sum`, `W - 1` for `Mean` over `W` workers.
    fn extra_gradient(&self) -> Option<f64> {
        match self.gradient {
            GradientReduction::Sum => None,
            GradientReduction::Mean => Some((self.reducer.workers() as f64 - 1.0).max(0.0)),
        }
    }
}

/// The loss `config` describes, with its batch statistics summed over the data-parallel
/// workers by `shared`: the body of every `*_shared` function and of a module's
/// `with_shared`. Everything that can fail is checked and computed first, then the
/// collectives run ([`SharedStatistics::settle`]), then the rest of the loss.
pub(crate) fn compute_shared<L: LossDescription, const D: usize>(
    config: &L,
    logits: Tensor<D>,
    targets: L::Targets<D>,
    shared: &SharedStatistics,
) -> Result<Tensor<1>, SegLossError> {
    // The class count of multiclass logits `[N, C, ...]`; 0 for rank < 2, whose call fails its
    // checks on every worker alike.
    let classes = logits.dims().get(1).copied().unwrap_or(0);
    let agreed = config.shared_widths(classes);
    let zeros = statistics_kind(&logits);
    let planned = config.plan(logits, targets, true);
    shared.settle(planned, &agreed, &zeros)?.run()
}

/// The reducer's sums `global` checked against the statistics `local` they were summed from:
/// the same shape and device (a reducer's mistake would otherwise surface as a burn panic in
/// the loss that uses them), and cast to the local dtype (a transport may hand the sums back
/// in another float dtype).
fn checked(local: &Tensor<2>, global: Tensor<2>) -> Result<Tensor<2>, SegLossError> {
    if global.dims() != local.dims() {
        return Err(SegLossError::ShapeMismatch {
            left_name: "the reduced statistics",
            left: global.dims().to_vec(),
            right_name: "the local statistics",
            right: local.dims().to_vec(),
        });
    }
    let (device, expected) = (global.device(), local.device());
    if device != expected {
        return Err(SegLossError::DeviceMismatch {
            left_name: "the reduced statistics",
            left: format!("{device:?}"),
            right_name: "the local statistics",
            right: format!("{expected:?}"),
        });
    }
    let dtype = local.dtype();
    Ok(if global.dtype() == dtype {
        global
    } else {
        global.cast(dtype)
    })
}

/// The device and dtype of the statistics a worker shares for `logits`: their device, and the
/// dtype the loss computes in (f32 for half-precision logits, [`check::compute_dtype`]), so
/// that a worker that sends zeros sends them as the others send their sums.
pub(crate) fn statistics_kind<const D: usize>(logits: &Tensor<D>) -> (Device, DType) {
    (logits.device(), check::compute_dtype(logits.dtype()))
}
