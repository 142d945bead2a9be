//! The host path, independent of any loss: the kernel trait, the plan of a loss call and the
//! choice between host and device, the custom autodiff operation that joins a host-computed
//! gradient to burn's graph on flex and ndarray, and the surrogate that does it elsewhere.
//!
//! A host kernel implements [`TypedKernel`] next to its kernel (in `crate::kernels`); a loss
//! returns `Plan::host(logits, targets, reduction, kernel)` when [`runs_on_host`] says so, and
//! the engine does the rest. Nothing here names a loss.

// Without a backend feature no node is ever made (the library still compiles, for users who
// bring their own backend feature of burn).
#[cfg_attr(
    not(any(feature = "flex", feature = "ndarray", feature = "cube")),
    allow(dead_code)
)]
pub(crate) mod autodiff_node;
pub(crate) mod host;
mod kernel;
mod native;
mod plan;
#[cfg_attr(
    not(any(feature = "flex", feature = "ndarray", feature = "cube")),
    allow(dead_code)
)]
pub(crate) mod softmax;
mod surrogate;
pub(crate) mod validate;

pub(crate) use kernel::{
    Gradient, HostFloat, HostKernel, IGNORED, Indices, Labels, Targets, TypedKernel,
};
pub(crate) use native::NativeMask;
#[cfg(all(test, feature = "flex", feature = "ndarray"))]
pub(crate) use native::{native_loss, tests as native_tests};
pub(crate) use plan::{Exchange, HostCall, HostTargets, Plan, runs_on_host};
