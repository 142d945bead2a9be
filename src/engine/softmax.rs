//! Softmax and log-softmax over one axis for the device path, each one node of burn-autodiff's
//! graph with a closed-form backward ([`crate::autodiff_node`]).
//!
//! burn 0.22's autodiff differentiates `softmax` through its decomposition (`x - max`, `exp`,
//! `sum`, `/`): half a dozen operations over the whole batch in two branches that meet again.
//! As one node, the backward is
//!
//! - softmax: `dx = p * (g - sum_c(p * g))`, with `p` the forward's output;
//! - log-softmax: `dx = g - exp(l) * sum_c(g)`, with `l` the forward's output;
//!
//! three or four elementwise operations and one reduction over the classes. The forward is
//! the inner backend's own `softmax` (which a backend may compute in one kernel, where the
//! autodiff backend decomposes it), so the values can differ from burn's autodiff `softmax` in
//! the last bits (1e-7 relative in f32, measured on flex; the f64 test allows 1e-12).

use burn::backend::Backend;
use burn::backend::tensor::FloatTensor;
use burn::tensor::Tensor;
use burn::tensor::activation;

use crate::engine::autodiff_node::{ClosedForm, apply};

/// Which of the two functions, and along which axis.
#[derive(Clone, Copy, Debug)]
enum ClassAxis {
    Softmax(usize),
    LogSoftmax(usize),
}

/// `softmax(x)` along `dim`, with a one-node backward on autodiff backends.
pub(crate) fn softmax<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    apply(ClassAxis::Softmax(dim), &x).unwrap_or_else(|| activation::softmax(x, dim))
}

/// `log_softmax(x)` along `dim`, with a one-node backward on autodiff backends.
pub(crate) fn log_softmax<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    apply(ClassAxis::LogSoftmax(dim), &x).unwrap_or_else(|| activation::log_softmax(x, dim))
}

impl ClosedForm for ClassAxis {
    /// The forward's output.
    type State<B: Backend> = FloatTensor<B>;

    fn forward<B: Backend>(self, x: FloatTensor<B>) -> (FloatTensor<B>, FloatTensor<B>) {
        let output = match self {
            ClassAxis::Softmax(dim) => B::softmax(x, dim),
            ClassAxis::LogSoftmax(dim) => B::log_softmax(x, dim),
        };
        (output.clone(), output)
    }

    fn backward<B: Backend>(self, output: FloatTensor<B>, g: FloatTensor<B>) -> FloatTensor<B> {
        match self {
            ClassAxis::Softmax(dim) => {
                // p * (g - sum(p * g)) = p * g - p * sum(p * g)
                let pg = B::float_mul(output.clone(), g);
                let total = B::float_sum_dim(pg.clone(), dim);
                B::float_sub(pg, B::float_mul(output, total))
            }
            ClassAxis::LogSoftmax(dim) => {
                let total = B::float_sum_dim(g.clone(), dim);
                B::float_sub(g, B::float_mul(B::float_exp(output), total))
            }
        }
    }
}

#[cfg(all(test, feature = "flex", feature = "ndarray"))]
mod tests {
    use burn::tensor::{DType, Device, Tensor, TensorData, activation};

    use super::{ClassAxis, log_softmax, softmax};
    use crate::engine::autodiff_node::apply;

    /// Logits `[2, 3, 4]` with a class axis of 3, a wide range and a tie.
    fn logits() -> Vec<f64> {
        (0..24)
            .map(|i| ((i * 7 % 11) as f64 - 5.0) * 0.9 + if i == 5 { 20.0 } else { 0.0 })
            .collect()
    }

    /// Every CPU backend under autodiff, with and without checkpointing.
    fn devices() -> Vec<(&'static str, Device)> {
        #[allow(deprecated)] // burn-ndarray is deprecated upstream; the crate still supports it.
        let backends = [("flex", Device::flex()), ("ndarray", Device::ndarray())];
        backends
            .into_iter()
            .flat_map(|(name, device)| {
                [
                    (name, device.clone().autodiff()),
                    (name, device.autodiff().gradient_checkpointing()),
                ]
            })
            .collect()
    }

    /// The node's values equal burn's, and its input gradient for an arbitrary upstream
    /// gradient (`sum(w * f(x))`) equals burn-autodiff's through the decomposition, to 1e-12
    /// of the largest entry in f64; the node is made on every backend (no silent fallback to
    /// burn's function).
    #[test]
    fn the_node_gives_burns_values_and_gradients() {
        let weights: Vec<f64> = (0..24).map(|i| (i as f64 * 0.37).sin()).collect();
        for (name, device) in devices() {
            for kind in [ClassAxis::Softmax(1), ClassAxis::LogSoftmax(1)] {
                let x = || {
                    Tensor::<3>::from_data(
                        TensorData::new(logits(), [2, 3, 4]),
                        (&device, DType::F64),
                    )
                    .require_grad()
                };
                let w = Tensor::<3>::from_data(
                    TensorData::new(weights.clone(), [2, 3, 4]),
                    (&device, DType::F64),
                );
                let ours = match kind {
                    ClassAxis::Softmax(_) => softmax::<3>,
                    ClassAxis::LogSoftmax(_) => log_softmax::<3>,
                };
                let burns = match kind {
                    ClassAxis::Softmax(_) => activation::softmax::<3>,
                    ClassAxis::LogSoftmax(_) => activation::log_softmax::<3>,
                };
                let (a, b) = (x(), x());
                assert!(apply(kind, &a).is_some(), "{name} {kind:?}: no node");
                let (fa, fb) = (ours(a.clone(), 1), burns(b.clone(), 1));
                let (ga, gb) = (
                    (fa.clone() * w.clone()).sum().backward(),
                    (fb.clone() * w.clone()).sum().backward(),
                );
                let close = |u: Tensor<3>, v: Tensor<3>, what: &str| {
                    let u: Vec<f64> = u.into_data().convert::<f64>().try_to_vec::<f64>().unwrap();
                    let v: Vec<f64> = v.into_data().convert::<f64>().try_to_vec::<f64>().unwrap();
                    // Relative to the largest entry: a gradient entry is a difference of
                    // terms of that size.
                    let scale = v.iter().fold(f64::MIN_POSITIVE, |m, q| m.max(q.abs()));
                    for (p, q) in u.iter().zip(&v) {
                        assert!(
                            (p - q).abs() <= 1e-12 * scale,
                            "{name} {kind:?} {what}: {p} vs {q}"
                        );
                    }
                };
                close(fa, fb, "values");
                close(a.grad(&ga).unwrap(), b.grad(&gb).unwrap(), "gradients");
            }
        }
    }
}
