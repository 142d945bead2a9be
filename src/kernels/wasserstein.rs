//! The generalized Wasserstein Dice loss: per image, one pass for its two sums (each pixel's
//! softmax computed in place, its Wasserstein distance to the true class), one for the
//! gradient.
//!
//! The burn-operations path builds one-hot targets, a `[N, C, C] x [N, C, P]` product and the
//! softmax as tensors of the batch's size; here a pixel's `C` logits are read, used and
//! forgotten.

use crate::cpu::lanes::widest;
use crate::cpu::math::Real;
use crate::cpu::parallel;
use crate::engine::{Gradient, HostFloat, Labels, Targets, TypedKernel};
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
        let len = x.len() / rows;
        let (out, scale, accumulate) = Gradient::parts(grad);
        Ok(parallel::map_with(
            &parallel::rows(rows, len),
            out,
            |c, out| {
                let pixels = len / self.classes;
                let weights = y.weights.map(|w| &w[c.row * pixels..(c.row + 1) * pixels]);
                let image = Image {
                    x: &x[c.range.clone()],
                    truth: self.truth(y, c.row, pixels, weights),
                    weights,
                    params: self,
                };
                // Compiled for the widest instruction set the CPU has, as the other kernels.
                widest(
                    #[inline(always)]
                    || image.loss(out.map(|out| (out, scale, accumulate))),
                )
            },
        ))
    }
}

impl WassersteinParams {
    /// Image `n`'s targets as the loss reads them: each pixel's costs `m_i[c] = sum_k y_ik
    /// M[k][c]` and true-class weight `a_i = sum_k y_ik a_k` (0 for an ignored pixel or an
    /// index of no class), the class volumes of `Gdl` counted with the image's pixel weights
    /// `pixel_weights`, when given.
    fn truth<F: Real>(
        &self,
        y: Targets<'_, F>,
        n: usize,
        pixels: usize,
        pixel_weights: Option<&[F]>,
    ) -> Truth<F> {
        let count = |i: usize| pixel_weights.map_or(1.0, |w| w[i].to_f64());
        let classes = self.classes;
        match y.labels {
            Labels::Indices(indices) => {
                let mut ids = vec![0_u32; pixels];
                indices.class_ids(n * pixels, classes, self.ignore_index, &mut ids);
                let mut volumes = vec![0.0; classes + 1];
                for (i, id) in ids.iter_mut().enumerate() {
                    // No class and ignored alike: row C of the tables below, all zeros.
                    *id = (*id).min(classes as u32);
                    volumes[*id as usize] += count(i);
                }
                let weights = self.class_weights::<F>(&volumes[..classes]);
                // columns[c][k] = M[k][c], and weight[k] = a_k, each with a zero row k = C.
                let columns = (0..classes)
                    .map(|c| {
                        (0..=classes)
                            .map(|k| {
                                if k < classes {
                                    F::from_f64(self.distances[k * classes + c])
                                } else {
                                    F::ZERO
                                }
                            })
                            .collect()
                    })
                    .collect();
                let mut weight = weights;
                weight.push(F::ZERO);
                Truth::Indices {
                    ids,
                    columns,
                    weight,
                }
            }
            Labels::Values(v) => {
                let targets = &v[n * classes * pixels..(n + 1) * classes * pixels];
                let volumes: Vec<f64> = targets
                    .chunks(pixels)
                    .map(|t| {
                        t.iter()
                            .enumerate()
                            .map(|(i, v)| v.to_f64() * count(i))
                            .sum()
                    })
                    .collect();
                let weights = self.class_weights(&volumes);
                let mut costs = vec![F::ZERO; classes * pixels];
                let mut weight = vec![F::ZERO; pixels];
                for (k, t) in targets.chunks(pixels).enumerate() {
                    for (w, &t) in weight.iter_mut().zip(t) {
                        *w = *w + t * weights[k];
                    }
                    for c in 0..classes {
                        let d = F::from_f64(self.distances[k * classes + c]);
                        for (m, &t) in costs[c * pixels..(c + 1) * pixels].iter_mut().zip(t) {
                            *m = *m + t * d;
                        }
                    }
                }
                Truth::Values { costs, weight }
            }
        }
    }

    /// The weight `a_k` of each true class, from the classes' volumes `V_k` in the image.
    fn class_weights<F: Real>(&self, volumes: &[f64]) -> Vec<F> {
        (0..self.classes)
            .map(|k| {
                F::from_f64(if self.gdl {
                    1.0 / (volumes[k] + 1.0)
                } else if k == 0 {
                    0.0
                } else {
                    1.0
                })
            })
            .collect()
    }
}

/// An image's targets as the loss reads them ([`WassersteinParams::truth`]).
enum Truth<F> {
    /// Class ids (`[P]`; `C` for an ignored pixel or an index of no class: the engine's
    /// `NO_CLASS` and `IGNORED` clamped), the columns of `M` (`columns[c][k] = M[k][c]`) and
    /// the class weights `a_k`, each with a last entry 0 for id `C`: a pixel's costs and
    /// weight are looked up by its id.
    Indices {
        ids: Vec<u32>,
        columns: Vec<Vec<F>>,
        weight: Vec<F>,
    },
    /// Per-class targets: the costs `m_i[c]` class-major `[C][P]` and the weights `a_i` `[P]`.
    Values { costs: Vec<F>, weight: Vec<F> },
}

impl<F: Real> Truth<F> {
    /// The costs `m[c][j]` (`[C][BLOCK]`) and weights `a[j]` of the `b` pixels from `start`.
    #[inline(always)]
    fn block(&self, start: usize, b: usize, m: &mut [F], a: &mut [F; BLOCK]) {
        match self {
            Truth::Indices {
                ids,
                columns,
                weight,
            } => {
                let ids = &ids[start..start + b];
                for (a, &id) in a[..b].iter_mut().zip(ids) {
                    *a = weight[id as usize];
                }
                for (c, column) in columns.iter().enumerate() {
                    for (m, &id) in m[c * BLOCK..][..b].iter_mut().zip(ids) {
                        *m = column[id as usize];
                    }
                }
            }
            Truth::Values { costs, weight } => {
                let (classes, pixels) = (costs.len() / weight.len(), weight.len());
                a[..b].copy_from_slice(&weight[start..start + b]);
                for c in 0..classes {
                    m[c * BLOCK..][..b].copy_from_slice(&costs[c * pixels + start..][..b]);
                }
            }
        }
    }
}

/// Pixels handled at a time: the probabilities of a block of every class stay in cache.
const BLOCK: usize = 512;

/// One image: its logits `[C][P]`, its targets, its pixel weights `[P]` (when the call has
/// any), the options.
struct Image<'a, F> {
    x: &'a [F],
    truth: Truth<F>,
    weights: Option<&'a [F]>,
    params: &'a WassersteinParams,
}

impl<F: Real> Image<'_, F> {
    /// The image's loss; with `out`, writes (or adds) `scale * d loss / d x` into it.
    #[inline(always)]
    fn loss(&self, out: Option<(&mut [F], f64, bool)>) -> f64 {
        let classes = self.params.classes;
        let pixels = self.x.len() / classes;
        let mut p = vec![F::ZERO; classes * BLOCK];
        let mut m = vec![F::ZERO; classes * BLOCK];
        let (mut w, mut a) = ([F::ZERO; BLOCK], [F::ZERO; BLOCK]);
        let (mut true_positives, mut distances, mut gdl_denominator) = (0.0, 0.0, 0.0);
        // The probabilities, kept for the gradient pass (`[C][P]`) when there is one: their
        // exponentials are the costliest part of a pass.
        let mut kept = vec![F::ZERO; if out.is_some() { classes * pixels } else { 0 }];
        for start in (0..pixels).step_by(BLOCK) {
            let b = (pixels - start).min(BLOCK);
            self.truth.block(start, b, &mut m, &mut a);
            self.distances(start, b, &m, &mut p, &mut w);
            if !kept.is_empty() {
                for c in 0..classes {
                    kept[c * pixels + start..][..b].copy_from_slice(&p[c * BLOCK..][..b]);
                }
            }
            for (j, (&w, &a)) in w[..b].iter().zip(&a[..b]).enumerate() {
                let (w, a) = (w.to_f64(), a.to_f64());
                // Each pixel's terms times its weight, with weights.
                let v = self.weights.map_or(1.0, |pw| pw[start + j].to_f64());
                true_positives += v * (a * (1.0 - w));
                distances += v * w;
                gdl_denominator += v * (a * (2.0 - w));
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
            self.truth.block(start, b, &mut m, &mut a);
            for (d, &a) in d_pixel[..b].iter_mut().zip(&a[..b]) {
                *d = a * k_a + k_1;
            }
            if let Some(pw) = self.weights {
                for (d, &v) in d_pixel[..b].iter_mut().zip(&pw[start..start + b]) {
                    *d = *d * v;
                }
            }
            // g_ic = d_pixel_i m_i[c]; from logits, dx_ic = p_ic (g_ic - sum_k p_ik g_ik).
            dot[..b].fill(F::ZERO);
            if self.params.from_logits {
                for c in 0..classes {
                    let m = &m[c * BLOCK..][..b];
                    let pc = &kept[c * pixels + start..][..b];
                    for (((dot, &pc), &m), &d) in
                        dot[..b].iter_mut().zip(pc).zip(m).zip(&d_pixel[..b])
                    {
                        *dot = *dot + pc * m * d;
                    }
                }
            }
            for c in 0..classes {
                let m = &m[c * BLOCK..][..b];
                let o = &mut out[c * pixels + start..][..b];
                let pc = &kept[c * pixels + start..][..b];
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
    /// Wasserstein distances `w[j] = sum_c m[c][j] p[c][j]` (`m` from [`Truth::block`]). A NaN
    /// logit makes its pixel's probabilities NaN.
    #[inline(always)]
    fn distances(&self, start: usize, b: usize, m: &[F], p: &mut [F], w: &mut [F; BLOCK]) {
        let classes = self.params.classes;
        let pixels = self.x.len() / classes;
        for c in 0..classes {
            p[c * BLOCK..][..b].copy_from_slice(&self.x[c * pixels + start..][..b]);
        }
        if self.params.from_logits {
            let mut top = [F::ZERO; BLOCK];
            top[..b].copy_from_slice(&p[..b]);
            for c in 1..classes {
                // A select, not a conditional store, so that the loop vectorises.
                for (t, &v) in top[..b].iter_mut().zip(&p[c * BLOCK..][..b]) {
                    *t = t.max(v);
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
            for s in &mut sum[..b] {
                *s = F::ONE / *s;
            }
            for c in 0..classes {
                for (v, &inverse) in p[c * BLOCK..][..b].iter_mut().zip(&sum[..b]) {
                    *v = *v * inverse;
                }
            }
        }
        w[..b].fill(F::ZERO);
        for c in 0..classes {
            let m = &m[c * BLOCK..][..b];
            for ((w, &m), &pc) in w[..b].iter_mut().zip(m).zip(&p[c * BLOCK..][..b]) {
                *w = *w + m * pc;
            }
        }
    }
}
