//! The sum of several losses' plans: a compound loss, and the presets built from two losses.

use crate::engine::Plan;
use crate::error::SegLossError;
use crate::kernels;

/// The plan of `sum_t w_t plan_t`: the host terms merged (one pass over the data where their
/// kernels allow, see `kernels::compound`) and run here, the others left as they are (those
/// that wait for the other data-parallel workers' statistics among them), so that all that
/// can fail has failed before a data-parallel call's collectives. The host terms come last in
/// the sum.
pub(crate) fn sum_of_plans<const D: usize>(
    parts: Vec<(f64, Plan<D>)>,
) -> Result<Plan<D>, SegLossError> {
    let mut summed = Vec::new();
    let mut host = Vec::new();
    for (weight, plan) in parts {
        match plan {
            Plan::Host(call) => host.push((weight, call)),
            plan => summed.push((weight, plan)),
        }
    }
    for (weight, call) in kernels::compound::merge(host) {
        summed.push((weight, Plan::Computed(call.run()?)));
    }
    Ok(Plan::Sum(summed))
}
