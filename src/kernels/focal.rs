//! The binary focal loss: value per image and gradient, one fused pass.

use super::cross_entropy::{from_logit, from_probability};
use super::pixel_means;
use crate::cpu::math::{Real, sigmoid_from};
use crate::engine::{Gradient, HostFloat, Targets, TypedKernel};
use crate::error::SegLossError;

/// The options of the focal loss, as the kernel sees them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FocalParams {
    pub gamma: f64,
    pub alpha: Option<f64>,
    pub from_logits: bool,
}

impl TypedKernel for FocalParams {
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
        focal(x, (y.values()?, y.weights), rows, *self, grad)
    }
}

/// Per-image mean of `alpha_t * m * ce` over the `len` pixels of each of the `rows` images
/// (see [`crate::losses::focal`] for `m`, `ce` and `alpha_t`), each term times its pixel
/// weight when there are weights; writes `d loss_row / d x` into `grad` when given. A target
/// outside `[0, 1]` is an error.
pub(crate) fn focal<F: Real>(
    x: &[F],
    y: (&[F], Option<&[F]>),
    rows: usize,
    params: FocalParams,
    grad: Option<Gradient<'_, F>>,
) -> Result<Vec<f64>, SegLossError> {
    let pixel = Pixel::new(params);
    pixel_means(
        x,
        y,
        rows,
        grad,
        #[inline(always)]
        |xi, yi, step| pixel.term_and_derivative(xi, yi, step),
    )
}

/// The per-pixel focal term with its constants.
#[derive(Clone, Copy)]
pub(crate) struct Pixel<F> {
    gamma: F,
    alpha_0: F,
    alpha_1: F,
    from_logits: bool,
}

impl<F: Real> Pixel<F> {
    /// The term of `params`.
    pub fn new(params: FocalParams) -> Self {
        // alpha_t = alpha y + (1 - alpha)(1 - y) = (1 - alpha) + (2 alpha - 1) y; 1 without
        // alpha.
        let (alpha_0, alpha_1) = match params.alpha {
            Some(a) => (F::from_f64(1.0 - a), F::from_f64(2.0 * a - 1.0)),
            None => (F::ONE, F::ZERO),
        };
        Pixel {
            gamma: F::from_f64(params.gamma),
            alpha_0,
            alpha_1,
            from_logits: params.from_logits,
        }
    }

    /// `(alpha_t m ce, step * d(alpha_t m ce)/dx)` of one pixel, forced inline (with the
    /// closures around it) into the SIMD copies of the loops: called out of line it runs
    /// scalar (`benches/results/kernel_notes.md#per-pixel-terms-inline`).
    #[inline(always)]
    pub fn term_and_derivative(&self, xi: F, yi: F, step: F) -> (F, F) {
        let gamma = self.gamma;
        let alpha_t = self.alpha_0 + self.alpha_1 * yi;
        let (m, dm, ce, dce) = if self.from_logits {
            let (neg_log_p, neg_log_not_p, p) = from_logit(xi);
            // m = sigmoid(u)^gamma = exp(gamma log_sigmoid(u)), u = -x (2y - 1).
            let s = yi + yi - F::ONE;
            let u = -xi * s;
            let eu = (-u.abs()).exp_nonpositive();
            let log_sigmoid_u = -((-u).max(F::ZERO) + eu.ln_1p_unit());
            let m = (gamma * log_sigmoid_u).exp_nonpositive();
            let not_sigmoid_u = F::ONE - sigmoid_from(u, eu);
            let ce = yi * neg_log_p + (F::ONE - yi) * neg_log_not_p;
            (m, -(gamma * m * not_sigmoid_u * s), ce, p - yi)
        } else {
            let ((neg_log_p, d_neg_log_p), (neg_log_not_p, d_neg_log_not_p)) = from_probability(xi);
            // m = max(b, MIN_PROB)^gamma, b = p + y - 2py (= 1 - p_t for hard targets).
            let b = xi + yi - (xi + xi) * yi;
            let bc = b.max(F::MIN_PROB);
            let m = (gamma * bc.ln_positive()).exp_nonpositive();
            // `b < m` is false for NaN: a NaN probability keeps a NaN derivative.
            let dm = if b < F::MIN_PROB {
                F::ZERO
            } else {
                gamma * m / bc * (F::ONE - yi - yi)
            };
            let ce = yi * neg_log_p + (F::ONE - yi) * neg_log_not_p;
            let dce = yi * d_neg_log_p + (F::ONE - yi) * d_neg_log_not_p;
            (m, dm, ce, dce)
        };
        (alpha_t * m * ce, alpha_t * (dm * ce + m * dce) * step)
    }
}
