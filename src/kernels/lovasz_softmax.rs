//! Lovász-softmax on the host: the class probabilities of every pixel once (a softmax per
//! pixel block, as the other multiclass kernels), then one Lovász problem per class and image
//! (or per class over the batch) solved by the Lovász kernel's sort, then the softmax's
//! backward. No one-hot, no per-class tensor of burn operations before the sort.
//!
//! The first pass keeps each pixel's error per class, `|y_c - p_c|`, its sign set where the
//! pixel is of the class, in one buffer of the logits' size (the gradient buffer itself when
//! the loss writes a gradient alone): each problem makes its sort keys from its rows of that
//! buffer alone (error, pixel and label in one key: nothing else is kept per pixel, and the
//! targets are not read again), sorts and solves them, and writes `d loss / d p` back into
//! those rows; a last pass computes each block's probabilities again from the logits and turns
//! the rows into `d loss / d x`. f64 inputs (no radix keys) gather each problem and take the
//! comparison sort instead.

use crate::cpu::math::Real;
use crate::cpu::parallel;
use crate::cpu::scratch::{Buffers, bytes_of, with_scratch};
use crate::engine::validate::{TargetKind, check_values};
use crate::engine::{Gradient, HostFloat, Indices, Labels, Targets, TypedKernel};
use crate::error::SegLossError;
use crate::kernels::lovasz::{self, Errors};
use crate::kernels::multiclass::block::{Activation, Image, ImageTargets};
use crate::kernels::multiclass::layout::{ChunkView, ClassLayout, Inputs};
use crate::options::Reduction;

/// The classes each problem's loss averages over.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ClassSelection {
    /// Those present in the problem's targets.
    Present,
    /// Every class.
    All,
    /// `listed[c]`: the classes given.
    Listed(Vec<bool>),
}

/// The engine's view of [`lovasz_softmax`](crate::losses::lovasz_softmax).
#[derive(Clone, Debug)]
pub(crate) struct LovaszSoftmaxKernel {
    pub classes: usize,
    /// `true`: a softmax of logits; `false`: the inputs are probabilities.
    pub from_logits: bool,
    pub ignore_index: Option<i64>,
    /// One problem per image and class (`true`) or per class over the batch.
    pub per_image: bool,
    pub selection: ClassSelection,
    /// Applied by the kernel (one value out unless per image with [`Reduction::None`]).
    pub reduction: Reduction,
}

impl TypedKernel for LovaszSoftmaxKernel {
    fn per_image(&self) -> bool {
        self.per_image && self.reduction == Reduction::None
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
        let classes = self.classes;
        let inputs = self.layout().inputs(x, y, rows)?;
        let len = inputs.len;
        if let Labels::Values(values) = y.labels {
            check_values(values, TargetKind::Hard)?;
        }
        // The probabilities, then d loss / d p, in the gradient buffer when the loss writes it
        // alone, else in a buffer of their own.
        let (scale, accumulate) = grad
            .as_ref()
            .map_or((1.0, false), |g| (g.scale, g.accumulate));
        let with_gradient = grad.is_some();
        let mut own = Vec::new();
        let mut grad = grad;
        let buffer: &mut [F] = match grad.as_mut() {
            Some(g) if !g.accumulate => &mut *g.out,
            _ => {
                own.resize(x.len(), F::ZERO);
                &mut own
            }
        };
        self.signed_errors(inputs, buffer);
        let sums = self.target_sums(y, rows, len);
        let weights = y.weights;
        let problems = if self.per_image { rows } else { 1 };
        // The pixels of each (problem, class) pair labelled one `[R * C]`.
        let positives: Vec<f64> = (0..problems * classes)
            .map(|pair| {
                let (r, c) = (pair / classes, pair % classes);
                let of = |n: usize| sums[n * classes + c];
                if self.per_image {
                    of(r)
                } else {
                    (0..rows).map(of).sum()
                }
            })
            .collect();
        // m_rc: the classes each problem averages over.
        let masks: Vec<Vec<bool>> = (0..problems)
            .map(|r| {
                (0..classes)
                    .map(|c| match &self.selection {
                        // A NaN count (a NaN weight) is present: the NaN reaches the loss.
                        ClassSelection::Present => {
                            let count = positives[r * classes + c];
                            count > 0.0 || count.is_nan()
                        }
                        ClassSelection::All => true,
                        ClassSelection::Listed(listed) => listed[c],
                    })
                    .collect()
            })
            .collect();
        let counts: Vec<usize> = masks
            .iter()
            .map(|m| m.iter().filter(|&&b| b).count())
            .collect();
        // d output / d loss_r.
        let reduce = if self.per_image && self.reduction == Reduction::Mean {
            1.0 / rows as f64
        } else {
            1.0
        };
        let factor = with_gradient.then_some(scale * reduce);
        let pairs = Pairs {
            rows,
            len,
            positives: &positives,
            masks: &masks,
            counts: &counts,
        };
        let values = self.solve(&pairs, weights, factor, buffer);
        let losses: Vec<f64> = (0..problems)
            .map(|r| {
                let total: f64 = (0..classes)
                    .filter(|&c| masks[r][c])
                    .map(|c| values[r * classes + c])
                    .sum();
                if counts[r] > 0 {
                    total / counts[r] as f64
                } else {
                    0.0
                }
            })
            .collect();
        if let Some(grad) = grad {
            let own_buffer = (!own.is_empty()).then_some(&own[..]);
            self.backward(inputs, own_buffer, grad.out, accumulate);
        }
        Ok(if TypedKernel::per_image(self) {
            losses
        } else {
            vec![reduce * losses.iter().sum::<f64>()]
        })
    }
}

impl LovaszSoftmaxKernel {
    fn activation(&self) -> Activation {
        if self.from_logits {
            Activation::Softmax
        } else {
            Activation::Identity
        }
    }

    /// The class count and ignored index, as the passes walk the inputs.
    fn layout(&self) -> ClassLayout {
        ClassLayout {
            classes: self.classes,
            ignore_index: self.ignore_index,
        }
    }

    /// Writes every pixel's [`signed_error`](lovasz::signed_error) of each class into `buffer`
    /// `[N, C, P]`: the error `|y_c - p_c|` of its class probability (`p_c = 0` where ignored),
    /// negative where the pixel is of the class. The per-class problems read their labels from
    /// the sign and never read the targets again (a pass over the i64 targets per class cost
    /// more than the sign).
    fn signed_errors<F: Real>(&self, inputs: Inputs<'_, F>, buffer: &mut [F]) {
        let activation = self.activation();
        self.layout().run_chunks(
            inputs,
            Some(buffer),
            #[inline(always)]
            |view, s| {
                let ChunkView {
                    x,
                    targets,
                    pixels,
                    mut out,
                    ..
                } = view;
                let image = self.image(x, targets, inputs.len, activation);
                for q in pixels.clone().step_by(s.block) {
                    let nb = s.block.min(pixels.end - q);
                    let block = image.block(q, nb);
                    block.probabilities(false, s);
                    let at = q - pixels.start;
                    for (c, row) in out.iter_mut().enumerate() {
                        let y = block.class_targets(c, &s.ids, &mut s.y);
                        let p = &s.p[c * s.block..][..nb];
                        for ((e, &p), &y) in row[at..at + nb].iter_mut().zip(p).zip(y) {
                            *e = lovasz::signed_error(p, y);
                        }
                    }
                }
            },
        );
    }

    /// An image's logits `x` `[C, len]` and `targets`, as the blocks of a pass read them.
    fn image<'a, F>(
        &self,
        x: &'a [F],
        targets: ImageTargets<'a, F>,
        len: usize,
        activation: Activation,
    ) -> Image<'a, F> {
        Image {
            x,
            targets,
            weights: None,
            len,
            classes: self.classes,
            activation,
            from_logits: self.from_logits,
        }
    }

    /// Calls `f(start, ids)` with the class ids of image `n`'s pixels from `start` on, a block
    /// at a time.
    fn class_ids(&self, indices: Indices<'_>, n: usize, len: usize, f: impl FnMut(usize, &[u32])) {
        indices.class_id_blocks(n * len, len, self.classes, self.ignore_index, f);
    }

    /// `sum_i w_i y_ic` per image and class `[N * C]` (`w_i = 1` without pixel weights): the
    /// weighted count of each class, which decides the classes present.
    fn target_sums<F: Real>(&self, y: Targets<'_, F>, rows: usize, len: usize) -> Vec<f64> {
        let classes = self.classes;
        let mut sums = vec![0.0; rows * classes];
        let weight = |n: usize, i: usize| y.weights.map_or(1.0, |w| w[n * len + i].to_f64());
        match y.labels {
            Labels::Indices(indices) => {
                for n in 0..rows {
                    let image = &mut sums[n * classes..(n + 1) * classes];
                    self.class_ids(indices, n, len, |start, ids| {
                        for (i, &id) in ids.iter().enumerate() {
                            if let Some(sum) = image.get_mut(id as usize) {
                                *sum += weight(n, start + i);
                            }
                        }
                    });
                }
            }
            Labels::Values(v) => {
                for (k, (sum, row)) in sums.iter_mut().zip(v.chunks(len)).enumerate() {
                    let n = k / classes;
                    *sum = row
                        .iter()
                        .enumerate()
                        .map(|(i, &t)| t.to_f64() * weight(n, i))
                        .sum();
                }
            }
        }
        sums
    }

    /// Solves every (problem, class) pair in parallel and returns their values `[R * C]` (0
    /// for a class not averaged over); with `scale` (`d output / d loss`), overwrites each
    /// pair's rows of `buffer` with `d output / d p` (0 for a class not averaged over), and
    /// without it (no gradient asked for) computes the values alone. With pixel weights `w`
    /// (`[N, P]`) each pair is the Lovász problem of weighted counts, on the comparison sort of
    /// [`gathered`] (the labelled sort's pass reads nothing by pixel, and a weight would be).
    fn solve<F: Real>(
        &self,
        pairs: &Pairs<'_>,
        w: Option<&[F]>,
        scale: Option<f64>,
        buffer: &mut [F],
    ) -> Vec<f64> {
        let Pairs {
            rows,
            len,
            positives,
            masks,
            counts,
        } = *pairs;
        let classes = self.classes;
        // Each pair's rows: per image, its one row; for the batch, its row in every image.
        let mut rows_of: Vec<Vec<&mut [F]>> = (0..if self.per_image { rows } else { 1 } * classes)
            .map(|_| Vec::new())
            .collect();
        for (k, row) in buffer.chunks_mut(len).enumerate() {
            let (n, c) = (k / classes, k % classes);
            let pair = if self.per_image { n * classes + c } else { c };
            rows_of[pair].push(row);
        }
        let pairs: Vec<(usize, Vec<&mut [F]>)> = rows_of.into_iter().enumerate().collect();
        parallel::map_items(pairs, |(pair, mut rows_out)| {
            let (r, c) = (pair / classes, pair % classes);
            if !masks[r][c] {
                if scale.is_some() {
                    for row in &mut rows_out {
                        row.fill(F::ZERO);
                    }
                }
                return 0.0;
            }
            let factor = scale.map(|scale| scale / counts[r] as f64);
            // The pair's weights: its image's, or every image's in order (its rows' order).
            let w = w.map(|w| {
                if self.per_image {
                    &w[r * len..(r + 1) * len]
                } else {
                    w
                }
            });
            if w.is_some() || !lovasz::takes_labelled::<F>(rows_out.len() * len) {
                return gathered(&mut rows_out, w, factor);
            }
            // The f32 path: keys made from the rows, gradients written back into them.
            with_scratch(|s: &mut lovasz::Scratch<F>| {
                lovasz::labelled_problem(s, &mut rows_out, positives[pair], factor)
            })
        })
    }

    /// `d output / d x` from `d output / d p` (in `own` when given, else already in `out`):
    /// the softmax's backward, the probabilities computed again from the logits; written (or
    /// added) into `out`, 0 at ignored pixels.
    fn backward<F: Real>(
        &self,
        inputs: Inputs<'_, F>,
        own: Option<&[F]>,
        out: &mut [F],
        accumulate: bool,
    ) {
        let (classes, len) = (self.classes, inputs.len);
        if self.activation() == Activation::Identity {
            // d p / d x is the identity, and d loss / d p is 0 at ignored pixels already.
            if let Some(own) = own {
                for (o, &g) in out.iter_mut().zip(own) {
                    *o = if accumulate { *o + g } else { g };
                }
            }
            return;
        }
        let size = classes * len;
        self.layout().run_chunks(
            inputs,
            Some(out),
            #[inline(always)]
            |view, s| {
                let ChunkView {
                    image: n,
                    x,
                    targets,
                    pixels,
                    mut out,
                } = view;
                let image = self.image(x, targets, len, Activation::Softmax);
                for q in pixels.clone().step_by(s.block) {
                    let nb = s.block.min(pixels.end - q);
                    image.block(q, nb).probabilities(false, s);
                    let at = q - pixels.start;
                    let b = s.block;
                    for c in 0..classes {
                        let from = match own {
                            Some(own) => &own[n * size + c * len + q..][..nb],
                            None => &out[c][at..at + nb],
                        };
                        s.g[c * b..][..nb].copy_from_slice(from);
                    }
                    let dot = &mut s.wide[..nb];
                    dot.fill(F::ZERO);
                    for c in 0..classes {
                        let (gc, pc) = (&s.g[c * b..][..nb], &s.p[c * b..][..nb]);
                        for ((d, &g), &p) in dot.iter_mut().zip(gc).zip(pc) {
                            *d = *d + p * g;
                        }
                    }
                    for (c, row) in out.iter_mut().enumerate() {
                        let gc = &s.g[c * b..][..nb];
                        let pc = &s.p[c * b..][..nb];
                        let valid = &s.valid[..nb];
                        let oc = &mut row[at..at + nb];
                        for ((((o, &g), &p), &d), &v) in
                            oc.iter_mut().zip(gc).zip(pc).zip(dot.iter()).zip(valid)
                        {
                            let dx = p * (g - d) * v;
                            *o = if accumulate { *o + dx } else { dx };
                        }
                    }
                }
            },
        );
    }
}

/// The (problem, class) pairs of a call: one problem per image, or one over the batch, of
/// `rows` images of `len` pixels.
#[derive(Clone, Copy)]
struct Pairs<'a> {
    rows: usize,
    len: usize,
    /// The pixels of each pair labelled one `[R * C]`.
    positives: &'a [f64],
    /// `masks[r][c]`: whether problem `r` averages over class `c`.
    masks: &'a [Vec<bool>],
    /// The classes each problem averages over.
    counts: &'a [usize],
}

/// A pair on the comparison sort of [`lovasz::problem`] (f64, a problem past 2^31 pixels, or
/// pixel weights `w`, the pair's own in the order of its rows): its errors and labels (the
/// signs of its [`signed_error`](lovasz::signed_error)s) gathered contiguous, the gradient
/// (scaled by `factor`, when asked for) scattered back.
fn gathered<F: Real>(rows: &mut [&mut [F]], w: Option<&[F]>, factor: Option<f64>) -> f64 {
    with_scratch(|g: &mut Gathered<F>| {
        g.p.clear();
        g.y.clear();
        for row in rows.iter() {
            g.p.extend(row.iter().map(|&e| e.abs()));
            g.y.extend(row.iter().map(|&e| {
                // The sign bit, NaN's included (`to_f64` keeps it).
                if e.to_f64().is_sign_negative() {
                    F::ONE
                } else {
                    F::ZERO
                }
            }));
        }
        g.grad.clear();
        g.grad
            .resize(if factor.is_some() { g.p.len() } else { 0 }, F::ZERO);
        let grad = factor.map(|scale| Gradient {
            out: &mut g.grad[..],
            scale,
            accumulate: false,
        });
        let value = with_scratch(|s: &mut lovasz::Scratch<F>| {
            lovasz::problem((&g.p, &g.y, w), Errors::Given, grad, s)
        });
        if factor.is_some() {
            let len = g.p.len() / rows.len().max(1);
            for (row, part) in rows.iter_mut().zip(g.grad.chunks(len.max(1))) {
                row.copy_from_slice(part);
            }
        }
        value
    })
}

/// A pair's errors, labels and gradient, gathered contiguous (kept per thread).
struct Gathered<F> {
    p: Vec<F>,
    y: Vec<F>,
    grad: Vec<F>,
}

impl<F: 'static> Buffers for Gathered<F> {
    fn bytes(&self) -> usize {
        bytes_of(&self.p) + bytes_of(&self.y) + bytes_of(&self.grad)
    }
}

impl<F> Default for Gathered<F> {
    fn default() -> Self {
        Gathered {
            p: Vec::new(),
            y: Vec::new(),
            grad: Vec::new(),
        }
    }
}
