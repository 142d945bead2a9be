//! The sums over the pixels that the overlap losses take of the probabilities `p` (against
//! the constant targets `y`) on the device path, each one autodiff node with its derivative
//! written out ([`crate::autodiff_node`]):
//!
//! | sum | `d sum / d p_k` |
//! |---|---|
//! | `sum_k p_k y_k` | `y_k` |
//! | `sum_k abs(p_k - y_k)` | `sign(p_k - y_k)` (0 at `p_k = y_k`, as burn's `abs`) |
//! | `sum_k p_k` | `1` |
//! | `sum_k p_k^2` | `2 p_k` |
//!
//! Through burn's operations the backward of each sum is an `expand` of the incoming gradient,
//! a tensor of ones and a product, all over the batch; as a node it is one product, which
//! burn's fusion joins to the next elementwise operation of the backward.

use burn::backend::Backend;
use burn::backend::TensorMetadata;
use burn::backend::tensor::FloatTensor;
use burn::tensor::{Shape, Tensor};

use crate::autodiff_node::{ClosedForm, apply};

/// One of the sums, over the last axis.
#[derive(Clone, Copy, Debug)]
pub(crate) enum SoftSum {
    /// `sum p y`.
    Product,
    /// `sum |p - y|`.
    AbsDifference,
    /// `sum p`.
    Plain,
    /// `sum p^2`.
    Squares,
}

/// The sum `kind` of `p` (and `y`) over the last axis, kept as an axis of size 1.
pub(crate) fn soft_sum<const D: usize>(kind: SoftSum, p: &Tensor<D>, y: &Tensor<D>) -> Tensor<D> {
    let constants = match kind {
        SoftSum::Product | SoftSum::AbsDifference => std::slice::from_ref(y),
        SoftSum::Plain | SoftSum::Squares => &[],
    };
    apply(kind, p, constants).unwrap_or_else(|| {
        let p = p.clone();
        let terms = match kind {
            SoftSum::Product => p.mul(y.clone()),
            SoftSum::AbsDifference => p.sub(y.clone()).abs(),
            SoftSum::Plain => p,
            SoftSum::Squares => p.square(),
        };
        terms.sum_dim(D - 1)
    })
}

/// What the backward of a [`SoftSum`] needs.
#[derive(Clone, Debug)]
pub(crate) enum SoftSumState<B: Backend> {
    /// The factor `d sum / d p`, shaped like `p`.
    Factor(FloatTensor<B>),
    /// `p`'s shape: the factor is 1.
    Ones(Shape),
}

impl ClosedForm for SoftSum {
    type State<B: Backend> = SoftSumState<B>;

    fn forward<B: Backend>(
        self,
        p: FloatTensor<B>,
        constants: Vec<FloatTensor<B>>,
    ) -> (FloatTensor<B>, SoftSumState<B>) {
        let last = p.shape().num_dims() - 1;
        // `soft_sum` passes the targets exactly to the two sums that read them.
        let y = || {
            constants
                .first()
                .cloned()
                .expect("soft_sum passes the targets to the sums of p and y")
        };
        let (terms, state) = match self {
            SoftSum::Product => {
                let y = y();
                (B::float_mul(p, y.clone()), SoftSumState::Factor(y))
            }
            SoftSum::AbsDifference => {
                let difference = B::float_sub(p, y());
                let sign = B::float_sign(difference.clone());
                (B::float_abs(difference), SoftSumState::Factor(sign))
            }
            SoftSum::Plain => {
                let shape = p.shape();
                (p, SoftSumState::Ones(shape))
            }
            SoftSum::Squares => (
                B::float_mul(p.clone(), p.clone()),
                SoftSumState::Factor(B::float_mul_scalar(p, 2.0.into())),
            ),
        };
        (B::float_sum_dim(terms, last), state)
    }

    fn backward<B: Backend>(self, state: SoftSumState<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
        match state {
            SoftSumState::Factor(factor) => B::float_mul(factor, grad),
            SoftSumState::Ones(shape) => B::float_expand(grad, shape),
        }
    }
}

#[cfg(all(test, feature = "flex", feature = "ndarray"))]
mod tests {
    use burn::tensor::{DType, Device, Tensor, TensorData};

    use super::{SoftSum, soft_sum};
    use crate::autodiff_node::apply;

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

    /// Each sum as a node gives the values and the gradient (for an arbitrary incoming
    /// gradient) of the same sum through burn's operations, to 1e-12 in f64, with ties
    /// `p = y` (where `|p - y|` takes burn's derivative 0); the node is made on every backend.
    #[test]
    fn every_sum_matches_burns_operations() {
        let p: Vec<f64> = (0..24).map(|i| ((i * 5 % 7) as f64) / 6.0).collect();
        let y: Vec<f64> = (0..24).map(|i| ((i * 3 % 7) as f64) / 6.0).collect();
        let w: Vec<f64> = (0..6).map(|i| 1.0 + (i as f64 * 0.7).sin()).collect();
        for (name, device) in devices() {
            let tensor = |v: &Vec<f64>, shape: [usize; 3]| {
                Tensor::<3>::from_data(TensorData::new(v.clone(), shape), (&device, DType::F64))
            };
            let targets = tensor(&y, [2, 3, 4]);
            let weights = tensor(&w, [2, 3, 1]);
            for kind in [
                SoftSum::Product,
                SoftSum::AbsDifference,
                SoftSum::Plain,
                SoftSum::Squares,
            ] {
                let (a, b) = (
                    tensor(&p, [2, 3, 4]).require_grad(),
                    tensor(&p, [2, 3, 4]).require_grad(),
                );
                let constants = [targets.clone()];
                assert!(
                    apply::<_, 3, 3>(kind, &a, &constants).is_some(),
                    "{name} {kind:?}: no node"
                );
                let node = soft_sum(kind, &a, &targets);
                let terms = match kind {
                    SoftSum::Product => b.clone().mul(targets.clone()),
                    SoftSum::AbsDifference => b.clone().sub(targets.clone()).abs(),
                    SoftSum::Plain => b.clone(),
                    SoftSum::Squares => b.clone().square(),
                };
                let plain = terms.sum_dim(2);
                let read =
                    |t: Tensor<3>| -> Vec<f64> { t.into_data().try_to_vec::<f64>().unwrap() };
                let grad_node = (node.clone() * weights.clone()).sum().backward();
                let grad_plain = (plain.clone() * weights.clone()).sum().backward();
                for (what, u, v) in [
                    ("values", read(node), read(plain)),
                    (
                        "gradients",
                        read(a.grad(&grad_node).unwrap()),
                        read(b.grad(&grad_plain).unwrap()),
                    ),
                ] {
                    for (s, t) in u.iter().zip(&v) {
                        assert!((s - t).abs() <= 1e-12, "{name} {kind:?} {what}: {s} vs {t}");
                    }
                }
            }
        }
    }
}
