//! The binary clDice loss: the soft skeletons of the prediction and the target, the loss per
//! image, and its gradient through the skeleton, per image on one thread, in place.
//!
//! The burn-operations path allocates and records every pool of the skeleton (about 30 per
//! skeleton) in the autodiff graph; here the skeleton is a few passes over planes of one image
//! that stay in cache, and its backward pass replays them in reverse (the "tape" keeps the
//! eroded, opened and skeleton planes of each step; the pools' argmax are found again).

use crate::cpu::math::{Real, sigmoid_from};
use crate::cpu::parallel;
use crate::engine::{Gradient, HostFloat, Targets, TypedKernel};
use crate::error::SegLossError;
use crate::kernels::check_unit_targets;

/// The options of the clDice loss, as the kernel sees them, with the images' spatial shape.
#[derive(Clone, Debug)]
pub(crate) struct ClDiceParams {
    pub spatial: Vec<usize>,
    pub iterations: usize,
    pub smooth_nr: f64,
    pub smooth_dr: f64,
    pub smooth: f64,
    pub from_logits: bool,
}

impl TypedKernel for ClDiceParams {
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
        cl_dice(x, (y.values()?, y.weights), rows, self, grad)
    }
}

/// The clDice loss of each of the `rows` images of `x` and `y` (formula in
/// [`crate::losses::cl_dice`]), every sum weighted by the pixel weights `w` when given; writes
/// `d loss_row / d x` into `grad` when given. A target outside `[0, 1]` is an error.
pub(crate) fn cl_dice<F: Real>(
    x: &[F],
    (y, w): (&[F], Option<&[F]>),
    rows: usize,
    params: &ClDiceParams,
    grad: Option<Gradient<'_, F>>,
) -> Result<Vec<f64>, SegLossError> {
    let len = x.len() / rows;
    let grid = Grid::new(&params.spatial);
    let (out, scale, accumulate) = Gradient::parts(grad);
    let per_row = parallel::map_with(&parallel::rows(rows, len), out, |c, out| {
        let r = c.range.clone();
        let image = Image {
            x: &x[r.clone()],
            y: &y[r.clone()],
            w: w.map(|w| &w[r]),
            grid: &grid,
            params,
        };
        image.loss(out.map(|out| (out, F::from_f64(scale), accumulate)))
    });
    check_unit_targets(per_row.iter().any(|(_, outside)| *outside), y)?;
    Ok(per_row.into_iter().map(|(loss, _)| loss).collect())
}

/// One image and what its loss needs.
struct Image<'a, F> {
    x: &'a [F],
    y: &'a [F],
    w: Option<&'a [F]>,
    grid: &'a Grid,
    params: &'a ClDiceParams,
}

impl<F: Real> Image<'_, F> {
    /// The image's loss and whether a target lies outside `[0, 1]`; with `out`, writes (or
    /// adds) `scale * d loss / d x` into it.
    fn loss(&self, out: Option<(&mut [F], F, bool)>) -> (f64, bool) {
        let p: Vec<F> = self.x.iter().map(|&v| self.probability(v)).collect();
        let outside = self.y.iter().any(|&v| v < F::ZERO || v > F::ONE);
        let iterations = self.params.iterations;
        let target_skeleton = Skeleton::of(self.y, self.grid, iterations, false).skeleton;
        let predicted = Skeleton::of(&p, self.grid, iterations, out.is_some());
        // `sum(w a b)`, the factors that are given.
        let sum = |a: &[F], b: Option<&[F]>| -> f64 {
            (0..a.len())
                .map(|i| {
                    let v = a[i] * b.map_or(F::ONE, |b| b[i]);
                    self.w.map_or(v, |w| v * w[i]).to_f64()
                })
                .sum()
        };
        let weight = |i: usize| self.w.map_or(F::ONE, |w| w[i]);
        let s = Statistics {
            skeleton_in_target: sum(&predicted.skeleton, Some(self.y)),
            skeleton: sum(&predicted.skeleton, None),
            target_skeleton_covered: sum(&target_skeleton, Some(&p)),
            target_skeleton: sum(&target_skeleton, None),
        };
        let scored = s.score(self.params);
        if let Some((out, scale, accumulate)) = out {
            // d loss / d S(p) per pixel, then through the skeleton.
            let (d_in_target, d_size) = (
                F::from_f64(scored.d_skeleton_in_target),
                F::from_f64(scored.d_skeleton),
            );
            let upstream: Vec<F> = (0..self.y.len())
                .map(|i| (d_in_target * self.y[i] + d_size) * weight(i))
                .collect();
            let through = predicted.backward(&p, upstream, self.grid);
            let d_covered = F::from_f64(scored.d_target_skeleton_covered);
            for i in 0..out.len() {
                let d_p = through[i] + d_covered * target_skeleton[i] * weight(i);
                let d_x = if self.params.from_logits {
                    d_p * p[i] * (F::ONE - p[i])
                } else {
                    d_p
                };
                out[i] = if accumulate {
                    out[i] + scale * d_x
                } else {
                    scale * d_x
                };
            }
        }
        (scored.loss, outside)
    }

    fn probability(&self, x: F) -> F {
        if self.params.from_logits {
            sigmoid_from(x, (-x.abs()).exp_nonpositive())
        } else {
            x
        }
    }
}

/// The four sums of the clDice formula.
struct Statistics {
    /// `sum(S(p) y)`.
    skeleton_in_target: f64,
    /// `sum(S(p))`.
    skeleton: f64,
    /// `sum(S(y) p)`.
    target_skeleton_covered: f64,
    /// `sum(S(y))`.
    target_skeleton: f64,
}

/// An image's loss and its derivatives with respect to the sums that depend on `p`.
struct Scored {
    loss: f64,
    d_skeleton_in_target: f64,
    d_skeleton: f64,
    d_target_skeleton_covered: f64,
}

impl Statistics {
    /// `1 - 2 T_prec T_sens / (T_prec + T_sens + smooth)` and its derivatives.
    fn score(&self, params: &ClDiceParams) -> Scored {
        let precision_dr = self.skeleton + params.smooth_dr;
        let sensitivity_dr = self.target_skeleton + params.smooth_dr;
        let precision = (self.skeleton_in_target + params.smooth_nr) / precision_dr;
        let sensitivity = (self.target_skeleton_covered + params.smooth_nr) / sensitivity_dr;
        let denominator = precision + sensitivity + params.smooth;
        let harmonic = 2.0 * precision * sensitivity / denominator;
        let d2 = denominator * denominator;
        let d_precision = 2.0 * sensitivity * (sensitivity + params.smooth) / d2;
        let d_sensitivity = 2.0 * precision * (precision + params.smooth) / d2;
        Scored {
            loss: 1.0 - harmonic,
            d_skeleton_in_target: -d_precision / precision_dr,
            d_skeleton: d_precision * precision / precision_dr,
            d_target_skeleton_covered: -d_sensitivity / sensitivity_dr,
        }
    }
}

/// The spatial shape of an image, and each axis as `(outer, length, inner)`: the image viewed
/// as `[outer, length, inner]` with that axis in the middle.
struct Grid {
    axes: Vec<(usize, usize, usize)>,
}

impl Grid {
    fn new(spatial: &[usize]) -> Self {
        let axes = (0..spatial.len())
            .map(|a| {
                (
                    spatial[..a].iter().product(),
                    spatial[a],
                    spatial[a + 1..].iter().product(),
                )
            })
            .collect();
        Grid { axes }
    }
}

/// The soft skeleton of one image (MONAI's `soft_skel`, see `crate::loss::skeleton`), with
/// the planes its backward pass needs when taped: for each step `k`, the eroded image `e_k`
/// (the next step's image), its opening `o_k` and the skeleton `s_k` after the step.
struct Skeleton<F> {
    skeleton: Vec<F>,
    eroded: Vec<Vec<F>>,
    opened: Vec<Vec<F>>,
    steps: Vec<Vec<F>>,
}

impl<F: Real> Skeleton<F> {
    fn of(image: &[F], grid: &Grid, iterations: usize, tape: bool) -> Self {
        let mut taped = Skeleton {
            skeleton: Vec::new(),
            eroded: Vec::new(),
            opened: Vec::new(),
            steps: Vec::new(),
        };
        let mut current = image.to_vec();
        let mut skeleton = vec![F::ZERO; image.len()];
        for step in 0..=iterations {
            let eroded = erode(&current, grid);
            let opened = dilate(&eroded, grid);
            for ((s, &v), &o) in skeleton.iter_mut().zip(&current).zip(&opened) {
                let delta = relu(v - o);
                *s = if step == 0 {
                    delta
                } else {
                    *s + relu(delta - *s * delta)
                };
            }
            if tape {
                taped.opened.push(opened);
                taped.steps.push(skeleton.clone());
                taped.eroded.push(eroded.clone());
            }
            current = eroded;
        }
        taped.skeleton = skeleton;
        taped
    }

    /// `d loss / d image` from `upstream = d loss / d skeleton`, through the taped steps in
    /// reverse (`image` is the image the skeleton was taken of).
    fn backward(&self, image: &[F], upstream: Vec<F>, grid: &Grid) -> Vec<F> {
        let len = image.len();
        let mut d_skeleton = upstream;
        // d loss / d (the next step's image, e_k), from the steps after k.
        let mut d_next = vec![F::ZERO; len];
        let mut d_difference = vec![F::ZERO; len];
        for step in (0..self.steps.len()).rev() {
            let current: &[F] = if step == 0 {
                image
            } else {
                &self.eroded[step - 1]
            };
            let opened = &self.opened[step];
            for i in 0..len {
                let difference = current[i] - opened[i];
                let d_delta = if step == 0 {
                    d_skeleton[i]
                } else {
                    // s_k = s + relu(delta - s delta), s = s_(k-1).
                    let s = self.steps[step - 1][i];
                    let delta = relu(difference);
                    let through = delta - s * delta > F::ZERO;
                    let g = d_skeleton[i];
                    if through {
                        d_skeleton[i] = g * (F::ONE - delta);
                        g * (F::ONE - s)
                    } else {
                        F::ZERO
                    }
                };
                d_difference[i] = if difference > F::ZERO {
                    d_delta
                } else {
                    F::ZERO
                };
            }
            // difference = current - dilate(e_k): -d_difference flows into e_k through the
            // dilation, d_difference into `current` directly, and e_k = erode(current).
            let mut d_eroded = std::mem::replace(&mut d_next, vec![F::ZERO; len]);
            let negated: Vec<F> = d_difference.iter().map(|&g| -g).collect();
            dilate_backward(&self.eroded[step], &negated, &mut d_eroded, grid);
            let mut d_current = d_difference.clone();
            erode_backward(current, &d_eroded, &mut d_current, grid);
            d_next = d_current;
        }
        d_next
    }
}

fn relu<F: Real>(v: F) -> F {
    if v > F::ZERO { v } else { F::ZERO }
}

/// `out[i] = pick(src[i - s], src[i], src[i + s])` along `axis` (stride `s`), fewer at the
/// border; `pick` keeps the first argument on ties.
fn extreme_along<F: Real>(
    src: &[F],
    out: &mut [F],
    (outer, length, inner): (usize, usize, usize),
    pick: impl Fn(F, F) -> F + Copy,
) {
    out.copy_from_slice(src);
    let line = length * inner;
    for o in 0..outer {
        let (src, out) = (&src[o * line..][..line], &mut out[o * line..][..line]);
        // Neighbours before: out[i] vs src[i - inner]; after: out[i] vs src[i + inner].
        for (v, &before) in out[inner..].iter_mut().zip(&src[..line - inner]) {
            *v = pick(*v, before);
        }
        for (v, &after) in out[..line - inner].iter_mut().zip(&src[inner..]) {
            *v = pick(*v, after);
        }
    }
}

fn smaller<F: Real>(a: F, b: F) -> F {
    if b < a { b } else { a }
}

fn larger<F: Real>(a: F, b: F) -> F {
    if b > a { b } else { a }
}

/// The minimum over each pixel's axis-aligned neighbours (MONAI's `soft_erode`).
fn erode<F: Real>(image: &[F], grid: &Grid) -> Vec<F> {
    let mut out = image.to_vec();
    let mut along = vec![F::ZERO; image.len()];
    for &axis in &grid.axes {
        extreme_along(image, &mut along, axis, smaller);
        for (o, &a) in out.iter_mut().zip(&along) {
            *o = smaller(*o, a);
        }
    }
    out
}

/// The maximum over each pixel's 3x3 (3x3x3, ...) box (MONAI's `soft_dilate`), one axis at a
/// time.
fn dilate<F: Real>(image: &[F], grid: &Grid) -> Vec<F> {
    let mut current = image.to_vec();
    let mut next = vec![F::ZERO; image.len()];
    for &axis in &grid.axes {
        extreme_along(&current, &mut next, axis, larger);
        std::mem::swap(&mut current, &mut next);
    }
    current
}

/// The offsets `-inner, 0, +inner` of pixel `i`'s neighbours along an axis that exist, in
/// torch's window order.
fn neighbours(i: usize, (_, length, inner): (usize, usize, usize)) -> impl Iterator<Item = usize> {
    let at = (i / inner) % length;
    let before = (at > 0).then(|| i - inner);
    let after = (at + 1 < length).then(|| i + inner);
    before.into_iter().chain(Some(i)).chain(after)
}

/// The first extreme of `values` at the neighbours of `i` along `axis` (`better(a, b)`: `a`
/// beats `b`), as torch's pools pick it: the first in window order.
fn arg_extreme<F: Real>(
    values: &[F],
    i: usize,
    axis: (usize, usize, usize),
    better: impl Fn(F, F) -> bool,
) -> usize {
    let mut best = None;
    for j in neighbours(i, axis) {
        best = match best {
            Some(b) if !better(values[j], values[b]) => Some(b),
            _ => Some(j),
        };
    }
    best.unwrap_or(i)
}

/// Adds `d loss / d image` of `erode(image)`, given `upstream = d loss / d erode(image)`, to
/// `out`: each pixel's gradient goes to the minimum of its axis's window, and, where the
/// windows of several axes tie, in halves as torch's nested `min` splits it.
fn erode_backward<F: Real>(image: &[F], upstream: &[F], out: &mut [F], grid: &Grid) {
    let half = F::from_f64(0.5);
    let mut share = vec![F::ZERO; grid.axes.len()];
    for (i, &g) in upstream.iter().enumerate() {
        if g == F::ZERO {
            continue;
        }
        let mut best = F::ZERO;
        for (a, &axis) in grid.axes.iter().enumerate() {
            let at = arg_extreme(image, i, axis, |u, v| u < v);
            let value = image[at];
            if a == 0 || value < best {
                share[..a].iter_mut().for_each(|s| *s = F::ZERO);
                share[a] = F::ONE;
                best = value;
            } else if value == best {
                share[..a].iter_mut().for_each(|s| *s = *s * half);
                share[a] = half;
            } else {
                share[a] = F::ZERO;
            }
        }
        for (a, &axis) in grid.axes.iter().enumerate() {
            if share[a] != F::ZERO {
                let at = arg_extreme(image, i, axis, |u, v| u < v);
                out[at] = out[at] + g * share[a];
            }
        }
    }
}

/// Adds `d loss / d image` of `dilate(image)`, given `upstream = d loss / d dilate(image)`,
/// to `out`: back through the per-axis maxima in reverse, each pixel's gradient going to the
/// maximum of its window.
fn dilate_backward<F: Real>(image: &[F], upstream: &[F], out: &mut [F], grid: &Grid) {
    // The inputs of each axis's pass: the image, then its maxima along the first axes.
    let mut inputs = vec![image.to_vec()];
    for &axis in &grid.axes[..grid.axes.len().saturating_sub(1)] {
        let mut next = vec![F::ZERO; image.len()];
        extreme_along(inputs.last().unwrap_or(&inputs[0]), &mut next, axis, larger);
        inputs.push(next);
    }
    let mut gradient = upstream.to_vec();
    for (a, &axis) in grid.axes.iter().enumerate().rev() {
        let input = &inputs[a];
        let mut previous = vec![F::ZERO; image.len()];
        for (i, &g) in gradient.iter().enumerate() {
            if g != F::ZERO {
                let at = arg_extreme(input, i, axis, |u, v| u > v);
                previous[at] = previous[at] + g;
            }
        }
        gradient = previous;
    }
    for (o, g) in out.iter_mut().zip(gradient) {
        *o = *o + g;
    }
}
