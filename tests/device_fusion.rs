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
use burn::tensor::{Device, Tensor, TensorData};
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

/// The full-size kernels of one forward and backward pass of `loss` on a `[4, 1, 64, 64]`
/// batch, counted after a first, unwatched pass (which fills burn's fusion cache, as in a
/// training loop's every step after the first).
fn full_size_kernels(device: &Device, loss: &BinaryLoss) -> usize {
    let (n, h) = (4, 64);
    let x: Vec<f32> = (0..n * h * h)
        .map(|i| (i * 37 % 101) as f32 / 25.0 - 2.0)
        .collect();
    let y: Vec<f32> = (0..n * h * h).map(|i| f32::from(i * 13 % 7 > 3)).collect();
    let autodiff = device.clone().autodiff();
    let run = |watch: Option<Arc<Watch>>| {
        let x = Tensor::<4>::from_data(TensorData::new(x.clone(), [n, 1, h, h]), &autodiff)
            .require_grad();
        let y = Tensor::<4>::from_data(TensorData::new(y.clone(), [n, 1, h, h]), &autodiff);
        let _ = (x.clone().into_data(), y.clone().into_data());
        device.sync().unwrap();
        let observation = watch.map(|w| FusionObservation::new(w));
        let grads = loss(x.clone(), y).backward();
        let _gradient = x.grad(&grads).unwrap();
        device.sync().unwrap();
        drop(observation);
    };
    run(None);
    let watch = Arc::new(Watch {
        batch: n * h * h,
        full_size: Mutex::new(0),
    });
    run(Some(watch.clone()));
    *watch.full_size.lock().unwrap()
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
    let dice = full_size_kernels(&device, &soft_dice_on_device);
    let bce = full_size_kernels(&device, &bce_on_device);
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
    let both = full_size_kernels(&device, &compound_loss);
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
    let dice = full_size_kernels(&device, &soft_dice_on_device);
    assert!(dice <= 7, "soft Dice: {dice} full-size kernels");
}
