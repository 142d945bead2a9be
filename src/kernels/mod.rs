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
use crate::error::SegLossError;

pub(crate) mod cl_dice;
pub(crate) mod compound;
pub(crate) mod cross_entropy;
pub(crate) mod focal;
pub(crate) mod lovasz;
pub(crate) mod lovasz_softmax;
pub(crate) mod mcc;
pub(crate) mod multiclass;
pub(crate) mod overlap;
pub(crate) mod wasserstein;

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

/// The per-image mean of a per-pixel term over the `rows` images of `x` and `y` (each term times
/// its pixel weight `w_i` when there are weights, the mean still over every pixel: torch's
/// `weight` argument), and, with `grad`, each pixel's derivative written (or added) into it: the
/// body of the kernels whose loss is a mean of pixel terms (cross-entropy, focal). `term(x_i, y_i, step)` returns the
/// term and `step` times its derivative, `step` being the gradient's scale over the pixels of
/// an image. Without `grad` only the term is used; the derivative, inlined, is dead code.
/// `term` must be `#[inline(always)]`: called out of line it runs scalar
/// (`benches/results/kernel_notes.md#per-pixel-terms-inline`).
#[inline(always)]
pub(crate) fn pixel_means<F: Real>(
    x: &[F],
    (y, w): (&[F], Option<&[F]>),
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
                lanes::weighted_sum_and_write_checking_unit_y(
                    &x[r.clone()],
                    &y[r.clone()],
                    w.map(|w| &w[r]),
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
            lanes::weighted_sum_checking_unit_y(
                &x[r.clone()],
                &y[r.clone()],
                w.map(|w| &w[r]),
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

/// The per-thread scratch cap (`cpu::scratch`) seen from the kernels that use it most: a test
/// of the kernels layer, since the building block below names no kernel.
#[cfg(test)]
mod scratch_tests {
    use crate::cpu::scratch::{KEPT_PER_THREAD, kept_bytes};

    /// `n` values in `[-4, 4)` from a fixed sequence (distinct enough for a sort).
    fn logits(n: usize) -> Vec<f32> {
        let mut state = 0x2545_F491_4F6C_DD1D_u64;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 8.0 - 4.0
            })
            .collect()
    }

    /// The Lovász benchmark shapes (value and gradient, as a loss call computes them) keep
    /// their buffers on the calling thread between calls, so their hot path is what it was
    /// without the cap: the caller solves at least one problem of each call, whose buffers are
    /// at least 16 bytes a pixel (binary: errors, derivatives, sort buffer) or 8 bytes a key
    /// (Lovász-softmax: the sort buffer of a class over the batch). The kernels run as the
    /// losses' defaults plan them: the hinge per image, Lovász-softmax per class over the batch.
    #[test]
    fn the_lovasz_benchmark_shapes_keep_their_buffers() {
        use crate::engine::{Gradient, Indices, Labels, Targets, TypedKernel};
        use crate::kernels::lovasz::{Errors, LovaszKernel};
        use crate::kernels::lovasz_softmax::{ClassSelection, LovaszSoftmaxKernel};
        use crate::options::Reduction;

        let hinge = LovaszKernel {
            per_image: true,
            errors: Errors::Hinge,
        };
        for shape in [[8, 1, 256, 256], [16, 1, 512, 512]] {
            let len: usize = shape.iter().product();
            let x = logits(len);
            let labels: Vec<f32> = (0..len).map(|i| (i % 3 == 0) as u8 as f32).collect();
            let mut grad = vec![0.0_f32; len];
            let rows = shape[0];
            hinge
                .run(
                    &x,
                    Targets::unweighted(Labels::Values(&labels)),
                    rows,
                    Some(Gradient::new(&mut grad)),
                )
                .unwrap();
            let pixels = shape[2] * shape[3];
            let kept = kept_bytes();
            assert!(
                kept >= 16 * pixels && kept <= KEPT_PER_THREAD,
                "{shape:?}: {kept}"
            );
        }
        let shape = [8, 4, 256, 256];
        let len: usize = shape.iter().product();
        let x = logits(len);
        let pixels = shape[0] * shape[2] * shape[3];
        let classes: Vec<i64> = (0..pixels as i64).map(|i| (i * 7 / 3) % 4).collect();
        let softmax = LovaszSoftmaxKernel {
            classes: shape[1],
            from_logits: true,
            ignore_index: None,
            per_image: false,
            selection: ClassSelection::Present,
            reduction: Reduction::Mean,
        };
        let mut grad = vec![0.0_f32; len];
        softmax
            .run(
                &x,
                Targets::unweighted(Labels::Indices(Indices::I64(&classes))),
                shape[0],
                Some(Gradient::new(&mut grad)),
            )
            .unwrap();
        let kept = kept_bytes();
        assert!(
            kept >= 8 * pixels && kept <= KEPT_PER_THREAD,
            "{shape:?}: {kept}"
        );
    }
}
