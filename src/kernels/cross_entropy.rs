//! Binary cross-entropy and weighted cross-entropy: value per image and gradient, one fused
//! pass.

use super::pixel_means;
use crate::cpu::lanes;
use crate::cpu::math::{Real, sigmoid_from};
use crate::cpu::parallel::{self, Chunk};
use crate::engine::{Gradient, HostFloat, Targets, TypedKernel};
use crate::error::SegLossError;

/// The class weights of the cross-entropy: `w_fg` on `-y ln p`, `w_bg` on `-(1-y) ln(1-p)`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ClassWeights {
    /// Given weights (1 and 1 for plain BCE).
    Fixed { fg: f64, bg: f64 },
    /// `1/(2q)` and `1/(2-2q)` with `q` the batch's foreground fraction (clamped as in the
    /// device path, so an absent class keeps a finite weight on its zero term), each replaced
    /// by the explicit weight where one is given.
    BatchPrior { fg: Option<f64>, bg: Option<f64> },
}

/// Per-image mean of `w_fg y (-ln p) + w_bg (1-y) (-ln(1-p))` over the `len` pixels of each of
/// the `rows` images of `x` (logits, or probabilities when `!from_logits`) and `y`, each pixel's
/// term times its weight when there are pixel weights `w`; writes `d loss_row / d x` into
/// `grad` when given. A target outside `[0, 1]` is an error.
pub(crate) fn cross_entropy<F: Real>(
    x: &[F],
    (y, w): (&[F], Option<&[F]>),
    rows: usize,
    from_logits: bool,
    weights: ClassWeights,
    grad: Option<Gradient<'_, F>>,
) -> Result<Vec<f64>, SegLossError> {
    let (fg, bg) = resolve(weights, (y, w), &parallel::chunks(rows, x.len() / rows));
    let (fg, bg) = (F::from_f64(fg), F::from_f64(bg));
    pixel_means(
        x,
        (y, w),
        rows,
        grad,
        #[inline(always)]
        |xi, yi, step| {
            // Weight times target first: where the target is 0 the weight may be huge, and
            // (w * y) * l stays 0 while w * (y * l) could not.
            let (wy, wn) = (fg * yi, bg * (F::ONE - yi));
            if from_logits {
                let (neg_log_p, neg_log_not_p, p) = from_logit(xi);
                // d(-ln p)/dx = p - 1, d(-ln(1 - p))/dx = p.
                let d = wy * (p - F::ONE) + wn * p;
                (wy * neg_log_p + wn * neg_log_not_p, d * step)
            } else {
                let (neg_log_p, neg_log_not_p) = from_probability(xi);
                let d = wy * neg_log_p.1 + wn * neg_log_not_p.1;
                (wy * neg_log_p.0 + wn * neg_log_not_p.0, d * step)
            }
        },
    )
}

/// The engine's view of both cross-entropies.
pub(crate) struct CrossEntropyKernel {
    pub from_logits: bool,
    pub weights: ClassWeights,
}

impl TypedKernel for CrossEntropyKernel {
    fn per_image(&self) -> bool {
        true
    }
    fn reads_pixel_weights(&self) -> bool {
        true
    }
    fn run<F: HostFloat>(
        &self,
        x: &[F],
        y: Targets<'_, F>,
        rows: usize,
        grad: Option<Gradient<'_, F>>,
    ) -> Result<Vec<f64>, SegLossError> {
        let labels = y.values()?;
        cross_entropy(
            x,
            (labels, y.weights),
            rows,
            self.from_logits,
            self.weights,
            grad,
        )
    }
}

/// `(-ln p, -ln(1 - p), p)` from a logit, as `softplus(-x)`, `softplus(x)` and `sigmoid(x)`
/// from one `exp(-|x|)`.
#[inline(always)]
pub(crate) fn from_logit<F: Real>(x: F) -> (F, F, F) {
    let e = (-x.abs()).exp_nonpositive();
    let l = e.ln_1p_unit();
    let neg_log_p = (-x).max(F::ZERO) + l;
    let neg_log_not_p = x.max(F::ZERO) + l;
    (neg_log_p, neg_log_not_p, sigmoid_from(x, e))
}

/// `((-ln max(p, m), its derivative), (-ln max(1 - p, m), its derivative))` with `m` =
/// [`Real::MIN_PROB`], the device path's clamp (whose gradient is 0 where it
/// clamps).
#[inline(always)]
pub(crate) fn from_probability<F: Real>(p: F) -> ((F, F), (F, F)) {
    let q = F::ONE - p;
    let pc = p.max(F::MIN_PROB);
    let qc = q.max(F::MIN_PROB);
    // `x < m` is false for NaN, so a NaN probability keeps a NaN derivative.
    let dp = if p < F::MIN_PROB {
        F::ZERO
    } else {
        -F::ONE / pc
    };
    let dq = if q < F::MIN_PROB {
        F::ZERO
    } else {
        F::ONE / qc
    };
    ((-pc.ln_positive(), dp), (-qc.ln_positive(), dq))
}

/// The weights `(w_fg, w_bg)` as f64. With pixel weights `w` the batch prior is the weighted
/// foreground fraction `sum(w y) / sum(w)` (the fraction inside a mask).
fn resolve<F: Real>(
    weights: ClassWeights,
    (y, w): (&[F], Option<&[F]>),
    chunks: &[Chunk],
) -> (f64, f64) {
    match weights {
        ClassWeights::Fixed { fg, bg } => (fg, bg),
        ClassWeights::BatchPrior { fg, bg } => {
            let needs_prior = fg.is_none() || bg.is_none();
            let q = if needs_prior {
                let sums = parallel::map(chunks, |c| {
                    let r = c.range.clone();
                    match w {
                        Some(w) => lanes::sum(&y[r.clone()], &w[r], |yi, wi| [yi * wi, wi]),
                        None => [lanes::sum(&y[r.clone()], &y[r], |yi, _| [yi])[0], 0.0],
                    }
                });
                let foreground = sums.iter().map(|[s, _]| s).sum::<f64>();
                let total = match w {
                    Some(_) => sums.iter().map(|[_, t]| t).sum::<f64>(),
                    None => y.len() as f64,
                };
                // All weights 0: every term is 0 whatever the prior; 1/2 keeps it finite.
                if total > 0.0 { foreground / total } else { 0.5 }
            } else {
                0.5
            };
            let min = f64::from(f32::MIN_POSITIVE);
            (
                fg.unwrap_or(0.5 / q.max(min)),
                bg.unwrap_or(0.5 / (1.0 - q).max(min)),
            )
        }
    }
}
