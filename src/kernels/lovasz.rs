//! Lovász-sigmoid and Lovász hinge: per problem, the errors, one stable descending sort (an
//! LSD radix sort on the f32 bit patterns, which keeps equal errors in ascending pixel order),
//! then one pass over the sorted pixels computing the Lovász weights, the value and the
//! gradient together. Problems (images) run in parallel.

use super::math::Real;
use super::parallel::{self, Chunk};

/// The per-pixel errors whose Lovász extension is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Errors {
    /// `|y - p|`, `p = sigmoid(x)` (or `x` itself when `!from_logits`).
    Sigmoid { from_logits: bool },
    /// `relu(1 - x (2y - 1))`.
    Hinge,
}

/// The Lovász loss of each problem (each image, or the whole batch when `!per_image`); when
/// `grad`, overwrites `x` with `d loss_problem / d x`. `y` must hold 0/1 labels.
pub(crate) fn lovasz<F: Real>(
    x: &mut [F],
    y: &[F],
    rows: usize,
    per_image: bool,
    errors: Errors,
    grad: bool,
) -> Vec<f64> {
    let (problems, len) = if per_image {
        (rows, x.len() / rows)
    } else {
        (1, x.len())
    };
    let chunks: Vec<Chunk> = (0..problems)
        .map(|row| Chunk {
            row,
            range: row * len..(row + 1) * len,
        })
        .collect();
    parallel::map_mut(&chunks, x, |c, xs| {
        problem(xs, &y[c.range.clone()], errors, grad)
    })
}

/// One problem: the value; when `grad`, `x` is overwritten with the gradient.
fn problem<F: Real>(x: &mut [F], y: &[F], errors: Errors, grad: bool) -> f64 {
    // One pass computes each error and, when needed, replaces x_i by d e_i / d x_i, so the
    // pass over the sorted pixels only scales it (no second sigmoid per pixel).
    let e: Vec<F> = if grad {
        x.iter_mut()
            .zip(y)
            .map(|(xi, &yi)| {
                let (error, derivative) = error_and_derivative(*xi, yi, errors);
                *xi = derivative;
                error
            })
            .collect()
    } else {
        x.iter()
            .zip(y)
            .map(|(&xi, &yi)| error_and_derivative(xi, yi, errors).0)
            .collect()
    };
    let order = descending_order(&e);

    let total: f64 = y.iter().map(|&v| v.to_f64()).sum();
    let (mut cum_fg, mut cum_bg, mut previous, mut value) = (0.0, 0.0, 0.0, 0.0);
    for &i in &order {
        let i = i as usize;
        let label = y[i].to_f64();
        cum_fg += label;
        cum_bg += 1.0 - label;
        // lovasz_grad: J_k = 1 - (G - cumsum(g))/(G + cumsum(1 - g)), weight J_k - J_(k-1).
        let jaccard = 1.0 - (total - cum_fg) / (total + cum_bg);
        let weight = jaccard - previous;
        previous = jaccard;
        value += e[i].to_f64() * weight;
        if grad {
            x[i] = F::from_f64(weight) * x[i];
        }
    }
    value
}

/// The error `e_i` and `d e_i / d x_i` (0 where the error has a kink at 0, as burn's `abs` and
/// `relu` backward).
#[inline(always)]
fn error_and_derivative<F: Real>(x: F, y: F, errors: Errors) -> (F, F) {
    match errors {
        Errors::Sigmoid { from_logits } => {
            let p = probability(x, from_logits);
            // `+ 0` turns a -0 into +0, so its bit pattern sorts as zero.
            let error = (y - p).abs() + F::ZERO;
            let dp = if from_logits {
                p * (F::ONE - p)
            } else {
                F::ONE
            };
            let derivative = if p > y {
                dp
            } else if p < y {
                -dp
            } else {
                F::ZERO
            };
            (error, derivative)
        }
        Errors::Hinge => {
            let s = y + y - F::ONE;
            let margin = F::ONE - x * s;
            let derivative = if margin > F::ZERO { -s } else { F::ZERO };
            (margin.max(F::ZERO) + F::ZERO, derivative)
        }
    }
}

/// `sigmoid(x)` computed exactly as burn's flex backend does (the standard `exp`, the same
/// divisions), so that the errors, and with them the sort order among nearly equal errors,
/// are the device path's. The sort dominates this kernel, so the scalar `exp` costs little.
#[inline(always)]
fn probability<F: Real>(x: F, from_logits: bool) -> F {
    if !from_logits {
        x
    } else if x >= F::ZERO {
        F::ONE / (F::ONE + (-x).exp_std())
    } else {
        let e = x.exp_std();
        e / (F::ONE + e)
    }
}

/// Pixel indices by decreasing error, equal errors in ascending pixel order.
fn descending_order<F: Real>(e: &[F]) -> Vec<u32> {
    match F::sort_key_bits(e) {
        Some(bits) => radix_descending(&bits),
        None => {
            let mut order: Vec<u32> = (0..e.len() as u32).collect();
            // Stable: equal errors keep ascending pixel order.
            order.sort_by(|&a, &b| e[b as usize].total_cmp_f(e[a as usize]));
            order
        }
    }
}

/// Stable LSD radix sort of indices by decreasing `bits` (non-negative f32 bit patterns, which
/// order like the floats). Sorts `(!bits << 32) | index` on the top 32 bits in three 11-bit
/// passes, skipping any pass whose digit is the same for every key.
fn radix_descending(bits: &[u32]) -> Vec<u32> {
    const DIGIT: u32 = 11;
    const BUCKETS: usize = 1 << DIGIT;
    let mut keys: Vec<u64> = bits
        .iter()
        .enumerate()
        .map(|(i, &b)| (u64::from(!b) << 32) | i as u64)
        .collect();
    let mut counts = vec![[0usize; BUCKETS]; 3];
    let digit =
        |k: u64, pass: usize| ((k >> (32 + DIGIT as usize * pass)) as usize) & (BUCKETS - 1);
    for &k in &keys {
        for (pass, c) in counts.iter_mut().enumerate() {
            c[digit(k, pass)] += 1;
        }
    }
    let mut buffer = vec![0u64; keys.len()];
    for (pass, c) in counts.iter().enumerate() {
        if c.contains(&keys.len()) {
            continue;
        }
        let mut start = [0usize; BUCKETS];
        let mut sum = 0;
        for (s, &n) in start.iter_mut().zip(c) {
            *s = sum;
            sum += n;
        }
        for &k in &keys {
            let d = digit(k, pass);
            buffer[start[d]] = k;
            start[d] += 1;
        }
        std::mem::swap(&mut keys, &mut buffer);
    }
    keys.into_iter().map(|k| k as u32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radix_order_is_descending_and_stable() {
        let values = [0.5_f32, 0.0, 2.0, 0.5, 1e-30, 7.0, 0.0, 2.0, 3e30];
        let bits: Vec<u32> = values.iter().map(|v| v.to_bits()).collect();
        let order = radix_descending(&bits);
        assert_eq!(order, vec![8, 5, 2, 7, 0, 3, 4, 1, 6]);
        let f64_order = descending_order(&values.map(f64::from));
        assert_eq!(f64_order, order);
    }
}
