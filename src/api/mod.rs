//! The public assembly, derived from the losses below it: each loss as a burn `Module`, the
//! run-time choice of a loss, weighted sums of losses, and data-parallel sharing of batch
//! statistics. The public names are gathered in `crate::losses` (and `crate::distributed`).

pub(crate) mod catalog;
pub(crate) mod compound;
pub(crate) mod deep_supervision;
pub mod distributed;
pub(crate) mod modules;
