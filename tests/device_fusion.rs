//! How many kernels over the whole batch the device path of a loss runs on wgpu, forward and
//! backward, counted with burn's fusion observer: the blocks that burn's fusion runs and that
//! read or write a tensor of the batch's size (a fused chain of elementwise operations is one
//! such kernel, a reduction another; reshapes and drops run none). Run on Mesa's lavapipe in CI.
//!
//! burn 0.22's fusion gives up on a segment whose blocks it cannot order, and runs its every
//! operation alone; these tests hold the fixes that keep the losses out of that case.
#![cfg(feature = "wgpu")]

mod common;

use std::sync::{Arc, Mutex};

use burn::backend::fusion::observer::{BlockOperations, FusionObservation, FusionObserver};
use burn::backend::ir::{BaseOperationIr, OperationIr};
use burn::tensor::{Device, Int, Tensor, TensorData};
use segloss::Execution;
use segloss::losses::*;

/// Counts the blocks that launch a kernel and touch a tensor of at least `batch` elements.
struct Watch {
    batch: usize,
    full_size: Mutex<usize>,
}

impl FusionObserver for Watch {
    fn registered(&self, _: &OperationIr) {}
    fn block_starts(&self, block: BlockOperations<'_>) {
        let large = block.iter().any(|op| {
            op.inputs()
                .chain(op.outputs())
                .any(|t| t.shape.num_elements() >= self.batch)
        });
        if large && block.iter().any(launches_a_kernel) {
            *self.full_size.lock().unwrap() += 1;
        }
    }
    fn block_ran(&self) {}
}

/// Whether an operation runs on the device: reshapes, swaps and expansions change only a view,
/// a drop frees memory.
fn launches_a_kernel(op: &OperationIr) -> bool {
    !matches!(
        op,
        OperationIr::Drop(_)
            | OperationIr::BaseFloat(
                BaseOperationIr::Reshape(_)
                    | BaseOperationIr::SwapDims(_)
                    | BaseOperationIr::Permute(_)
                    | BaseOperationIr::Expand(_)
            )
    )
}

/// One test at a time in this binary: the observer sees every operation of the process.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

type BinaryLoss = dyn Fn(Tensor<4>, Tensor<4>) -> Tensor<1>;
type ClassLoss = dyn Fn(Tensor<4>, Tensor<4, Int>) -> Tensor<1>;

/// Logits `[n, channels, 64, 64]` with a spread of values.
fn logits(n: usize, channels: usize) -> Vec<f32> {
    (0..n * channels * 64 * 64)
        .map(|i| (i * 37 % 101) as f32 / 25.0 - 2.0)
        .collect()
}

/// The forward pass of a loss on inputs already on the device: the loss and the logits.
type Step<'a> = Box<dyn FnOnce() -> (Tensor<1>, Tensor<4>) + 'a>;

/// The kernels over the batch (of `batch` logits) of one forward and backward pass, the inputs
/// made by `inputs` (on the autodiff device it gets) before watching, counted after a first,
/// unwatched pass (which fills burn's fusion cache, as in a training loop's every step after
/// the first).
fn full_size_kernels<'a>(
    device: &Device,
    batch: usize,
    inputs: &dyn Fn(&Device) -> Step<'a>,
) -> usize {
    let autodiff = device.clone().autodiff();
    let run = |watch: Option<Arc<Watch>>| {
        let step = inputs(&autodiff);
        device.sync().unwrap();
        let observation = watch.map(|w| FusionObservation::new(w));
        let (loss, x) = step();
        let grads = loss.backward();
        let _gradient = x.grad(&grads).unwrap();
        device.sync().unwrap();
        drop(observation);
    };
    run(None);
    let watch = Arc::new(Watch {
        batch,
        full_size: Mutex::new(0),
    });
    run(Some(watch.clone()));
    *watch.full_size.lock().unwrap()
}

/// [`full_size_kernels`] of a binary loss on a `[4, 1, 64, 64]` batch.
fn binary_kernels(device: &Device, loss: &BinaryLoss) -> usize {
    let n = 4;
    let y: Vec<f32> = (0..n * 64 * 64)
        .map(|i| f32::from(i * 13 % 7 > 3))
        .collect();
    full_size_kernels(device, n * 64 * 64, &|autodiff| {
        let x = Tensor::<4>::from_data(TensorData::new(logits(n, 1), [n, 1, 64, 64]), autodiff)
            .require_grad();
        let y = Tensor::<4>::from_data(TensorData::new(y.clone(), [n, 1, 64, 64]), autodiff);
        let _ = (x.clone().into_data(), y.clone().into_data());
        Box::new(move || (loss(x.clone(), y), x))
    })
}

/// [`full_size_kernels`] of a multiclass loss on `[4, 4, 64, 64]` logits with class indices.
fn class_kernels(device: &Device, loss: &ClassLoss) -> usize {
    let (n, c) = (4, 4);
    let y: Vec<i64> = (0..n * 64 * 64).map(|i| (i * 13 % 7 % c) as i64).collect();
    full_size_kernels(device, n * 64 * 64, &|autodiff| {
        let x = Tensor::<4>::from_data(TensorData::new(logits(n, c), [n, c, 64, 64]), autodiff)
            .require_grad();
        let y = Tensor::<4, Int>::from_data(TensorData::new(y.clone(), [n, 1, 64, 64]), autodiff);
        let _ = (x.clone().into_data(), y.clone().into_data());
        Box::new(move || (loss(x.clone(), y), x))
    })
}

fn soft_dice_on_device(x: Tensor<4>, y: Tensor<4>) -> Tensor<1> {
    let config = SoftDiceConfig::new().with_execution(Execution::Device);
    soft_dice(x, y, &config).unwrap()
}

fn bce_on_device(x: Tensor<4>, y: Tensor<4>) -> Tensor<1> {
    let config = BinaryCrossEntropyConfig::new().with_execution(Execution::Device);
    binary_cross_entropy(x, y, &config).unwrap()
}

/// Dice + BCE on the device runs no more full-size kernels than its two terms alone. Before
/// the fix (each term's weight multiplied in between the terms) burn's fusion ran 30 of them
/// against 13 for the terms alone: the small product joined the cross-entropy's first fused
/// block, and the segment fell back to one kernel per operation.
#[test]
fn dice_plus_bce_costs_no_more_kernels_than_its_terms() {
    let _serial = serial();
    let Some(device) = common::wgpu_device() else {
        return;
    };
    let dice = binary_kernels(&device, &soft_dice_on_device);
    let bce = binary_kernels(&device, &bce_on_device);
    let compound_loss = |x: Tensor<4>, y: Tensor<4>| {
        let config = CompoundConfig::new()
            .with_term(
                1.0,
                Loss::SoftDice(SoftDiceConfig::new().with_execution(Execution::Device)),
            )
            .with_term(
                0.5,
                Loss::BinaryCrossEntropy(
                    BinaryCrossEntropyConfig::new().with_execution(Execution::Device),
                ),
            );
        compound(x, y, &config).unwrap()
    };
    let both = binary_kernels(&device, &compound_loss);
    assert!(
        both <= dice + bce,
        "Dice + BCE: {both} full-size kernels, the terms alone {dice} + {bce}"
    );
}

/// Soft Dice on the device: the sigmoid (with its NaN guard) and the products fuse into one
/// kernel, then the three sums, then the backward's one chain: 6 measured. Before the fix
/// the guard's `is_nan` and boolean `not` ran as two kernels of their own, and a reshape
/// after the sigmoid cut the chain (9).
#[test]
fn soft_dice_fuses_its_sigmoid_and_nan_guard() {
    let _serial = serial();
    let Some(device) = common::wgpu_device() else {
        return;
    };
    let dice = binary_kernels(&device, &soft_dice_on_device);
    assert!(dice <= 7, "soft Dice: {dice} full-size kernels");
}

/// Multiclass Dice on the device: softmax is one autodiff node whose backward is written out
/// (`p * (g - sum_c(p * g))`). Through burn's decomposition of softmax the backward had branches
/// that burn's fusion could not order, and it ran 25 kernels over the batch (19 measured with
/// the node).
#[test]
fn multiclass_dice_backward_takes_the_softmax_node() {
    let _serial = serial();
    let Some(device) = common::wgpu_device() else {
        return;
    };
    let dice = class_kernels(&device, &|x, y| {
        let config = MulticlassOverlapConfig::new().with_execution(Execution::Device);
        multiclass_overlap(x, y, &config).unwrap()
    });
    assert!(dice <= 20, "multiclass Dice: {dice} kernels over the batch");
}
