//! The one description of a loss that every loss config gives: its option checks and its
//! computation as a [`Plan`] (burn operations on the device, a host kernel, or batch
//! statistics waiting for the other data-parallel workers). The public forms of a loss (its
//! free function, its module, its variant of the run-time choice, a compound term, the
//! data-parallel form) are all derived from this trait in `crate::api`, for binary and
//! multiclass losses alike; `docs/ARCHITECTURE.md` walks through adding a loss.

use burn::tensor::Tensor;

use crate::engine::Plan;
use crate::error::SegLossError;

/// What a loss config says about its loss.
pub(crate) trait LossDescription {
    /// What the logits are compared with: `Tensor<D>` for a binary loss,
    /// [`ClassTargets<D>`](crate::losses::ClassTargets) for a multiclass one.
    type Targets<const D: usize>: Clone;

    /// The checks of the options alone, made before the inputs are looked at (what a module's
    /// `init` reports, and what a data-parallel call checks before it takes part in the
    /// collectives).
    fn validate(&self) -> Result<(), SegLossError>;

    /// The loss of `logits` and `targets` as a plan: checked, and computed up to what the
    /// caller decides (running a host kernel, merging it with other host terms, or waiting for
    /// other workers' statistics). With `share`, a loss with batch statistics leaves them as
    /// an [`Exchange`](crate::engine::Exchange) (see [`LossDescription::shared_widths`]);
    /// every other loss ignores it.
    fn plan<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: Self::Targets<D>,
        share: bool,
    ) -> Result<Plan<D>, SegLossError>;

    /// The width `K` of each `[3, K]` sum this loss exchanges with the other data-parallel
    /// workers when planned with `share`, in order, for logits with `classes` channels:
    /// decided by the options and the class count alone, so that a worker whose inputs fail
    /// their checks still knows what to send. Empty (the default) for a loss without batch
    /// statistics.
    fn shared_widths(&self, _classes: usize) -> Vec<usize> {
        Vec::new()
    }
}

/// The loss `config` describes, computed: the body of every loss's free function.
pub(crate) fn compute<L: LossDescription, const D: usize>(
    config: &L,
    logits: Tensor<D>,
    targets: L::Targets<D>,
) -> Result<Tensor<1>, SegLossError> {
    config.plan(logits, targets, false)?.run()
}
