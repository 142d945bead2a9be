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

use crate::SegLossError;
use crate::cpu::math::Real;
use crate::cpu::{lanes, parallel};
use crate::engine::Gradient;

pub(crate) mod cross_entropy;
pub(crate) mod focal;
pub(crate) mod lovasz;
pub(crate) mod lovasz_softmax;
pub(crate) mod multiclass;
pub(crate) mod overlap;

/// 1 where a binary target lies outside `[0, 1]`, else 0. The binary kernels sum it beside
/// their own terms, so a 0/255 mask is found in the pass that reads the targets anyway. A NaN
/// target counts 0 here: it propagates as a NaN loss instead, as a NaN logit does.
#[inline(always)]
pub(crate) fn outside_unit<F: Real>(y: F) -> F {
    if y < F::ZERO || y > F::ONE {
        F::ONE
    } else {
        F::ZERO
    }
}

/// [`SegLossError::InvalidTargets`] when `outside` (the sum of [`outside_unit`] over `y`) is
/// not 0, naming the first such value and its flat index (found by a second scan, on that
/// path only).
pub(crate) fn check_unit_targets<F: Real>(outside: f64, y: &[F]) -> Result<(), SegLossError> {
    if outside == 0.0 {
        return Ok(());
    }
    let at = y.iter().position(|&v| outside_unit(v) == F::ONE);
    Err(SegLossError::InvalidTargets {
        reason: match at {
            Some(i) => format!(
                "value {} at flat index {i}; binary targets lie in [0, 1] (a 0/255 mask needs \
                 dividing by 255)",
                y[i].to_f64()
            ),
            None => "a value outside [0, 1]; binary targets lie in [0, 1]".into(),
        },
    })
}

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
) -> Result<Vec<f64>, SegLossError> {
    let len = x.len() / rows;
    let chunks = parallel::chunks(rows, len);
    // Each chunk's sum of the terms and its count of targets outside [0, 1].
    let partial: Vec<[f64; 2]> = match grad {
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
                        ([t, outside_unit(yi)], d)
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
                |xi, yi| [term(xi, yi, F::ONE).0, outside_unit(yi)],
            )
        }),
    };
    check_unit_targets(partial.iter().map(|[_, outside]| outside).sum(), y)?;
    Ok(parallel::per_row(&chunks, &partial, rows)
        .into_iter()
        .map(|[sum, _]| sum / len as f64)
        .collect())
}
