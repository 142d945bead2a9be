//! Host kernels: the CPU fast path of every loss.
//!
//! Each kernel is a pure function over slices (`&[f32]`, or `&[f64]` for exact checks) that
//! computes a loss's value per problem (image or batch) and, when asked, its gradient with
//! respect to the input, in one fused pass (two for the overlap losses: statistics, then
//! gradient), multi-threaded over chunks and images with inner loops the compiler vectorises.
//! burn's CPU backends run `exp`/`ln` scalar on one thread and allocate a full-size temporary
//! per operation; these kernels do neither. [`crate::losses`] decides when to use them and [`crate::engine`]
//! attaches their gradient to the autodiff graph.
//! Each kernel's file also holds its adapter to the engine ([`crate::engine::TypedKernel`]).

use crate::cpu::math::Real;
use crate::cpu::{lanes, parallel};
use crate::engine::Gradient;

pub(crate) mod cross_entropy;
pub(crate) mod focal;
pub(crate) mod lovasz;
pub(crate) mod lovasz_softmax;
pub(crate) mod multiclass;
pub(crate) mod overlap;

/// The per-image mean of a per-pixel term over the `rows` images of `x` and `y`, and, with
/// `grad`, each pixel's derivative written (or added) into it: the body of the kernels whose
/// loss is a mean of pixel terms (cross-entropy, focal). `term(x_i, y_i, step)` returns the
/// term and `step` times its derivative, `step` being the gradient's scale over the pixels of
/// an image. Without `grad` only the term is used; the derivative, inlined, is dead code.
/// `term` must be `#[inline(always)]`: called out of line it runs scalar (measured 20x slower).
#[inline(always)]
pub(crate) fn pixel_means<F: Real>(
    x: &[F],
    y: &[F],
    rows: usize,
    grad: Option<Gradient<'_, F>>,
    term: impl Fn(F, F, F) -> (F, F) + Sync,
) -> Vec<f64> {
    let len = x.len() / rows;
    let chunks = parallel::chunks(rows, len);
    let partial: Vec<[f64; 1]> = match grad {
        Some(Gradient {
            out,
            scale,
            accumulate,
        }) => {
            let step = F::from_f64(scale / len as f64);
            parallel::map_mut(&chunks, out, |c, out| {
                let r = c.range.clone();
                lanes::sum_and_write(
                    &x[r.clone()],
                    &y[r],
                    out,
                    accumulate,
                    #[inline(always)]
                    |xi, yi| {
                        let (t, d) = term(xi, yi, step);
                        ([t], d)
                    },
                )
            })
        }
        None => parallel::map(&chunks, |c| {
            let r = c.range.clone();
            lanes::sum(
                &x[r.clone()],
                &y[r],
                #[inline(always)]
                |xi, yi| [term(xi, yi, F::ONE).0],
            )
        }),
    };
    parallel::per_row(&chunks, &partial, rows)
        .into_iter()
        .map(|[sum]| sum / len as f64)
        .collect()
}
