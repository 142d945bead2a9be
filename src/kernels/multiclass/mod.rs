//! The multiclass losses on the host: soft Dice, Jaccard and Tversky per class, the
//! generalized Dice loss and the focal loss (cross-entropy at `gamma = 0`), alone or summed,
//! over logits `[N, C, P]` (class stride `P`), with class-index or per-class targets.
//!
//! Two passes over the logits (one for losses made of focal terms only), each in blocks of
//! pixels across all the classes of an image ([`block`], walked as [`layout`] says): the first computes each pixel's class probabilities once (a softmax, or a
//! sigmoid per class) and gathers the per-(image, class) statistics and the focal sums of
//! every loss asked for ([`heads`]); the losses' values and the coefficients of their
//! gradients follow from those few numbers; the second pass computes the probabilities again
//! and writes the gradient once, for all the losses together. No one-hot, no softmax tensor,
//! no per-class temporary; the cost is linear in the number of classes.

pub(crate) mod block;
pub(crate) mod heads;
pub(crate) mod layout;

use crate::cpu::lanes::widest;
use crate::cpu::math::Real;
use crate::cpu::parallel::{self, Chunk};
use crate::cpu::scratch::with_scratch;
use crate::engine::{Gradient, HostFloat, IGNORED, Labels, Targets, TypedKernel};
use crate::error::SegLossError;
use crate::options::Reduction;

use crate::options::ClassMode;
use block::{
    Activation, ClassCoefficients, FocalTerm, Gamma, Image, ImageCoefficients, Scratch,
    add_statistics,
};
use heads::{Gathered, Head, HeadKind, Needs, STATS, Stats, coefficients, values};
use layout::{ClassLayout, Inputs, class_slices, pixel_range};

/// Multiclass losses sharing one pass over the logits.
#[derive(Clone, Debug)]
pub(crate) struct ClassKernel {
    pub classes: usize,
    pub activation: ClassMode,
    pub from_logits: bool,
    pub ignore_index: Option<i64>,
    pub heads: Vec<Head>,
    /// `true`: one value per image, `sum_h weight_h values_h` (every head per image, with
    /// [`Reduction::None`]); `false`: one value, `sum_h weight_h reduce_h(values_h)`.
    pub per_image: bool,
}

impl ClassKernel {
    /// A kernel of one loss, reduced by the kernel itself: with [`Reduction::Mean`] or `Sum`
    /// its output is one value, whose incoming gradient (1 after `backward`) scales nothing,
    /// instead of `N` values that a mean would scale in another pass over the gradient.
    pub fn single(
        classes: usize,
        activation: ClassMode,
        from_logits: bool,
        ignore_index: Option<i64>,
        kind: HeadKind,
        reduction: Reduction,
    ) -> Self {
        let per_image = !kind.batch() && reduction == Reduction::None;
        ClassKernel {
            classes,
            activation,
            from_logits,
            ignore_index,
            heads: vec![Head {
                weight: 1.0,
                reduction,
                kind,
            }],
            per_image,
        }
    }

    /// `d reduce_h(values_h) / d values_h` for each head: 1/N for a mean over images.
    fn reduction_factors(&self, images: usize) -> Vec<f64> {
        self.heads
            .iter()
            .map(|h| {
                let mean = !h.kind.batch() && h.reduction == Reduction::Mean;
                h.weight * if mean { 1.0 / images as f64 } else { 1.0 }
            })
            .collect()
    }

    fn block_activation(&self) -> Activation {
        match (self.from_logits, self.activation) {
            (false, _) => Activation::Identity,
            (true, ClassMode::Softmax) => Activation::Softmax,
            (true, ClassMode::Multilabel) => Activation::Sigmoid,
        }
    }
}

impl TypedKernel for ClassKernel {
    fn per_image(&self) -> bool {
        self.per_image
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
        let inputs = self.layout().inputs(x, y, rows)?;
        let focal_only = self
            .heads
            .iter()
            .all(|h| matches!(h.kind, HeadKind::Focal { .. }));
        if focal_only && let Some(grad) = grad {
            return Ok(self.focal_in_one_pass(inputs, grad));
        }
        let gathered = self.gather(inputs);
        let head_values = values(&self.heads, &gathered);
        if let Some(grad) = grad {
            let factors: Vec<f64> = self
                .reduction_factors(rows)
                .iter()
                .map(|f| f * grad.scale)
                .collect();
            let c = coefficients(&self.heads, &gathered, &factors);
            self.write_gradient(inputs, &c, grad, false);
        }
        Ok(self.combine(&head_values, rows))
    }
}

/// One chunk's sums: the statistics of each class, each focal head's sum, the pixels counted.
struct ChunkSums {
    stats: Vec<Stats>,
    focal: Vec<f64>,
    counted: f64,
}

impl ClassKernel {
    /// The class count and ignored index, as the passes walk the inputs.
    pub fn layout(&self) -> ClassLayout {
        ClassLayout {
            classes: self.classes,
            ignore_index: self.ignore_index,
        }
    }

    /// The focal heads in the kernel's float type.
    fn focal_terms<F: Real>(&self) -> Vec<(Gamma<F>, Vec<F>)> {
        self.heads
            .iter()
            .filter_map(|h| match &h.kind {
                HeadKind::Focal { gamma, weights } => Some((
                    Gamma::new(*gamma),
                    weights.iter().map(|&w| F::from_f64(w)).collect(),
                )),
                _ => None,
            })
            .collect()
    }

    /// The first pass: the statistics of every image and class, the focal sums and the pixels
    /// counted, summed over the chunks in their order (independent of the thread count).
    fn gather<F: Real>(&self, inputs: Inputs<'_, F>) -> Gathered {
        // Long: written out, not through `ClassLayout::run_chunks`, which measured slower here
        // (`benches/results/kernel_notes.md#multiclass-passes-written-out`).
        let Inputs { rows, len, .. } = inputs;
        let classes = self.classes;
        let needs = Needs::of(&self.heads);
        let focal = self.focal_terms::<F>();
        let chunks = self.layout().chunks(rows, len);
        let partial = parallel::map(&chunks, |chunk| {
            let image = self.image(inputs, chunk.row);
            let pixels = pixel_range(chunk, len);
            let terms: Vec<FocalTerm<'_, F>> = focal
                .iter()
                .map(|(gamma, weights)| FocalTerm {
                    gamma: *gamma,
                    weights,
                    softmax: self.activation == ClassMode::Softmax,
                })
                .collect();
            with_scratch(|s: &mut Scratch<F>| {
                s.prepare(classes, self.layout().block());
                widest(
                    #[inline(always)]
                    || {
                        let mut sums = ChunkSums {
                            stats: vec![[0.0; STATS]; classes],
                            focal: vec![0.0; terms.len()],
                            counted: 0.0,
                        };
                        for q in pixels.clone().step_by(s.block) {
                            let nb = s.block.min(pixels.end - q);
                            let block = image.block(q, nb);
                            sums.counted += block.probabilities(needs.focal, s);
                            let classes_with_statistics =
                                if needs.statistics { classes } else { 0 };
                            for (c, stats) in sums
                                .stats
                                .iter_mut()
                                .enumerate()
                                .take(classes_with_statistics)
                            {
                                let y = block.class_targets(c, &s.ids, &mut s.y);
                                let p = &s.p[c * s.block..][..nb];
                                let w = block.weighted().then(|| &s.valid[..nb]);
                                add_statistics(p, y, w, needs.squares, needs.abs, stats);
                            }
                            for (sum, term) in sums.focal.iter_mut().zip(&terms) {
                                *sum += block.focal_sum(*term, s);
                            }
                        }
                        sums
                    },
                )
            })
        });
        let mut gathered = Gathered {
            classes,
            stats: vec![[0.0; STATS]; rows * classes],
            focal: vec![vec![0.0; rows]; focal.len()],
            counted: vec![0.0; rows],
        };
        for (chunk, sums) in chunks.iter().zip(partial) {
            let n = chunk.row;
            for (total, s) in gathered.stats[n * classes..(n + 1) * classes]
                .iter_mut()
                .zip(&sums.stats)
            {
                for k in 0..STATS {
                    total[k] += s[k];
                }
            }
            for (total, s) in gathered.focal.iter_mut().zip(&sums.focal) {
                total[n] += s;
            }
            gathered.counted[n] += sums.counted;
        }
        gathered
    }

    /// Losses made of focal terms only need no statistics: their gradient per pixel is known
    /// once the pixels counted per image are (all of them, or those not ignored: a count over
    /// the indices, no logits read), so values and gradient come from one pass, one softmax
    /// per pixel.
    fn focal_in_one_pass<F: Real>(&self, inputs: Inputs<'_, F>, grad: Gradient<'_, F>) -> Vec<f64> {
        let Inputs { y, rows, len, .. } = inputs;
        let counted: Vec<f64> = (0..rows)
            .map(|n| match (y.labels, self.ignore_index) {
                (Labels::Indices(indices), Some(ignore)) => {
                    let mut counted = 0;
                    indices.class_id_blocks(n * len, len, self.classes, Some(ignore), |_, ids| {
                        counted += ids.iter().filter(|&&id| id != IGNORED).count();
                    });
                    counted as f64
                }
                _ => len as f64,
            })
            .collect();
        let focal = self
            .reduction_factors(rows)
            .iter()
            .map(|f| {
                counted
                    .iter()
                    .map(|&count| {
                        if count > 0.0 {
                            f * grad.scale / count
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect();
        let c = heads::Coefficients {
            overlap: vec![[0.0; 4]; rows * self.classes],
            focal,
        };
        let sums = self.write_gradient(inputs, &c, grad, true);
        let mut gathered = Gathered {
            classes: self.classes,
            stats: Vec::new(),
            focal: vec![vec![0.0; rows]; self.heads.len()],
            counted,
        };
        for (chunk, sums) in self.layout().chunks(rows, len).iter().zip(sums) {
            for (total, s) in gathered.focal.iter_mut().zip(&sums) {
                total[chunk.row] += s;
            }
        }
        self.combine(&values(&self.heads, &gathered), rows)
    }

    /// The second pass: every pixel's gradient, written (or added) into `grad.out`
    /// `[N, C, P]` (the coefficients `c` already carry `grad.scale`); with `focal_values`, each
    /// chunk's focal sums too (else empty).
    fn write_gradient<F: Real>(
        &self,
        inputs: Inputs<'_, F>,
        c: &heads::Coefficients,
        grad: Gradient<'_, F>,
        focal_values: bool,
    ) -> Vec<Vec<f64>> {
        // Long: written out, not through `ClassLayout::run_chunks`, as `gather`.
        let Inputs { rows, len, .. } = inputs;
        let Gradient {
            out, accumulate, ..
        } = grad;
        let classes = self.classes;
        let focal = self.focal_terms::<F>();
        let overlap: Vec<ClassCoefficients<F>> = c
            .overlap
            .iter()
            .map(|&d| ClassCoefficients::new(d))
            .collect();
        let chunks = self.layout().chunks(rows, len);
        let items: Vec<(&Chunk, Vec<&mut [F]>)> = chunks
            .iter()
            .zip(class_slices(out, &chunks, classes, len))
            .collect();
        parallel::map_items(items, |(chunk, mut out)| {
            let n = chunk.row;
            let pixels = pixel_range(chunk, len);
            let overlap = &overlap[n * classes..(n + 1) * classes];
            let terms: Vec<(F, FocalTerm<'_, F>)> = focal
                .iter()
                .zip(&c.focal)
                .map(|((gamma, weights), factors)| {
                    (
                        F::from_f64(factors[n]),
                        FocalTerm {
                            gamma: *gamma,
                            weights,
                            softmax: self.activation == ClassMode::Softmax,
                        },
                    )
                })
                .collect();
            let image = self.image(inputs, n);
            let coefficients = ImageCoefficients {
                overlap,
                any_overlap: c.overlap[n * classes..(n + 1) * classes]
                    .iter()
                    .flatten()
                    .any(|&v| v != 0.0),
                focal: &terms,
            };
            with_scratch(|s: &mut Scratch<F>| {
                s.prepare(classes, self.layout().block());
                widest(
                    #[inline(always)]
                    || {
                        let mut sums = vec![0.0; if focal_values { terms.len() } else { 0 }];
                        for q in pixels.clone().step_by(s.block) {
                            let nb = s.block.min(pixels.end - q);
                            let block = image.block(q, nb);
                            block.probabilities(!terms.is_empty(), s);
                            for (sum, (_, term)) in sums.iter_mut().zip(&terms) {
                                *sum += block.focal_sum(*term, s);
                            }
                            block.gradient(
                                &coefficients,
                                accumulate,
                                &mut out,
                                q - pixels.start,
                                s,
                            );
                        }
                        sums
                    },
                )
            })
        })
    }

    /// Image `image` of `inputs`, as its blocks read it.
    fn image<'a, F: Real>(&self, inputs: Inputs<'a, F>, image: usize) -> Image<'a, F> {
        let size = self.classes * inputs.len;
        Image {
            x: &inputs.x[image * size..(image + 1) * size],
            targets: self.layout().image_targets(inputs.y, image, inputs.len),
            weights: inputs
                .y
                .weights
                .map(|w| &w[image * inputs.len..(image + 1) * inputs.len]),
            len: inputs.len,
            classes: self.classes,
            activation: self.block_activation(),
            from_logits: self.from_logits,
        }
    }

    /// The kernel's values from each head's.
    fn combine(&self, head_values: &[Vec<f64>], rows: usize) -> Vec<f64> {
        if self.per_image {
            let mut total = vec![0.0; rows];
            for (head, v) in self.heads.iter().zip(head_values) {
                for (t, v) in total.iter_mut().zip(v) {
                    *t += head.weight * v;
                }
            }
            return total;
        }
        let factors = self.reduction_factors(rows);
        vec![
            head_values
                .iter()
                .zip(&factors)
                .map(|(v, f)| f * v.iter().sum::<f64>())
                .sum(),
        ]
    }
}
