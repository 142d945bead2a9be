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

pub(crate) mod compound;
pub(crate) mod cross_entropy;
pub(crate) mod focal;
pub(crate) mod lovasz;
pub(crate) mod lovasz_softmax;
pub(crate) mod multiclass;
pub(crate) mod overlap;

/// [`SegLossError::InvalidTargets`] when a pass found a binary target outside `[0, 1]`
/// (`outside`, from [`lanes::sum_checking_unit_y`] and its writing twin, which the binary
/// kernels run over the targets they read anyway), naming the first such value and its flat
/// index (found by a second scan, on that path only). A NaN target is not outside: it
/// propagates as a NaN loss instead, as a NaN logit does.
pub(crate) fn check_unit_targets<F: Real>(outside: bool, y: &[F]) -> Result<(), SegLossError> {
    if !outside {
        return Ok(());
    }
    let at = y.iter().position(|&v| v < F::ZERO || v > F::ONE);
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
/// `term` must be `#[inline(always)]`: called out of line it runs scalar
/// (`benches/results/kernel_notes.md#per-pixel-terms-inline`).
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
    // Each chunk's sum of the terms, and whether it holds a target outside [0, 1].
    let partial: Vec<([f64; 1], bool)> = match grad {
        Some(Gradient {
            out,
            scale,
            accumulate,
        }) => {
            let step = F::from_f64(scale / len as f64);
            parallel::map_mut(&chunks, out, |c, out| {
                let r = c.range.clone();
                lanes::sum_and_write_checking_unit_y(
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
            lanes::sum_checking_unit_y(
                &x[r.clone()],
                &y[r],
                #[inline(always)]
                |xi, yi| [term(xi, yi, F::ONE).0],
            )
        }),
    };
    check_unit_targets(partial.iter().any(|(_, outside)| *outside), y)?;
    let sums: Vec<[f64; 1]> = partial.into_iter().map(|(sum, _)| sum).collect();
    Ok(parallel::per_row(&chunks, &sums, rows)
        .into_iter()
        .map(|[sum]| sum / len as f64)
        .collect())
}
