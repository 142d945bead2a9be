//! One node of burn-autodiff's graph with a closed-form backward, for the device path.
//!
//! burn 0.22's autodiff differentiates a function through its decomposition into tensor
//! operations. For softmax that backward is several operations over the whole batch, in
//! branches that meet again; on wgpu, burn's fusion could not schedule those branches together
//! with the rest of a multiclass loss's backward and ran the segment one operation at a time
//! (burn's fusion log: `[repair] falling back to unfused stream order`). A [`ClosedForm`]
//! function is one node whose backward is the few operations of its derivative written out.
//!
//! The overlap losses' sums over the pixels, and the binary sigmoid and log-sigmoid, stay
//! burn's operations: as nodes they were no faster or broke fusion
//! (benches/results/design_notes.md, "Which operations are autodiff nodes").
//!
//! The node is made on every backend this crate knows (the cube backends, flex, ndarray) under
//! either checkpointing strategy; [`apply`] returns `None` for a tensor elsewhere, or one that
//! takes no part in autodiff, and the caller then uses burn's operations.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, DispatchKindConversion, DispatchTensor};
use burn::tensor::Tensor;

/// A function of one float tensor with its derivative in closed form, on the primitives of any
/// backend.
pub(crate) trait ClosedForm: Copy + Send + Sync + core::fmt::Debug + 'static {
    /// What the backward keeps from the forward, on backend `B`.
    type State<B: Backend>: Clone + Send + core::fmt::Debug + 'static;

    /// The output and the state, from the input `x`.
    fn forward<B: Backend>(self, x: FloatTensor<B>) -> (FloatTensor<B>, Self::State<B>);

    /// The gradient with respect to `x`, from the state and the output's gradient `grad`.
    fn backward<B: Backend>(self, state: Self::State<B>, grad: FloatTensor<B>) -> FloatTensor<B>;
}

/// `function(x)` as one node of the graph, when `x` is tracked and lives on a backend of this
/// build; `None` otherwise.
pub(crate) fn apply<F: ClosedForm, const D: usize>(
    function: F,
    x: &Tensor<D>,
) -> Option<Tensor<D>> {
    if !x.is_tracked() {
        return None;
    }
    #[cfg(feature = "cube")]
    if let Some(out) = on_backend::<burn::backend::Cube, F, D>(function, x) {
        return Some(out);
    }
    #[cfg(feature = "flex")]
    if let Some(out) = on_backend::<burn::backend::Flex, F, D>(function, x) {
        return Some(out);
    }
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)] // burn-ndarray is deprecated upstream; the crate still supports it.
    if let Some(out) = on_backend::<burn::backend::NdArray, F, D>(function, x) {
        return Some(out);
    }
    let _ = function;
    None
}

/// [`apply`] on `Autodiff<B, C>` for either checkpointing strategy.
fn on_backend<B: Backend, F: ClosedForm, const D: usize>(
    function: F,
    x: &Tensor<D>,
) -> Option<Tensor<D>>
where
    DispatchTensor: DispatchKindConversion<Autodiff<B, NoCheckpointing>>
        + DispatchKindConversion<Autodiff<B, BalancedCheckpointing>>,
{
    with_strategy::<B, NoCheckpointing, F, D>(function, x)
        .or_else(|| with_strategy::<B, BalancedCheckpointing, F, D>(function, x))
}

fn with_strategy<B, C, F, const D: usize>(function: F, x: &Tensor<D>) -> Option<Tensor<D>>
where
    B: Backend,
    C: CheckpointStrategy,
    F: ClosedForm,
    DispatchTensor: DispatchKindConversion<Autodiff<B, C>>,
{
    let x = x.clone().try_into_primitive::<Autodiff<B, C>>().ok()?;
    let (output, state) = function.forward::<B>(x.primitive().clone());
    let node = match Node(function)
        .prepare::<C>([x.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    Some(Tensor::from_primitive::<Autodiff<B, C>>(node))
}

/// The node's backward: [`ClosedForm::backward`] of the incoming gradient.
#[derive(Debug)]
struct Node<F>(F);

impl<B: Backend, F: ClosedForm> Backward<B, 1> for Node<F> {
    type State = F::State<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (function, state) = (self.0, ops.state);
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            function.backward::<B>(state, grad)
        });
    }
}
