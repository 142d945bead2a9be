//! The generalized Wasserstein Dice loss: per image, one pass for its two sums (each pixel's
//! softmax computed in place, its Wasserstein distance to the true class), one for the
//! gradient.
//!
//! The burn-operations path builds one-hot targets, a `[N, C, C] x [N, C, P]` product and the
//! softmax as tensors of the batch's size; here a pixel's `C` logits are read, used and
//! forgotten.

use crate::cpu::math::Real;
use crate::cpu::parallel;
use crate::engine::{Gradient, HostFloat, Targets, TypedKernel};
use crate::error::SegLossError;

/// The options of the loss, as the kernel sees them.
#[derive(Clone, Debug)]
pub(crate) struct WassersteinParams {
    pub classes: usize,
    /// `M[k][c]` row-major, divided by its largest entry.
    pub distances: Vec<f64>,
    /// The class weights `a_k = 1 / (V_k + 1)` of each image (Tilborghs et al.) instead of 0
    /// for the background and 1 for the others.
    pub gdl: bool,
    pub smooth_nr: f64,
    pub smooth_dr: f64,
    pub from_logits: bool,
    pub ignore_index: Option<i64>,
}

impl TypedKernel for WassersteinParams {
    fn per_image(&self) -> bool {
        true
    }
    fn run<F: HostFloat>(
        &self,
        x: &[F],
        y: Targets<'_, F>,
        rows: usize,
        grad: Option<Gradient<'_, F>>,
    ) -> Result<Vec<f64>, SegLossError> {
        let len = x.len() / rows;
        let (scale, accumulate) = grad
            .as_ref()
            .map_or((1.0, false), |g| (g.scale, g.accumulate));
        let out = grad.map(|g| g.out);
        Ok(parallel::map_with(
            &parallel::rows(rows, len),
            out,
            |c, out| {
                let image = Image {
                    x: &x[c.range.clone()],
                    truth: self.truth(y, c.row, len / self.classes),
                    params: self,
                };
                image.loss(out.map(|out| (out, scale, accumulate)))
            },
        ))
    }
}

impl WassersteinParams {
    /// Image `n`'s targets as each pixel's costs `m_i[c] = sum_k y_ik M[k][c]` and true-class
    /// weight `a_i = sum_k y_ik a_k` (class-major `[C][P]` and `[P]`; 0 for an ignored pixel
    /// or an index of no class).
    fn truth<F: Real>(&self, y: Targets<'_, F>, n: usize, pixels: usize) -> Truth<F> {
        let classes = self.classes;
        let mut targets = vec![F::ZERO; classes * pixels];
        match y {
            Targets::Indices(indices) => {
                indices.class_id_blocks(
                    n * pixels,
                    pixels,
                    classes,
                    self.ignore_index,
                    |at, ids| {
                        for (i, &id) in ids.iter().enumerate() {
                            if (id as usize) < classes {
                                targets[id as usize * pixels + at + i] = F::ONE;
                            }
                        }
                    },
                );
            }
            Targets::Values(v) => {
                targets.copy_from_slice(&v[n * classes * pixels..(n + 1) * classes * pixels]);
            }
        }
        let class_weights: Vec<F> = (0..classes)
            .map(|k| {
                let weight = if self.gdl {
                    let volume: f64 = targets[k * pixels..(k + 1) * pixels]
                        .iter()
                        .map(|t| t.to_f64())
                        .sum();
                    1.0 / (volume + 1.0)
                } else if k == 0 {
                    0.0
                } else {
                    1.0
                };
                F::from_f64(weight)
            })
            .collect();
        let mut costs = vec![F::ZERO; classes * pixels];
        let mut weight = vec![F::ZERO; pixels];
        for k in 0..classes {
            let t = &targets[k * pixels..(k + 1) * pixels];
            for (w, &t) in weight.iter_mut().zip(t) {
                *w = *w + t * class_weights[k];
            }
            for c in 0..classes {
                let d = F::from_f64(self.distances[k * classes + c]);
                for (m, &t) in costs[c * pixels..(c + 1) * pixels].iter_mut().zip(t) {
                    *m = *m + t * d;
                }
            }
        }
        Truth { costs, weight }
    }
}

/// An image's targets as the loss reads them ([`WassersteinParams::truth`]).
struct Truth<F> {
    /// `m_i[c]`, class-major `[C][P]`.
    costs: Vec<F>,
    /// `a_i`, `[P]`.
    weight: Vec<F>,
}

/// Pixels handled at a time: the probabilities of a block of every class stay in cache.
const BLOCK: usize = 512;

/// One image: its logits `[C][P]`, its targets, the options.
struct Image<'a, F> {
    x: &'a [F],
    truth: Truth<F>,
    params: &'a WassersteinParams,
}

impl<F: Real> Image<'_, F> {
    /// The image's loss; with `out`, writes (or adds) `scale * d loss / d x` into it.
    fn loss(&self, out: Option<(&mut [F], f64, bool)>) -> f64 {
        let classes = self.params.classes;
        let pixels = self.x.len() / classes;
        let mut p = vec![F::ZERO; classes * BLOCK];
        let mut w = [F::ZERO; BLOCK];
        let (mut true_positives, mut distances, mut gdl_denominator) = (0.0, 0.0, 0.0);
        for start in (0..pixels).step_by(BLOCK) {
            let b = (pixels - start).min(BLOCK);
            self.distances(start, b, &mut p, &mut w);
            for (&w, &a) in w[..b].iter().zip(&self.truth.weight[start..start + b]) {
                let (w, a) = (w.to_f64(), a.to_f64());
                true_positives += a * (1.0 - w);
                distances += w;
                gdl_denominator += a * (2.0 - w);
            }
        }
        let (nr, dr) = (self.params.smooth_nr, self.params.smooth_dr);
        let numerator = 2.0 * true_positives + nr;
        let denominator = if self.params.gdl {
            gdl_denominator + dr
        } else {
            2.0 * true_positives + distances + dr
        };
        let loss = 1.0 - numerator / denominator;
        let Some((out, scale, accumulate)) = out else {
            return loss;
        };
        // d loss / d w_i = a_i k_a + k_1: with N = 2 TP + s_nr, D' = D + s_dr,
        // TP = sum a_i (1 - w_i); Default: D = 2 TP + sum w_i; Gdl: D = sum a_i (2 - w_i).
        let d2 = denominator * denominator;
        let (k_a, k_1) = if self.params.gdl {
            (2.0 / denominator - numerator / d2, 0.0)
        } else {
            ((2.0 * denominator - 2.0 * numerator) / d2, numerator / d2)
        };
        let (k_a, k_1, scale) = (F::from_f64(k_a), F::from_f64(k_1), F::from_f64(scale));
        let mut d_pixel = [F::ZERO; BLOCK];
        let mut dot = [F::ZERO; BLOCK];
        for start in (0..pixels).step_by(BLOCK) {
            let b = (pixels - start).min(BLOCK);
            self.distances(start, b, &mut p, &mut w);
            for (d, &a) in d_pixel[..b]
                .iter_mut()
                .zip(&self.truth.weight[start..start + b])
            {
                *d = a * k_a + k_1;
            }
            // g_ic = d_pixel_i m_i[c]; from logits, dx_ic = p_ic (g_ic - sum_k p_ik g_ik).
            dot[..b].fill(F::ZERO);
            if self.params.from_logits {
                for c in 0..classes {
                    let m = &self.truth.costs[c * pixels + start..][..b];
                    for (((dot, &pc), &m), &d) in dot[..b]
                        .iter_mut()
                        .zip(&p[c * BLOCK..][..b])
                        .zip(m)
                        .zip(&d_pixel[..b])
                    {
                        *dot = *dot + pc * m * d;
                    }
                }
            }
            for c in 0..classes {
                let m = &self.truth.costs[c * pixels + start..][..b];
                let o = &mut out[c * pixels + start..][..b];
                let pc = &p[c * BLOCK..][..b];
                for ((((o, &m), &d), &pc), &dot) in o
                    .iter_mut()
                    .zip(m)
                    .zip(&d_pixel[..b])
                    .zip(pc)
                    .zip(&dot[..b])
                {
                    let g = d * m;
                    let d_x = if self.params.from_logits {
                        pc * (g - dot)
                    } else {
                        g
                    };
                    *o = if accumulate {
                        *o + scale * d_x
                    } else {
                        scale * d_x
                    };
                }
            }
        }
        loss
    }

    /// The probabilities `p[c][j]` (`[C][BLOCK]`) of the `b` pixels from `start` and their
    /// Wasserstein distances `w[j] = sum_c m_j[c] p[c][j]`. A NaN logit makes its pixel's
    /// probabilities NaN.
    fn distances(&self, start: usize, b: usize, p: &mut [F], w: &mut [F; BLOCK]) {
        let classes = self.params.classes;
        let pixels = self.x.len() / classes;
        for c in 0..classes {
            p[c * BLOCK..][..b].copy_from_slice(&self.x[c * pixels + start..][..b]);
        }
        if self.params.from_logits {
            let mut top = [F::ZERO; BLOCK];
            top[..b].copy_from_slice(&p[..b]);
            for c in 1..classes {
                for (t, &v) in top[..b].iter_mut().zip(&p[c * BLOCK..][..b]) {
                    if v > *t {
                        *t = v;
                    }
                }
            }
            let mut sum = [F::ZERO; BLOCK];
            for c in 0..classes {
                for ((v, &t), s) in p[c * BLOCK..][..b]
                    .iter_mut()
                    .zip(&top[..b])
                    .zip(&mut sum[..b])
                {
                    *v = (*v - t).exp_nonpositive();
                    *s = *s + *v;
                }
            }
            for c in 0..classes {
                for (v, &s) in p[c * BLOCK..][..b].iter_mut().zip(&sum[..b]) {
                    *v = *v / s;
                }
            }
        }
        w[..b].fill(F::ZERO);
        for c in 0..classes {
            let m = &self.truth.costs[c * pixels + start..][..b];
            for ((w, &m), &pc) in w[..b].iter_mut().zip(m).zip(&p[c * BLOCK..][..b]) {
                *w = *w + m * pc;
            }
        }
    }
}
