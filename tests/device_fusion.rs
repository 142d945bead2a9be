//! How many kernels over the whole batch the device path of a loss runs on wgpu, forward and
//! backward, counted with burn's fusion observer: the blocks that burn's fusion runs and that
//! read or write a tensor of the batch's size (a fused chain of elementwise operations is one
//! such kernel, a reduction another; reshapes and drops run none). Run on Mesa's lavapipe in CI.
//!
//! burn 0.22's fusion gives up on a segment whose blocks it cannot order, and runs its every
//! operation alone; this test holds the fixes that keep the losses out of that case, and
//! prints the counts that the losses' docs quote.
#![cfg(feature = "wgpu")]

mod common;

use std::sync::{Arc, Mutex};

use burn::backend::fusion::observer::{BlockOperations, FusionObservation, FusionObserver};
use burn::backend::ir::{BaseOperationIr, OperationIr};
use burn::tensor::{Device, Int, Tensor, TensorData};
use segloss::Execution;
use segloss::losses::*;

/// Counts the blocks that launch a kernel: all of them, and those that touch a tensor of at
/// least `batch` elements.
struct Watch {
    batch: usize,
    /// (over the batch, in all)
    counts: Mutex<(usize, usize)>,
}

impl FusionObserver for Watch {
    fn registered(&self, _: &OperationIr) {}
    fn block_starts(&self, block: BlockOperations<'_>) {
        let large = block.iter().any(|op| {
            op.inputs()
                .chain(op.outputs())
                .any(|t| t.shape.num_elements() >= self.batch)
        });
        if block.iter().any(launches_a_kernel) {
            let mut counts = self.counts.lock().unwrap();
            counts.1 += 1;
            if large {
                counts.0 += 1;
            }
        }
    }
    fn block_ran(&self) {}
}

/// Whether an operation runs on the device: reshapes, swaps and expansions change only a view,
/// a drop frees memory.
fn launches_a_kernel(op: &OperationIr) -> bool {
    let view = |base: &BaseOperationIr| {
        matches!(
            base,
            BaseOperationIr::Reshape(_)
                | BaseOperationIr::SwapDims(_)
                | BaseOperationIr::Permute(_)
                | BaseOperationIr::Expand(_)
        )
    };
    match op {
        OperationIr::Drop(_) => false,
        OperationIr::BaseFloat(base) | OperationIr::BaseInt(base) | OperationIr::BaseBool(base) => {
            !view(base)
        }
        _ => true,
    }
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

/// The kernels over the batch (of `batch` logits) and in all of one forward and backward pass,
/// the inputs
/// made by `inputs` (on the autodiff device it gets) before watching, counted after a first,
/// unwatched pass (which fills burn's fusion cache, as in a training loop's every step after
/// the first).
fn kernels<'a>(
    device: &Device,
    batch: usize,
    inputs: &dyn Fn(&Device) -> Step<'a>,
) -> (usize, usize) {
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
        counts: Mutex::new((0, 0)),
    });
    run(Some(watch.clone()));
    *watch.counts.lock().unwrap()
}

/// [`kernels`] of a binary loss on a `[4, 1, 64, 64]` batch.
fn binary_kernels(device: &Device, loss: &BinaryLoss) -> (usize, usize) {
    let n = 4;
    let y: Vec<f32> = (0..n * 64 * 64)
        .map(|i| f32::from(i * 13 % 7 > 3))
        .collect();
    kernels(device, n * 64 * 64, &|autodiff| {
        let x = Tensor::<4>::from_data(TensorData::new(logits(n, 1), [n, 1, 64, 64]), autodiff)
            .require_grad();
        let y = Tensor::<4>::from_data(TensorData::new(y.clone(), [n, 1, 64, 64]), autodiff);
        let _ = (x.clone().into_data(), y.clone().into_data());
        Box::new(move || (loss(x.clone(), y), x))
    })
}

/// [`kernels`] of a multiclass loss on `[4, 4, 64, 64]` logits with class indices.
fn class_kernels(device: &Device, loss: &ClassLoss) -> (usize, usize) {
    let (n, c) = (4, 4);
    let y: Vec<i64> = (0..n * 64 * 64).map(|i| (i * 13 % 7 % c) as i64).collect();
    kernels(device, n * 64 * 64, &|autodiff| {
        let x = Tensor::<4>::from_data(TensorData::new(logits(n, c), [n, c, 64, 64]), autodiff)
            .require_grad();
        let y = Tensor::<4, Int>::from_data(TensorData::new(y.clone(), [n, 1, 64, 64]), autodiff);
        let _ = (x.clone().into_data(), y.clone().into_data());
        Box::new(move || (loss(x.clone(), y), x))
    })
}

/// The device-path configuration of every loss of the table, by name.
fn on_device() -> Execution {
    Execution::Device
}

/// Every loss's kernels over the batch, measured in this fixed order (burn's fusion cache makes
/// a count depend on what ran before, so one order gives reproducible counts), printed as the
/// table that the losses' docs quote (`cargo test --features wgpu --test device_fusion --
/// --nocapture`), then checked:
///
/// - Dice + BCE runs no more kernels over the batch than its two terms alone. Before the
///   compound losses applied their weights after every term, burn's fusion ran 30 of them
///   against 13: the small `loss * weight` joined the cross-entropy's first fused block, and
///   the segment fell back to one kernel per operation.
/// - Soft Dice runs at most 6: its sigmoid, NaN guard and products fuse (9 before, with the
///   guard's `is_nan` and `not` two kernels of their own and a reshape cutting the chain).
/// - Multiclass Dice runs at most 16: softmax is one autodiff node with its backward written
///   out (through burn's decomposed softmax backward, fusion could not order the branches:
///   25 and more).
/// - Multiclass Dice + CE runs at most 28: the cross-entropy (`gamma = 0`) has no modulating
///   factor `exp(0 * ln(1 - p))`, and the overlap ratio's empty case is a `mask_fill`, not a
///   `mask_where` with a tensor of ones (32 with neither and without the softmax node, 31
///   with the `mask_where`).
#[test]
fn device_path_kernel_counts() {
    let Some(device) = common::wgpu_device() else {
        return;
    };
    let binary: Vec<(&str, Box<BinaryLoss>)> = vec![
        (
            "binary_cross_entropy",
            Box::new(|x, y| {
                binary_cross_entropy(
                    x,
                    y,
                    &BinaryCrossEntropyConfig::new().with_execution(on_device()),
                )
                .unwrap()
            }),
        ),
        (
            "weighted_cross_entropy",
            Box::new(|x, y| {
                weighted_cross_entropy(
                    x,
                    y,
                    &WeightedCrossEntropyConfig::new().with_execution(on_device()),
                )
                .unwrap()
            }),
        ),
        (
            "soft_dice",
            Box::new(|x, y| {
                soft_dice(x, y, &SoftDiceConfig::new().with_execution(on_device())).unwrap()
            }),
        ),
        (
            "soft_jaccard",
            Box::new(|x, y| {
                soft_jaccard(x, y, &SoftJaccardConfig::new().with_execution(on_device())).unwrap()
            }),
        ),
        (
            "tversky",
            Box::new(|x, y| {
                tversky(x, y, &TverskyConfig::new().with_execution(on_device())).unwrap()
            }),
        ),
        (
            "focal",
            Box::new(|x, y| focal(x, y, &FocalConfig::new().with_execution(on_device())).unwrap()),
        ),
        (
            "lovasz_sigmoid",
            Box::new(|x, y| {
                lovasz_sigmoid(
                    x,
                    y,
                    &LovaszSigmoidConfig::new().with_execution(on_device()),
                )
                .unwrap()
            }),
        ),
        (
            "lovasz_hinge",
            Box::new(|x, y| {
                lovasz_hinge(x, y, &LovaszHingeConfig::new().with_execution(on_device())).unwrap()
            }),
        ),
        (
            "compound (Dice + BCE)",
            Box::new(|x, y| {
                let config = CompoundConfig::new()
                    .with_term(
                        1.0,
                        Loss::SoftDice(SoftDiceConfig::new().with_execution(on_device())),
                    )
                    .with_term(
                        1.0,
                        Loss::BinaryCrossEntropy(
                            BinaryCrossEntropyConfig::new().with_execution(on_device()),
                        ),
                    );
                compound(x, y, &config).unwrap()
            }),
        ),
        (
            "tversky (gamma 0.75)",
            Box::new(|x, y| {
                let config = TverskyConfig::new()
                    .with_gamma(0.75)
                    .with_execution(on_device());
                tversky(x, y, &config).unwrap()
            }),
        ),
        (
            "mcc",
            Box::new(|x, y| mcc(x, y, &MccConfig::new()).unwrap()),
        ),
        (
            "cl_dice",
            Box::new(|x, y| {
                cl_dice(x, y, &ClDiceConfig::new().with_execution(on_device())).unwrap()
            }),
        ),
    ];
    let dice = || MulticlassOverlapConfig::new().with_execution(on_device());
    let ce = || {
        MulticlassFocalConfig::new()
            .with_gamma(0.0)
            .with_execution(on_device())
    };
    let classes: Vec<(&str, Box<ClassLoss>)> = vec![
        (
            "multiclass_overlap",
            Box::new(move |x, y| multiclass_overlap(x, y, &dice()).unwrap()),
        ),
        (
            "generalized_dice",
            Box::new(|x, y| {
                generalized_dice(
                    x,
                    y,
                    &GeneralizedDiceConfig::new().with_execution(on_device()),
                )
                .unwrap()
            }),
        ),
        (
            "lovasz_softmax",
            Box::new(|x, y| {
                lovasz_softmax(
                    x,
                    y,
                    &LovaszSoftmaxConfig::new().with_execution(on_device()),
                )
                .unwrap()
            }),
        ),
        (
            "multiclass_focal",
            Box::new(|x, y| {
                multiclass_focal(
                    x,
                    y,
                    &MulticlassFocalConfig::new().with_execution(on_device()),
                )
                .unwrap()
            }),
        ),
        (
            "multiclass_focal (gamma 0, CE)",
            Box::new(move |x, y| multiclass_focal(x, y, &ce()).unwrap()),
        ),
        (
            "multiclass_compound (Dice + CE)",
            Box::new(move |x, y| {
                let config = MulticlassCompoundConfig::new()
                    .with_term(1.0, MulticlassLoss::Overlap(dice()))
                    .with_term(1.0, MulticlassLoss::Focal(ce()));
                multiclass_compound(x, y, &config).unwrap()
            }),
        ),
        (
            "dice_ce",
            Box::new(|x, y| {
                dice_ce(x, y, &DiceCeConfig::new().with_execution(on_device())).unwrap()
            }),
        ),
        (
            "dice_focal",
            Box::new(|x, y| {
                dice_focal(x, y, &DiceFocalConfig::new().with_execution(on_device())).unwrap()
            }),
        ),
        (
            "wasserstein_dice",
            Box::new(|x, y| wasserstein_dice(x, y, &WassersteinDiceConfig::new()).unwrap()),
        ),
        (
            "multiclass_cl_dice",
            Box::new(|x, y| multiclass_cl_dice(x, y, &MulticlassClDiceConfig::new()).unwrap()),
        ),
    ];
    let mut counts = std::collections::HashMap::new();
    for (name, loss) in &binary {
        counts.insert(*name, binary_kernels(&device, &**loss));
    }
    for (name, loss) in &classes {
        counts.insert(*name, class_kernels(&device, &**loss));
    }
    for (name, _) in &binary {
        let (batch, all) = counts[name];
        eprintln!("{name}: {batch} kernels over the batch, {all} in all");
    }
    for (name, _) in &classes {
        let (batch, all) = counts[name];
        eprintln!("{name}: {batch} kernels over the batch, {all} in all");
    }
    let counts: std::collections::HashMap<&str, usize> = counts
        .into_iter()
        .map(|(name, (batch, _))| (name, batch))
        .collect();
    let (dice, bce) = (counts["soft_dice"], counts["binary_cross_entropy"]);
    let both = counts["compound (Dice + BCE)"];
    assert!(
        both <= dice + bce,
        "Dice + BCE: {both}, the terms alone {dice} + {bce}"
    );
    assert!(dice <= 6, "soft Dice: {dice}");
    let class_dice = counts["multiclass_overlap"];
    assert!(class_dice <= 16, "multiclass Dice: {class_dice}");
    let dice_ce = counts["multiclass_compound (Dice + CE)"];
    assert!(dice_ce <= 28, "multiclass Dice + CE: {dice_ce}");
    // The preset is the same two terms: no more kernels than the compound.
    let preset = counts["dice_ce"];
    assert!(
        preset <= dice_ce,
        "DiceCE preset: {preset}, compound {dice_ce}"
    );
}
