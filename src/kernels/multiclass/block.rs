//! One block of pixels of one image, across all its classes: the class probabilities, the
//! statistics and focal terms of the first pass, and the gradient of the second. Every loop
//! runs over the block's pixels (contiguous in each class's row, class stride `len`), so the
//! reads are sequential and the loops vectorise; everything here is `#[inline(always)]`, to be
//! compiled into the SIMD copy [`lanes::widest`](crate::cpu::lanes::widest) runs.

use crate::cpu::lanes::block_sum;
use crate::cpu::math::{Real, sigmoid_from};
use crate::cpu::scratch::{Buffers, bytes_of};
use crate::engine::{IGNORED, Indices};
use crate::kernels::focal::Pixel;

use super::heads::{ABS, P, P2, PY, Stats, Y, Y2};

/// How the logits of a pixel become its class probabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Activation {
    /// A softmax over the classes.
    Softmax,
    /// A sigmoid per class.
    Sigmoid,
    /// None: the input holds probabilities.
    Identity,
}

/// The targets of one image: per-class values `[C, len]`, or the class ids of its pixels.
#[derive(Clone, Copy)]
pub(crate) enum ImageTargets<'a, F> {
    Values(&'a [F]),
    Indices {
        indices: Indices<'a>,
        /// Where the image's indices start.
        offset: usize,
        ignore: Option<i64>,
    },
}

/// The focal exponent, with the common integer ones computed by multiplication (the general
/// one as `exp(gamma ln u)`: a logarithm and an exponential per term).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Gamma<F> {
    Zero,
    One,
    Two,
    Other(F),
}

impl<F: Real> Gamma<F> {
    pub fn new(gamma: f64) -> Self {
        match gamma {
            0.0 => Gamma::Zero,
            1.0 => Gamma::One,
            2.0 => Gamma::Two,
            g => Gamma::Other(F::from_f64(g)),
        }
    }

    pub fn value(self) -> F {
        match self {
            Gamma::Zero => F::ZERO,
            Gamma::One => F::ONE,
            Gamma::Two => F::ONE + F::ONE,
            Gamma::Other(g) => g,
        }
    }
}

/// A focal head as the passes see it.
#[derive(Clone, Copy)]
pub(crate) struct FocalTerm<'a, F> {
    pub gamma: Gamma<F>,
    pub weights: &'a [F],
    /// How the logits become probabilities (softmax: the focal term of the true class;
    /// otherwise the binary focal term of each channel).
    pub softmax: bool,
}

/// A block's working buffers, made once per chunk (no allocation per pixel).
pub(crate) struct Scratch<F> {
    /// Pixels per block.
    pub block: usize,
    /// The probabilities `[C, block]`.
    pub p: Vec<F>,
    /// `[C, block]`: the derivative with respect to each probability, then each logit
    /// (second pass).
    pub g: Vec<F>,
    /// `[C, block]`: the focal derivative of each class (second pass, per-class targets).
    pub k: Vec<F>,
    /// `[block]`: a sum over the classes in the second pass.
    pub wide: Vec<F>,
    /// `[block]`: the softmax's running maximum.
    pub max: Vec<F>,
    /// `[block]`: the softmax's sum, then its reciprocal.
    pub sum: Vec<F>,
    /// `[block]`: `log(sum_c exp(x_c))`, for the focal terms of a softmax.
    pub log_sum: Vec<F>,
    /// `[block]`: 1 for a counted pixel, 0 for an ignored one.
    pub valid: Vec<F>,
    /// `[block]`: a class's targets built from the ids.
    pub y: Vec<F>,
    /// `[block]`: the class ids.
    pub ids: Vec<u32>,
    /// `[block]` each: the true class's probability, logit and weight.
    pub pt: Vec<F>,
    pub xt: Vec<F>,
    pub wt: Vec<F>,
}

impl<F: Real> Default for Scratch<F> {
    fn default() -> Self {
        Scratch {
            block: 0,
            p: Vec::new(),
            g: Vec::new(),
            k: Vec::new(),
            wide: Vec::new(),
            max: Vec::new(),
            sum: Vec::new(),
            log_sum: Vec::new(),
            valid: Vec::new(),
            y: Vec::new(),
            ids: Vec::new(),
            pt: Vec::new(),
            xt: Vec::new(),
            wt: Vec::new(),
        }
    }
}

impl<F: Real> Buffers for Scratch<F> {
    fn bytes(&self) -> usize {
        [
            &self.p,
            &self.g,
            &self.k,
            &self.wide,
            &self.max,
            &self.sum,
            &self.log_sum,
            &self.valid,
            &self.y,
            &self.pt,
            &self.xt,
            &self.wt,
        ]
        .into_iter()
        .map(bytes_of)
        .sum::<usize>()
            + bytes_of(&self.ids)
    }
}

impl<F: Real> Scratch<F> {
    /// Sizes the buffers for `classes` and blocks of `block` pixels (kept per thread between
    /// calls, [`with_scratch`](crate::cpu::scratch::with_scratch): every value is written
    /// before it is read, so growing is all there is to do).
    pub fn prepare(&mut self, classes: usize, block: usize) {
        self.block = block;
        let full = classes * block;
        grow(&mut self.p, full, F::ZERO);
        grow(&mut self.g, full, F::ZERO);
        grow(&mut self.k, full, F::ZERO);
        grow(&mut self.wide, block, F::ZERO);
        for v in [
            &mut self.max,
            &mut self.sum,
            &mut self.log_sum,
            &mut self.valid,
            &mut self.y,
            &mut self.pt,
            &mut self.xt,
            &mut self.wt,
        ] {
            grow(v, block, F::ZERO);
        }
        grow(&mut self.ids, block, 0);
    }
}

/// Grows `v` to at least `len` elements.
fn grow<T: Clone>(v: &mut Vec<T>, len: usize, value: T) {
    if v.len() < len {
        v.resize(len, value);
    }
}

/// The inputs of one image as a chunk's blocks share them: its logits (or probabilities), its
/// targets, the class count and how the inputs become probabilities.
#[derive(Clone, Copy)]
pub(crate) struct Image<'a, F> {
    /// The image `[C, len]`.
    pub x: &'a [F],
    pub targets: ImageTargets<'a, F>,
    /// The pixel weights of the image `[len]`, when the call has any.
    pub weights: Option<&'a [F]>,
    /// Pixels per image (the class stride of `x`).
    pub len: usize,
    pub classes: usize,
    pub activation: Activation,
    /// Whether `x` holds logits (the form of the focal terms).
    pub from_logits: bool,
}

impl<'a, F> Image<'a, F> {
    /// The block of `nb` pixels from pixel `q`.
    #[inline(always)]
    pub fn block(self, q: usize, nb: usize) -> Block<'a, F> {
        Block { image: self, q, nb }
    }
}

/// One block of pixels, `q..q + nb`, of an image: what the functions of a pass over it share.
#[derive(Clone, Copy)]
pub(crate) struct Block<'a, F> {
    pub image: Image<'a, F>,
    /// The block's first pixel within the image.
    pub q: usize,
    /// The block's pixels.
    pub nb: usize,
}

impl<'a, F: Real> Block<'a, F> {
    /// The block's class ids and counted mask (from index targets), then the probabilities of
    /// every class, 0 at ignored pixels; with `log_sum`, a softmax keeps `log(sum_c exp(x_c))`
    /// too. Returns the number of counted pixels. With pixel weights, `s.valid` then holds each
    /// pixel's weight (0 where ignored): every sum of the pass and the gradient's last step
    /// ([`write_gradient`](Self::write_gradient)) multiply by it, since every term of the loss
    /// is a sum over pixels and each pixel's share of the gradient carries its weight once.
    #[inline(always)]
    pub fn probabilities(&self, log_sum: bool, s: &mut Scratch<F>) -> f64 {
        let Block {
            image: Image {
                x, len, classes, ..
            },
            q,
            nb,
        } = *self;
        let b = s.block;
        let masked = self.counted(s);
        match self.image.activation {
            Activation::Softmax => self.softmax(log_sum, s),
            Activation::Sigmoid => {
                for c in 0..classes {
                    let xc = &x[c * len + q..][..nb];
                    let pc = &mut s.p[c * b..][..nb];
                    for (p, &v) in pc.iter_mut().zip(xc) {
                        *p = sigmoid_from(v, (-v.abs()).exp_nonpositive());
                    }
                }
            }
            Activation::Identity => {
                for c in 0..classes {
                    s.p[c * b..][..nb].copy_from_slice(&x[c * len + q..][..nb]);
                }
            }
        }
        let valid = &mut s.valid[..nb];
        if masked {
            for c in 0..classes {
                let pc = &mut s.p[c * b..][..nb];
                for (p, &v) in pc.iter_mut().zip(valid.iter()) {
                    *p = *p * v;
                }
            }
        }
        let counted = block_sum(valid);
        if let Some(w) = self.image.weights {
            for (v, &w) in valid.iter_mut().zip(&w[q..q + nb]) {
                *v = *v * w;
            }
        }
        counted
    }

    /// Whether the pixels carry weights (then in `s.valid`, after
    /// [`probabilities`](Self::probabilities)).
    #[inline(always)]
    pub fn weighted(&self) -> bool {
        self.image.weights.is_some()
    }

    /// The class ids of the block's pixels into `s.ids` (index targets), and the counted mask
    /// into `s.valid`: 1 for a counted pixel, 0 for an ignored one. Returns whether the mask
    /// may hold a 0.
    #[inline(always)]
    fn counted(&self, s: &mut Scratch<F>) -> bool {
        let (q, nb) = (self.q, self.nb);
        let valid = &mut s.valid[..nb];
        match self.image.targets {
            ImageTargets::Indices {
                indices,
                offset,
                ignore,
            } => {
                let ids = &mut s.ids[..nb];
                indices.class_ids(offset + q, self.image.classes, ignore, ids);
                for (v, &id) in valid.iter_mut().zip(ids.iter()) {
                    *v = if id == IGNORED { F::ZERO } else { F::ONE };
                }
                ignore.is_some()
            }
            ImageTargets::Values(_) => {
                valid.fill(F::ONE);
                false
            }
        }
    }

    /// The softmax over the classes of each pixel into `s.p`; with `log_sum`,
    /// `log(sum_c exp(x_c))` into `s.log_sum`.
    #[inline(always)]
    fn softmax(&self, log_sum: bool, s: &mut Scratch<F>) {
        let Block {
            image: Image {
                x, len, classes, ..
            },
            q,
            nb,
        } = *self;
        let b = s.block;
        let max = &mut s.max[..nb];
        max.copy_from_slice(&x[q..q + nb]);
        for c in 1..classes {
            let xc = &x[c * len + q..][..nb];
            for (m, &v) in max.iter_mut().zip(xc) {
                // A NaN logit leaves the maximum alone; its exp below is NaN, and so
                // is every probability of the pixel.
                *m = if v > *m { v } else { *m };
            }
        }
        let sum = &mut s.sum[..nb];
        sum.fill(F::ZERO);
        for c in 0..classes {
            let xc = &x[c * len + q..][..nb];
            let pc = &mut s.p[c * b..][..nb];
            for ((p, &v), (&m, t)) in pc.iter_mut().zip(xc).zip(max.iter().zip(sum.iter_mut())) {
                let e = (v - m).exp_nonpositive();
                *p = e;
                *t = *t + e;
            }
        }
        if log_sum {
            for ((l, &m), &t) in s.log_sum[..nb].iter_mut().zip(max.iter()).zip(sum.iter()) {
                *l = m + t.ln_positive();
            }
        }
        for t in sum.iter_mut() {
            *t = F::ONE / *t;
        }
        for c in 0..classes {
            let pc = &mut s.p[c * b..][..nb];
            for (p, &inv) in pc.iter_mut().zip(sum.iter()) {
                *p = *p * inv;
            }
        }
    }

    /// The targets of class `c` in the block: the image's own values, or 1 where the id (in
    /// `ids`) is `c`, built in `buffer`.
    #[inline(always)]
    pub fn class_targets<'s>(&self, c: usize, ids: &[u32], buffer: &'s mut [F]) -> &'s [F]
    where
        'a: 's,
    {
        let (len, q, nb) = (self.image.len, self.q, self.nb);
        match self.image.targets {
            ImageTargets::Values(y) => &y[c * len + q..][..nb],
            ImageTargets::Indices { .. } => {
                let buffer = &mut buffer[..nb];
                for (t, &id) in buffer.iter_mut().zip(&ids[..nb]) {
                    *t = if id == c as u32 { F::ONE } else { F::ZERO };
                }
                buffer
            }
        }
    }
}

/// Adds the block's statistics of class `c` into `stats`, each pixel's terms times its weight
/// in `w` when the pixels carry weights.
#[inline(always)]
pub(crate) fn add_statistics<F: Real>(
    p: &[F],
    y: &[F],
    w: Option<&[F]>,
    squares: bool,
    abs: bool,
    stats: &mut Stats,
) {
    if let Some(w) = w {
        add_weighted_statistics(p, y, w, squares, abs, stats);
        return;
    }
    // One sum per loop: a loop making several sums at once does not vectorise
    // (`benches/results/kernel_notes.md#one-sum-per-loop`).
    stats[PY] += sum_of(
        p,
        y,
        p,
        p,
        #[inline(always)]
        |p, y, _, _| p * y,
    );
    stats[P] += block_sum(p);
    stats[Y] += block_sum(y);
    if squares {
        stats[P2] += sum_of(
            p,
            p,
            p,
            p,
            #[inline(always)]
            |p, _, _, _| p * p,
        );
        stats[Y2] += sum_of(
            y,
            y,
            y,
            y,
            #[inline(always)]
            |y, _, _, _| y * y,
        );
    }
    if abs {
        stats[ABS] += sum_of(
            p,
            y,
            p,
            p,
            #[inline(always)]
            |p, y, _, _| (p - y).abs(),
        );
    }
}

/// [`add_statistics`] with pixel weights `w`.
#[inline(always)]
fn add_weighted_statistics<F: Real>(
    p: &[F],
    y: &[F],
    w: &[F],
    squares: bool,
    abs: bool,
    stats: &mut Stats,
) {
    stats[PY] += weighted_sum(
        p,
        y,
        w,
        #[inline(always)]
        |p, y| p * y,
    );
    stats[P] += weighted_sum(
        p,
        y,
        w,
        #[inline(always)]
        |p, _| p,
    );
    stats[Y] += weighted_sum(
        p,
        y,
        w,
        #[inline(always)]
        |_, y| y,
    );
    if squares {
        stats[P2] += weighted_sum(
            p,
            y,
            w,
            #[inline(always)]
            |p, _| p * p,
        );
        stats[Y2] += weighted_sum(
            p,
            y,
            w,
            #[inline(always)]
            |_, y| y * y,
        );
    }
    if abs {
        stats[ABS] += weighted_sum(
            p,
            y,
            w,
            #[inline(always)]
            |p, y| (p - y).abs(),
        );
    }
}

/// `sum_i f(p_i, y_i) w_i`, one vector loop as [`sum_of`].
#[inline(always)]
fn weighted_sum<F: Real>(p: &[F], y: &[F], w: &[F], f: impl Fn(F, F) -> F) -> f64 {
    sum_of(
        p,
        y,
        w,
        w,
        #[inline(always)]
        |p, y, w, _| f(p, y) * w,
    )
}

/// `(M, dM/dp)` of the focal modulation `M = max(1 - p, m)^gamma` (m = [`Real::MIN_PROB`],
/// the device path's clamp, whose derivative is 0 where it clamps); the device path computes
/// `exp(gamma ln max(1 - p, m))`, equal up to rounding.
#[inline(always)]
fn modulation<F: Real>(p: F, gamma: Gamma<F>) -> (F, F) {
    let u = F::ONE - p;
    let uc = u.max(F::MIN_PROB);
    let (m, dm) = match gamma {
        Gamma::Zero => (F::ONE, F::ZERO),
        Gamma::One => (uc, -F::ONE),
        Gamma::Two => (uc * uc, -(uc + uc)),
        Gamma::Other(g) => {
            let m = (g * uc.ln_positive()).exp_nonpositive();
            (m, -(g * m / uc))
        }
    };
    // `u < m` is false for NaN: a NaN probability keeps a NaN derivative.
    (m, if u < F::MIN_PROB { F::ZERO } else { dm })
}

/// The focal term `-M(p) l` of a class with probability `p` and log-probability `l` (from
/// logits `x - log_sum`; from probabilities `ln max(p, m)`), and its derivative: with respect
/// to the class's logit through the softmax's own factor (`k` in `d/dx_j = k [j = c] - p_j
/// k`), or with respect to the probability itself.
#[inline(always)]
fn softmax_focal<F: Real>(p: F, x: F, log_sum: F, gamma: Gamma<F>, from_logits: bool) -> (F, F) {
    if from_logits {
        let l = x - log_sum;
        if let Gamma::Zero = gamma {
            return (-l, -F::ONE);
        }
        let (m, dm) = modulation(p, gamma);
        // d(-M l)/dx_j = (delta_cj - p_j) (-(dM/dp) p l - M).
        (-(m * l), -(dm * p * l) - m)
    } else {
        let pc = p.max(F::MIN_PROB);
        let l = pc.ln_positive();
        let dl = if p < F::MIN_PROB {
            F::ZERO
        } else {
            F::ONE / pc
        };
        if let Gamma::Zero = gamma {
            return (-l, -dl);
        }
        let (m, dm) = modulation(pc, gamma);
        let dm = if p < F::MIN_PROB { F::ZERO } else { dm };
        (-(m * l), -(dm * l) - m * dl)
    }
}

impl<F: Real> Block<'_, F> {
    /// The block's focal sum `sum_i sum_c w_c y_ic t_ic` of one focal head (the first pass).
    #[inline(always)]
    pub fn focal_sum(&self, term: FocalTerm<'_, F>, s: &mut Scratch<F>) -> f64 {
        match (self.image.targets, term.softmax) {
            // Index targets with a softmax: the true class's term only (one term per pixel).
            (ImageTargets::Indices { .. }, true) => self.true_class_focal_sum(term, s),
            _ => self.class_focal_sum(term, s),
        }
    }

    /// [`focal_sum`](Self::focal_sum) of a softmax head with index targets: the true class's
    /// term of each pixel.
    #[inline(always)]
    fn true_class_focal_sum(&self, term: FocalTerm<'_, F>, s: &mut Scratch<F>) -> f64 {
        let (nb, from_logits) = (self.nb, self.image.from_logits);
        // The cross-entropy's value is w (log_sum - x): no probability.
        let need = if matches!(term.gamma, Gamma::Zero) && from_logits {
            Need::Logit
        } else {
            Need::All
        };
        self.true_class(term.weights, need, s);
        if self.weighted() {
            // The class weight times the pixel weight (the gradient's pass selects the class
            // weights again, and multiplies by the pixel weight last).
            for (wt, &v) in s.wt[..nb].iter_mut().zip(&s.valid[..nb]) {
                *wt = *wt * v;
            }
        }
        let (pt, xt, wt, ls) = (&s.pt[..nb], &s.xt[..nb], &s.wt[..nb], &s.log_sum[..nb]);
        if need == Need::Logit {
            // The same value as the general closure, with no branch on the options in the
            // loop, which kept it from vectorising
            // (`benches/results/kernel_notes.md#branch-free-cross-entropy`).
            return sum_of(
                xt,
                wt,
                ls,
                ls,
                #[inline(always)]
                |x, w, l, _| w * (l - x),
            );
        }
        sum_of(
            pt,
            xt,
            wt,
            ls,
            #[inline(always)]
            |p, x, w, l| w * softmax_focal(p, x, l, term.gamma, from_logits).0,
        )
    }

    /// [`focal_sum`](Self::focal_sum) class by class: a multilabel head, or a softmax head
    /// with per-class targets.
    #[inline(always)]
    fn class_focal_sum(&self, term: FocalTerm<'_, F>, s: &mut Scratch<F>) -> f64 {
        let Block {
            image:
                Image {
                    x,
                    len,
                    classes,
                    from_logits,
                    ..
                },
            q,
            nb,
        } = *self;
        let b = s.block;
        let mut total = 0.0;
        let pixel = multilabel_pixel(term.gamma, from_logits);
        for c in 0..classes {
            let w = term.weights[c];
            if w == F::ZERO {
                continue;
            }
            let (mut y, p) = (self.class_targets(c, &s.ids, &mut s.y), &s.p[c * b..][..nb]);
            if term.softmax && self.weighted() {
                // `y w` in `s.k` (free in this pass: the gradient's writes it before reading).
                let yw = &mut s.k[..nb];
                for ((t, &y), &v) in yw.iter_mut().zip(y).zip(&s.valid[..nb]) {
                    *t = y * v;
                }
                y = yw;
            }
            let xc = &x[c * len + q..][..nb];
            let ls = &s.log_sum[..nb];
            total += if term.softmax {
                sum_of(
                    p,
                    xc,
                    y,
                    ls,
                    #[inline(always)]
                    |p, x, y, l| w * y * softmax_focal(p, x, l, term.gamma, from_logits).0,
                )
            } else {
                // Ignored pixels (index targets) have no class, yet a binary term: masked.
                let v = &s.valid[..nb];
                sum_of(
                    xc,
                    y,
                    v,
                    v,
                    #[inline(always)]
                    |x, y, v, _| w * v * pixel.term_and_derivative(x, y, F::ONE).0,
                )
            };
        }
        total
    }

    /// The weight, logit and probability of each pixel's true class into `s.wt`, `s.xt`,
    /// `s.pt` (all 0 for a pixel of no class, or an ignored one): a select per class,
    /// vectorised over the block (linear in C, no gather). `Need` says which: the
    /// cross-entropy's gradient needs the weight only, its value the logit too.
    #[inline(always)]
    fn true_class(&self, weights: &[F], need: Need, s: &mut Scratch<F>) {
        let Block {
            image: Image {
                x, len, classes, ..
            },
            q,
            nb,
        } = *self;
        let b = s.block;
        let (pt, xt, wt) = (&mut s.pt[..nb], &mut s.xt[..nb], &mut s.wt[..nb]);
        pt.fill(F::ZERO);
        xt.fill(F::ZERO);
        wt.fill(F::ZERO);
        let ids = &s.ids[..nb];
        // One loop per case, each over indices with every array updated unconditionally: written
        // otherwise (iterators, or a loop per array) the selects compiled to a branch per pixel
        // (`benches/results/kernel_notes.md#true-class-selects`).
        for (c, &w) in weights.iter().enumerate().take(classes) {
            let (pc, xc) = (&s.p[c * b..][..nb], &x[c * len + q..][..nb]);
            let c = c as u32;
            match need {
                Need::Weight => {
                    for i in 0..nb {
                        wt[i] = if ids[i] == c { w } else { wt[i] };
                    }
                }
                Need::Logit => {
                    for i in 0..nb {
                        let own = ids[i] == c;
                        xt[i] = if own { xc[i] } else { xt[i] };
                        wt[i] = if own { w } else { wt[i] };
                    }
                }
                Need::All => {
                    for i in 0..nb {
                        let own = ids[i] == c;
                        pt[i] = if own { pc[i] } else { pt[i] };
                        xt[i] = if own { xc[i] } else { xt[i] };
                        wt[i] = if own { w } else { wt[i] };
                    }
                }
            }
        }
    }
}

/// What [`true_class`](Block::true_class) selects besides the weight.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Weight,
    Logit,
    All,
}

/// The binary focal term of a multilabel channel.
#[inline(always)]
fn multilabel_pixel<F: Real>(gamma: Gamma<F>, from_logits: bool) -> Pixel<F> {
    Pixel::new(crate::kernels::focal::FocalParams {
        gamma: gamma.value().to_f64(),
        alpha: None,
        from_logits,
    })
}

/// `dL/dp` of one class from its statistics' coefficients: with `a` the coefficient of
/// `sum(p y)`, `s` that of `sum|p - y|`, `b` of `sum(p)` and `q` of `sum(p^2)`,
/// `dL/dp = a y + s sign(p - y) + b + 2 q p`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClassCoefficients<F> {
    pub a: F,
    pub s: F,
    pub b: F,
    pub q: F,
}

impl<F: Real> ClassCoefficients<F> {
    /// From `[a, s, b, q]`.
    pub fn new(coefficients: [f64; 4]) -> Self {
        let [a, s, b, q] = coefficients.map(F::from_f64);
        ClassCoefficients { a, s, b, q }
    }

    /// `dL/dp` at probability `p` and target `y`.
    #[inline(always)]
    fn at(&self, p: F, y: F) -> F {
        // sign(p - y), 0 at p = y (as burn's `abs` backward).
        let sign = if p > y {
            self.s
        } else if p < y {
            -self.s
        } else {
            F::ZERO
        };
        self.a * y + sign + self.b + self.q * (p + p)
    }
}

/// The gradient coefficients of one image.
pub(crate) struct ImageCoefficients<'a, F> {
    /// `[C]`: the overlap losses' `dL/dp` per class.
    pub overlap: &'a [ClassCoefficients<F>],
    /// Whether any overlap coefficient is nonzero for some class.
    pub any_overlap: bool,
    /// Per focal head: its factor in this image, and the head.
    pub focal: &'a [(F, FocalTerm<'a, F>)],
}

impl<F: Real> Block<'_, F> {
    /// Writes (or adds) the block's gradient into `out[c][at..at + nb]` (`out[c]`: the chunk's
    /// part of class `c`'s row).
    ///
    /// In the input's float type, as the burn-operations path: the softmax's backward
    /// `p_c (g_c - sum_k p_k g_k)` cancels where the classes' derivatives are close, in either
    /// path (in f64 from f32 probabilities it came no closer to the exact gradient, at a cost:
    /// `benches/results/kernel_notes.md#gradient-in-the-input-float-type`).
    #[inline(always)]
    pub fn gradient(
        &self,
        coefficients: &ImageCoefficients<'_, F>,
        accumulate: bool,
        out: &mut [&mut [F]],
        at: usize,
        s: &mut Scratch<F>,
    ) {
        let activation = self.image.activation;
        let indexed = matches!(self.image.targets, ImageTargets::Indices { .. });
        let folded = activation == Activation::Softmax && indexed && !coefficients.focal.is_empty();
        self.overlap_derivatives(coefficients, folded, s);
        // Focal terms of a multilabel channel, or of a softmax class from probabilities, depend
        // on their own input only: added to g_c (before the sigmoid's backward for multilabel
        // logits, whose binary focal derivative is already with respect to the logit: added
        // after).
        let elementwise_focal = activation != Activation::Softmax;
        if activation == Activation::Identity {
            self.add_elementwise_focal(coefficients, s);
        }
        // Back through the activation: g_c = dL/dx_c.
        match activation {
            Activation::Softmax if !coefficients.any_overlap && !folded => {}
            Activation::Softmax => self.softmax_backward(coefficients, folded, s),
            Activation::Sigmoid => {
                self.sigmoid_backward(s);
                self.add_elementwise_focal(coefficients, s);
            }
            Activation::Identity => {}
        }
        if !elementwise_focal && !folded {
            for &(factor, term) in coefficients.focal {
                self.softmax_focal_gradient(factor, term, s);
            }
        }
        self.write_gradient(accumulate, out, at, s);
    }

    /// `g_c = dL/dp_c` from the overlap statistics' coefficients into `s.g` (not even zeroed
    /// where the softmax's backward, `folded`, writes every value without reading it).
    #[inline(always)]
    fn overlap_derivatives(
        &self,
        coefficients: &ImageCoefficients<'_, F>,
        folded: bool,
        s: &mut Scratch<F>,
    ) {
        let (b, nb) = (s.block, self.nb);
        for c in 0..self.image.classes {
            let k = coefficients.overlap[c];
            let gc = &mut s.g[c * b..][..nb];
            if !coefficients.any_overlap {
                if !folded {
                    gc.fill(F::ZERO);
                }
                continue;
            }
            let y = self.class_targets(c, &s.ids, &mut s.y);
            let pc = &s.p[c * b..][..nb];
            for ((g, &p), &y) in gc.iter_mut().zip(pc).zip(y) {
                *g = k.at(p, y);
            }
        }
    }

    /// The softmax's backward, `g_c = p_c (g_c - sum_k p_k g_k)`, with the focal terms of
    /// index targets folded in (`folded`): they give each pixel a factor k of its true class
    /// t (`d/dx_c = k [c = t] - p_c k`), so that
    /// `p_c (g_c - dot) + k [c = t] - p_c k = p_c (g_c - (dot + k)) + k [c = t]`.
    #[inline(always)]
    fn softmax_backward(
        &self,
        coefficients: &ImageCoefficients<'_, F>,
        folded: bool,
        s: &mut Scratch<F>,
    ) {
        let (b, nb) = (s.block, self.nb);
        let any_overlap = coefficients.any_overlap;
        // dot = sum_k p_k g_k, into `s.wide`.
        let dot = &mut s.wide[..nb];
        dot.fill(F::ZERO);
        if any_overlap {
            for c in 0..self.image.classes {
                let (gc, pc) = (&s.g[c * b..][..nb], &s.p[c * b..][..nb]);
                for ((d, &g), &p) in dot.iter_mut().zip(gc).zip(pc) {
                    *d = *d + p * g;
                }
            }
        }
        // k, into `s.sum`.
        s.sum[..nb].fill(F::ZERO);
        if folded {
            self.true_class_factors(coefficients.focal, s);
            for (d, &k) in s.wide[..nb].iter_mut().zip(&s.sum[..nb]) {
                *d = *d + k;
            }
        }
        let (dot, k, ids) = (&s.wide[..nb], &s.sum[..nb], &s.ids[..nb]);
        for c in 0..self.image.classes {
            let pc = &s.p[c * b..][..nb];
            let gc = &mut s.g[c * b..][..nb];
            let c = c as u32;
            if any_overlap {
                for i in 0..nb {
                    let own = if ids[i] == c { k[i] } else { F::ZERO };
                    gc[i] = pc[i] * (gc[i] - dot[i]) + own;
                }
            } else {
                // g = 0: `p (0 - dot) + own`, without reading g.
                for i in 0..nb {
                    let own = if ids[i] == c { k[i] } else { F::ZERO };
                    gc[i] = own - pc[i] * dot[i];
                }
            }
        }
    }

    /// Adds each softmax focal head's factor `k` of each pixel's true class (index targets)
    /// into `s.sum`: `factor w d`, `d` the derivative factor of [`softmax_focal`].
    #[inline(always)]
    fn true_class_factors(&self, focal: &[(F, FocalTerm<'_, F>)], s: &mut Scratch<F>) {
        let nb = self.nb;
        for &(factor, term) in focal {
            let need = if matches!(term.gamma, Gamma::Zero) {
                // The cross-entropy's derivative factor is -1 whatever the probability.
                Need::Weight
            } else {
                Need::All
            };
            self.true_class(term.weights, need, s);
            let (pt, xt, wt, ls) = (&s.pt[..nb], &s.xt[..nb], &s.wt[..nb], &s.log_sum[..nb]);
            // One loop per gamma, each with its gamma a constant: a branch on it in the
            // loop kept the loop scalar (`benches/results/kernel_notes.md#one-loop-per-gamma`).
            let k = &mut s.sum[..nb];
            let add = |k: &mut [F], gamma: Gamma<F>| {
                for ((((k, &p), &x), &w), &l) in k.iter_mut().zip(pt).zip(xt).zip(wt).zip(ls) {
                    let (_, d) = softmax_focal(p, x, l, gamma, true);
                    *k = *k + factor * (w * d);
                }
            };
            match term.gamma {
                // `softmax_focal`'s factor -1.
                Gamma::Zero => {
                    for (k, &w) in k.iter_mut().zip(wt) {
                        *k = *k - factor * w;
                    }
                }
                Gamma::One => add(k, Gamma::One),
                Gamma::Two => add(k, Gamma::Two),
                Gamma::Other(g) => add(k, Gamma::Other(g)),
            }
        }
    }

    /// The sigmoid's backward, `g_c = g_c p_c (1 - p_c)`.
    #[inline(always)]
    fn sigmoid_backward(&self, s: &mut Scratch<F>) {
        let (b, nb) = (s.block, self.nb);
        for c in 0..self.image.classes {
            let pc = &s.p[c * b..][..nb];
            let gc = &mut s.g[c * b..][..nb];
            for (g, &p) in gc.iter_mut().zip(pc) {
                *g = *g * (p * (F::ONE - p));
            }
        }
    }

    /// Writes (or adds) `s.g` into `out[c][at..at + nb]`: 0 at ignored pixels, times each
    /// pixel's weight with weights.
    #[inline(always)]
    fn write_gradient(&self, accumulate: bool, out: &mut [&mut [F]], at: usize, s: &Scratch<F>) {
        let (b, nb) = (s.block, self.nb);
        let valid = &s.valid[..nb];
        for (c, oc) in out.iter_mut().enumerate().take(self.image.classes) {
            let gc = &s.g[c * b..][..nb];
            let oc = &mut oc[at..at + nb];
            if accumulate {
                for ((o, &g), &v) in oc.iter_mut().zip(gc).zip(valid) {
                    *o = *o + g * v;
                }
            } else {
                for ((o, &g), &v) in oc.iter_mut().zip(gc).zip(valid) {
                    *o = g * v;
                }
            }
        }
    }

    /// Adds the derivatives of the elementwise focal terms (multilabel channels, or softmax
    /// classes from probabilities) into `g`: with respect to the logit for multilabel logits
    /// (the binary focal term's own derivative), with respect to the input otherwise.
    #[inline(always)]
    fn add_elementwise_focal(&self, coefficients: &ImageCoefficients<'_, F>, s: &mut Scratch<F>) {
        let Block {
            image:
                Image {
                    x,
                    len,
                    classes,
                    from_logits,
                    ..
                },
            q,
            nb,
        } = *self;
        let b = s.block;
        for &(factor, term) in coefficients.focal {
            let pixel = multilabel_pixel(term.gamma, from_logits);
            for c in 0..classes {
                let w = term.weights[c] * factor;
                if w == F::ZERO {
                    continue;
                }
                let y = self.class_targets(c, &s.ids, &mut s.y);
                let xc = &x[c * len + q..][..nb];
                let pc = &s.p[c * b..][..nb];
                let gc = &mut s.g[c * b..][..nb];
                for (((g, &x), &y), &p) in gc.iter_mut().zip(xc).zip(y).zip(pc) {
                    let d = if term.softmax {
                        // Softmax focal on probabilities: d/dp of the class's own term.
                        y * softmax_focal(p, x, F::ZERO, term.gamma, false).1
                    } else {
                        pixel.term_and_derivative(x, y, F::ONE).1
                    };
                    *g = *g + w * d;
                }
            }
        }
    }

    /// Adds a softmax focal head's logit gradient `factor (k_j - p_j sum_c k_c)` into `g` for
    /// per-class targets, `k_c` the weighted derivative factor of class `c` (index targets fold
    /// theirs into the softmax's backward, [`softmax_backward`](Self::softmax_backward)).
    #[inline(always)]
    fn softmax_focal_gradient(&self, factor: F, term: FocalTerm<'_, F>, s: &mut Scratch<F>) {
        let Block {
            image: Image {
                x, len, classes, ..
            },
            q,
            nb,
        } = *self;
        let b = s.block;
        let ksum = &mut s.wide[..nb];
        ksum.fill(F::ZERO);
        for c in 0..classes {
            let w = factor * term.weights[c];
            let y = self.class_targets(c, &s.ids, &mut s.y);
            let xc = &x[c * len + q..][..nb];
            let pc = &s.p[c * b..][..nb];
            let kc = &mut s.k[c * b..][..nb];
            let ls = &s.log_sum[..nb];
            for ((((k, t), &p), (&x, &y)), &l) in kc
                .iter_mut()
                .zip(ksum.iter_mut())
                .zip(pc)
                .zip(xc.iter().zip(y))
                .zip(ls)
            {
                *k = w * (y * softmax_focal(p, x, l, term.gamma, true).1);
                *t = *t + *k;
            }
        }
        for c in 0..classes {
            let pc = &s.p[c * b..][..nb];
            let kc = &s.k[c * b..][..nb];
            let gc = &mut s.g[c * b..][..nb];
            for (((g, &p), &k), &t) in gc.iter_mut().zip(pc).zip(kc).zip(ksum.iter()) {
                *g = *g + k - p * t;
            }
        }
    }
}

/// `sum_i f(a_i, b_i, c_i, d_i)` in f64 over 8 lanes: a fixed order of additions at every
/// SIMD level, one vector loop (unused arguments cost nothing).
#[inline(always)]
fn sum_of<F: Real>(a: &[F], b: &[F], c: &[F], d: &[F], f: impl Fn(F, F, F, F) -> F) -> f64 {
    let n = a.len().min(b.len()).min(c.len()).min(d.len());
    let (a_steps, a_rest) = a[..n].as_chunks::<8>();
    let (b_steps, b_rest) = b[..n].as_chunks::<8>();
    let (c_steps, c_rest) = c[..n].as_chunks::<8>();
    let (d_steps, d_rest) = d[..n].as_chunks::<8>();
    let mut lanes = [0.0_f64; 8];
    for (((a, b), c), d) in a_steps.iter().zip(b_steps).zip(c_steps).zip(d_steps) {
        for j in 0..8 {
            lanes[j] += f(a[j], b[j], c[j], d[j]).to_f64();
        }
    }
    let rest: f64 = a_rest
        .iter()
        .zip(b_rest)
        .zip(c_rest.iter().zip(d_rest))
        .map(|((&a, &b), (&c, &d))| f(a, b, c, d).to_f64())
        .sum();
    lanes.iter().sum::<f64>() + rest
}
