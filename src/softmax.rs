//! Softmax and log-softmax over one axis for the device path, each one node of burn-autodiff's
//! graph with a closed-form backward.
//!
//! burn 0.22's autodiff differentiates `softmax` through its decomposition (`x - max`, `exp`,
//! `sum`, `/`): the backward is half a dozen operations over the whole batch in two branches
//! that meet again. On wgpu, burn's fusion could not schedule those branches together with
//! the rest of a multiclass loss's backward and ran the segment one operation at a time
//! (measured with burn's fusion log: `[repair] falling back to unfused stream order`). As one
//! node, the backward is
//!
//! - softmax: `dx = p * (g - sum_c(p * g))`, with `p` the forward's output;
//! - log-softmax: `dx = g - exp(l) * sum_c(g)`, with `l` the forward's output;
//!
//! three or four elementwise operations and one reduction over the classes. The forward is
//! the inner backend's own `softmax` (which a backend may compute in one kernel, where the
//! autodiff backend decomposes it), so the values can differ from burn's autodiff `softmax` in
//! the last bits (2e-16 relative in f64, 1e-7 in f32, measured on flex).
//!
//! The node is made on every backend this crate knows (the cube backends, flex, ndarray) under
//! either checkpointing strategy; a tensor elsewhere, or one that takes no part in autodiff,
//! gets burn's `softmax` itself.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::{Autodiff, Backend, DispatchKindConversion, DispatchTensor};
use burn::tensor::Tensor;
use burn::tensor::activation;

/// Which of the two functions.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Softmax,
    LogSoftmax,
}

/// `softmax(x)` along `dim`, with a one-node backward on autodiff backends.
pub(crate) fn softmax<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    tracked(&x, dim, Kind::Softmax).unwrap_or_else(|| activation::softmax(x, dim))
}

/// `log_softmax(x)` along `dim`, with a one-node backward on autodiff backends.
pub(crate) fn log_softmax<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    tracked(&x, dim, Kind::LogSoftmax).unwrap_or_else(|| activation::log_softmax(x, dim))
}

/// The node on the first backend of this build that `x` lives on under autodiff; `None` when
/// it lives on none of them (or takes no part in autodiff).
fn tracked<const D: usize>(x: &Tensor<D>, dim: usize, kind: Kind) -> Option<Tensor<D>> {
    if !x.is_tracked() {
        return None;
    }
    #[cfg(feature = "wgpu")]
    if let Some(out) = on_backend::<burn::backend::Cube, D>(x, dim, kind) {
        return Some(out);
    }
    #[cfg(feature = "flex")]
    if let Some(out) = on_backend::<burn::backend::Flex, D>(x, dim, kind) {
        return Some(out);
    }
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)] // burn-ndarray is deprecated upstream; the crate still supports it.
    if let Some(out) = on_backend::<burn::backend::NdArray, D>(x, dim, kind) {
        return Some(out);
    }
    let _ = (dim, kind);
    None
}

/// The node on `Autodiff<B, C>` for either checkpointing strategy.
fn on_backend<B: Backend, const D: usize>(
    x: &Tensor<D>,
    dim: usize,
    kind: Kind,
) -> Option<Tensor<D>>
where
    DispatchTensor: DispatchKindConversion<Autodiff<B, NoCheckpointing>>
        + DispatchKindConversion<Autodiff<B, BalancedCheckpointing>>,
{
    with_strategy::<B, NoCheckpointing, D>(x, dim, kind)
        .or_else(|| with_strategy::<B, BalancedCheckpointing, D>(x, dim, kind))
}

fn with_strategy<B, C, const D: usize>(x: &Tensor<D>, dim: usize, kind: Kind) -> Option<Tensor<D>>
where
    B: Backend,
    C: CheckpointStrategy,
    DispatchTensor: DispatchKindConversion<Autodiff<B, C>>,
{
    let x = x.clone().try_into_primitive::<Autodiff<B, C>>().ok()?;
    let input = x.primitive().clone();
    let output = match kind {
        Kind::Softmax => B::softmax(input, dim),
        Kind::LogSoftmax => B::log_softmax(input, dim),
    };
    let node = match (ClassAxisBackward { dim, kind })
        .prepare::<C>([x.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(output.clone(), output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    Some(Tensor::from_primitive::<Autodiff<B, C>>(node))
}

/// The backward of [`softmax`] / [`log_softmax`]; its state is the forward's output.
#[derive(Debug)]
struct ClassAxisBackward {
    dim: usize,
    kind: Kind,
}

impl<B: Backend> Backward<B, 1> for ClassAxisBackward {
    type State = B::FloatTensorPrimitive;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (output, dim, kind) = (ops.state, self.dim, self.kind);
        unary::<B, _>(ops.parents, ops.node, grads, |g| match kind {
            Kind::Softmax => {
                // p * (g - sum(p * g)) = p * g - p * sum(p * g)
                let pg = B::float_mul(output.clone(), g);
                let total = B::float_sum_dim(pg.clone(), dim);
                B::float_sub(pg, B::float_mul(output, total))
            }
            Kind::LogSoftmax => {
                let total = B::float_sum_dim(g.clone(), dim);
                B::float_sub(g, B::float_mul(B::float_exp(output), total))
            }
        });
    }
}

#[cfg(all(test, feature = "flex", feature = "ndarray"))]
mod tests {
    use burn::tensor::{DType, Device, Tensor, TensorData, activation};

    use super::{Kind, log_softmax, softmax, tracked};

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
    /// of the largest entry in f64; the node is made on every backend (no silent fallback to burn's
    /// function).
    #[test]
    fn the_node_gives_burns_values_and_gradients() {
        let weights: Vec<f64> = (0..24).map(|i| (i as f64 * 0.37).sin()).collect();
        for (name, device) in devices() {
            for kind in [Kind::Softmax, Kind::LogSoftmax] {
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
                    Kind::Softmax => softmax::<3>,
                    Kind::LogSoftmax => log_softmax::<3>,
                };
                let burns = match kind {
                    Kind::Softmax => activation::softmax::<3>,
                    Kind::LogSoftmax => activation::log_softmax::<3>,
                };
                let (a, b) = (x(), x());
                assert!(tracked(&a, 1, kind).is_some(), "{name} {kind:?}: no node");
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
