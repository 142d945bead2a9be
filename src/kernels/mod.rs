//! Host kernels: the CPU fast path of every loss (DESIGN.md, "Performance architecture").
//!
//! Each kernel is a pure function over slices (`&[f32]`, or `&[f64]` for exact checks) that
//! computes a loss's value per problem (image or batch) and, when asked, its gradient with
//! respect to the input, in one fused pass (two for the overlap losses: statistics, then
//! gradient), multi-threaded over chunks and images with inner loops the compiler vectorises.
//! burn's CPU backends run `exp`/`ln` scalar on one thread and allocate a full-size temporary
//! per operation; these kernels do neither. [`crate::losses`] decides when to use them and
//! attaches their gradient to the autodiff graph.

pub(crate) mod cross_entropy;
pub(crate) mod focal;
pub(crate) mod lanes;
pub(crate) mod lovasz;
pub(crate) mod math;
pub(crate) mod overlap;
pub(crate) mod parallel;

/// Where a kernel writes the gradient of each problem's value with respect to `x`, and how:
/// `out = scale * g`, or `out += scale * g` when `accumulate`. A lone loss writes `g` itself;
/// a term of a compound loss adds its weighted share into the buffer the terms share.
pub(crate) struct Gradient<'a, F> {
    pub out: &'a mut [F],
    pub scale: f64,
    pub accumulate: bool,
}

impl<'a, F> Gradient<'a, F> {
    /// `out = g`.
    pub fn new(out: &'a mut [F]) -> Self {
        Gradient {
            out,
            scale: 1.0,
            accumulate: false,
        }
    }
}
