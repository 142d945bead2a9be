//! Shared by the bench targets: the backends to measure, the benchmark shapes, deterministic
//! inputs, and one entry point per loss with its default configuration.
#![allow(dead_code)]

use std::time::Duration;

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, SamplingMode, Throughput};
use segloss::losses::*;
use segloss::{Execution, SegLossError};

/// The losses of the crate, by the name used in benchmark ids.
pub const LOSSES: [&str; 15] = [
    "binary_cross_entropy",
    "weighted_cross_entropy",
    "soft_dice",
    "soft_jaccard",
    "lovasz_sigmoid",
    "lovasz_hinge",
    "tversky",
    "focal",
    "compound",
    "boundary_loss",
    "hausdorff_dt_loss",
    "cl_dice",
    "mcc",
    // With a 0/1 pixel mask (`masked_`: `pixel_mask`, about 70% ones): soft Dice (MONAI's
    // `MaskedDiceLoss`) and BCE (torch's `weight`).
    "masked_dice",
    "masked_bce",
];

/// The shapes: two 2D batches and one 3D volume batch.
pub const SHAPES_2D: [[usize; 4]; 2] = [[8, 1, 256, 256], [16, 1, 512, 512]];
pub const SHAPE_3D: [usize; 5] = [2, 1, 64, 128, 128];

/// `8x1x256x256`.
pub fn shape_name(shape: &[usize]) -> String {
    shape
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("x")
}

/// The sampling of every timed group, with `elements` per iteration as its throughput.
pub fn configure(group: &mut BenchmarkGroup<'_, WallTime>, elements: usize) {
    // Flat sampling with few samples: one iteration of a slow backend takes up to a second
    // on [16,1,512,512], and criterion's default linear sampling would need minutes per id.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(elements as u64));
}

/// The backends of this build, by name.
pub const BACKENDS: [&str; 3] = ["flex", "ndarray", "wgpu"];

/// The device of one backend, or `None` where this build or this machine lacks it (a missing
/// wgpu adapter is reported on stderr, never skipped silently).
pub fn backend(name: &str) -> Option<Device> {
    match name {
        #[cfg(feature = "flex")]
        "flex" => Some(Device::flex()),
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        // burn-ndarray is deprecated upstream; the crate still supports it.
        "ndarray" => Some(Device::ndarray()),
        #[cfg(feature = "wgpu")]
        "wgpu" => match Device::wgpu_options().init() {
            Ok(device) => {
                eprintln!("wgpu device: {device:?}");
                Some(device)
            }
            Err(e) => {
                eprintln!("SKIPPED wgpu benchmarks: no wgpu adapter ({e:?})");
                None
            }
        },
        _ => None,
    }
}

/// The devices to measure: every backend of this build, or those listed (comma-separated) in
/// `SEGLOSS_BENCH_BACKENDS`.
pub fn backends() -> Vec<(&'static str, Device)> {
    let only = std::env::var("SEGLOSS_BENCH_BACKENDS").ok();
    BACKENDS
        .into_iter()
        .filter(|name| {
            only.as_deref()
                .is_none_or(|list| list.split(',').any(|b| b.trim() == *name))
        })
        .filter_map(|name| Some((name, backend(name)?)))
        .collect()
}

/// The next value of a SplitMix64 stream (`state` advances): the inputs' deterministic draws.
fn split_mix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Deterministic inputs of `shape`: logits uniform in [-4, 4), targets 0/1 with about 30%
/// foreground (a SplitMix64 stream, so every run and every backend sees the same data).
pub fn inputs<const D: usize>(shape: [usize; D], device: &Device) -> (Tensor<D>, Tensor<D>) {
    let n: usize = shape.iter().product();
    let mut state = 0x5EED_u64;
    let mut uniform = move || (split_mix(&mut state) >> 40) as f32 / (1u64 << 24) as f32;
    let mut logits = Vec::with_capacity(n);
    let mut targets = Vec::with_capacity(n);
    for _ in 0..n {
        logits.push(uniform() * 8.0 - 4.0);
        targets.push(f32::from(u8::from(uniform() < 0.3)));
    }
    let upload = |v: Vec<f32>| Tensor::from_data(TensorData::new(v, shape), (device, DType::F32));
    (upload(logits), upload(targets))
}

/// A 0/1 pixel mask of `shape` (about 70% ones; its own SplitMix64 stream), for the `masked_`
/// losses: `[N, 1, ...]` of the logits.
pub fn pixel_mask<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    let n: usize = shape.iter().product();
    let mut state = 0x3A5C_u64;
    let mask: Vec<f32> = (0..n)
        .map(|_| f32::from(u8::from(split_mix(&mut state) % 10 < 7)))
        .collect();
    Tensor::from_data(TensorData::new(mask, shape), (device, DType::F32))
}

/// The targets a benchmark of `loss` runs with: `y`, with the mask of [`pixel_mask`] for a
/// `masked_` loss.
pub fn targets_of<const D: usize>(loss: &str, y: Tensor<D>) -> BinaryTargets<D> {
    if loss.starts_with("masked_") {
        let mask = pixel_mask(y.dims(), &y.device());
        y.with_pixel_weights(mask)
    } else {
        y.into()
    }
}

/// The multiclass targets a benchmark of `loss` runs with, as [`targets_of`].
pub fn class_targets_of<const D: usize>(loss: &str, y: Tensor<D, Int>) -> WeightedClassTargets<D> {
    if loss.starts_with("masked_") {
        let mask = pixel_mask(y.dims(), &y.device());
        y.with_pixel_weights(mask)
    } else {
        y.into()
    }
}

/// The multiclass benchmarks' shapes: a 2D batch with 4 classes, a 3D batch, and 14 classes
/// (BTCV's organ count).
pub const MULTICLASS_2D: [usize; 4] = [8, 4, 256, 256];
pub const MULTICLASS_3D: [usize; 5] = [2, 4, 64, 128, 128];
pub const MULTICLASS_MANY: [usize; 4] = [4, 14, 128, 128];

/// Logits uniform in [-4, 4) of `shape` `[N, C, ...]` and class indices `[N, 1, ...]`,
/// `floor(C u^2)` for `u` uniform (from the same SplitMix64 stream as [`inputs`]): every class
/// occurs, class 0 most often (half the pixels with 4 classes), an unbalanced class map.
pub fn multiclass_inputs<const D: usize>(
    shape: [usize; D],
    device: &Device,
) -> (Tensor<D>, Tensor<D, Int>) {
    let (x, _) = inputs(shape, device);
    let classes = shape[1];
    let mut index_shape = shape;
    index_shape[1] = 1;
    let pixels: usize = index_shape.iter().product();
    let mut state = 0xC1A55_u64;
    let index: Vec<i64> = (0..pixels)
        .map(|_| {
            let u = (split_mix(&mut state) >> 11) as f64 / (1u64 << 53) as f64;
            ((classes as f64 * u * u) as i64).min(classes as i64 - 1)
        })
        .collect();
    let y = Tensor::from_data(TensorData::new(index, index_shape), device);
    (x, y)
}

/// The multiclass losses, by the name used in benchmark ids: each with its defaults (softmax,
/// class-index targets); `multiclass_ce` is `multiclass_focal` with `gamma = 0` (the
/// cross-entropy), `multiclass_compound` nnU-Net's Dice + CE.
pub const MULTICLASS_LOSSES: [&str; 12] = [
    "multiclass_overlap",
    "generalized_dice",
    "lovasz_softmax",
    "multiclass_focal",
    "multiclass_ce",
    "multiclass_compound",
    "multiclass_boundary_loss",
    "multiclass_hausdorff_dt_loss",
    "wasserstein_dice",
    "dice_ce",
    "dice_focal",
    // Dice + CE with a 0/1 pixel mask.
    "masked_dice_ce",
];

/// Runs multiclass `loss` with its default configuration, on the given execution path.
pub fn run_multiclass<const D: usize>(
    loss: &str,
    execution: Execution,
    x: Tensor<D>,
    y: WeightedClassTargets<D>,
) -> Result<Tensor<1>, SegLossError> {
    let e = execution;
    let dice = MulticlassOverlapConfig::new().with_execution(e);
    let ce = MulticlassFocalConfig::new()
        .with_gamma(0.0)
        .with_execution(e);
    match loss {
        "multiclass_overlap" => multiclass_overlap(x, y, &dice),
        "generalized_dice" => {
            generalized_dice(x, y, &GeneralizedDiceConfig::new().with_execution(e))
        }
        "lovasz_softmax" => lovasz_softmax(x, y, &LovaszSoftmaxConfig::new().with_execution(e)),
        "multiclass_focal" => {
            multiclass_focal(x, y, &MulticlassFocalConfig::new().with_execution(e))
        }
        "multiclass_ce" => multiclass_focal(x, y, &ce),
        "multiclass_compound" => multiclass_compound(
            x,
            y,
            &MulticlassCompoundConfig::new()
                .with_term(1.0, MulticlassLoss::Overlap(dice))
                .with_term(1.0, MulticlassLoss::Focal(ce)),
        ),
        "multiclass_boundary_loss" => {
            multiclass_boundary_loss(x, y, &MulticlassBoundaryConfig::new())
        }
        "multiclass_hausdorff_dt_loss" => {
            multiclass_hausdorff_dt_loss(x, y, &MulticlassHausdorffDtConfig::new())
        }
        "wasserstein_dice" => {
            wasserstein_dice(x, y, &WassersteinDiceConfig::new().with_execution(e))
        }
        "dice_ce" => dice_ce(x, y, &DiceCeConfig::new().with_execution(e)),
        "dice_focal" => dice_focal(x, y, &DiceFocalConfig::new().with_execution(e)),
        "masked_dice_ce" => dice_ce(x, y, &DiceCeConfig::new().with_execution(e)),
        other => panic!("unknown multiclass loss {other}"),
    }
}

/// One step of a multiclass loss with its default configuration (forward, or
/// forward+backward when `backward`), waited for.
pub fn multiclass_step<const D: usize>(
    loss: &str,
    execution: Execution,
    x: &Tensor<D>,
    y: &WeightedClassTargets<D>,
    backward: bool,
) {
    let value =
        run_multiclass(loss, execution, x.clone(), y.clone()).expect("benchmark inputs are valid");
    if backward {
        let grads = value.backward();
        let grad = x.grad(&grads).expect("the input takes part in autodiff");
        grad.device().sync().expect("device sync");
    } else {
        value.device().sync().expect("device sync");
    }
}

/// Runs `loss` with its default configuration, on the given execution path.
pub fn run<const D: usize>(
    loss: &str,
    execution: Execution,
    logits: Tensor<D>,
    targets: BinaryTargets<D>,
) -> Result<Tensor<1>, SegLossError> {
    let e = execution;
    match loss {
        "binary_cross_entropy" => binary_cross_entropy(
            logits,
            targets,
            &BinaryCrossEntropyConfig::new().with_execution(e),
        ),
        "weighted_cross_entropy" => weighted_cross_entropy(
            logits,
            targets,
            &WeightedCrossEntropyConfig::new().with_execution(e),
        ),
        "soft_dice" => soft_dice(logits, targets, &SoftDiceConfig::new().with_execution(e)),
        "soft_jaccard" => {
            soft_jaccard(logits, targets, &SoftJaccardConfig::new().with_execution(e))
        }
        "lovasz_sigmoid" => lovasz_sigmoid(
            logits,
            targets,
            &LovaszSigmoidConfig::new().with_execution(e),
        ),
        "lovasz_hinge" => {
            lovasz_hinge(logits, targets, &LovaszHingeConfig::new().with_execution(e))
        }
        "tversky" => tversky(
            logits,
            targets,
            &TverskyConfig::new()
                .with_alpha(0.3)
                .with_beta(0.7)
                .with_execution(e),
        ),
        "focal" => focal(logits, targets, &FocalConfig::new().with_execution(e)),
        // nnU-Net's pair: soft Dice + BCE.
        "compound" => compound(
            logits,
            targets,
            &CompoundConfig::new()
                .with_term(1.0, Loss::SoftDice(SoftDiceConfig::new().with_execution(e)))
                .with_term(
                    1.0,
                    Loss::BinaryCrossEntropy(BinaryCrossEntropyConfig::new().with_execution(e)),
                ),
        ),
        "boundary_loss" => boundary_loss(logits, targets, &BoundaryConfig::new()),
        "hausdorff_dt_loss" => hausdorff_dt_loss(logits, targets, &HausdorffDtConfig::new()),
        "cl_dice" => cl_dice(logits, targets, &ClDiceConfig::new().with_execution(e)),
        "mcc" => mcc(logits, targets, &MccConfig::new().with_execution(e)),
        "masked_dice" => soft_dice(logits, targets, &SoftDiceConfig::new().with_execution(e)),
        "masked_bce" => binary_cross_entropy(
            logits,
            targets,
            &BinaryCrossEntropyConfig::new().with_execution(e),
        ),
        other => panic!("unknown loss {other}"),
    }
}

/// One forward pass, waited for (`device.sync()`: GPU work is asynchronous).
pub fn forward<const D: usize>(
    loss: &str,
    execution: Execution,
    x: &Tensor<D>,
    y: &BinaryTargets<D>,
) -> Tensor<1> {
    let value = run(loss, execution, x.clone(), y.clone()).expect("benchmark inputs are valid");
    value.device().sync().expect("device sync");
    value
}

/// One forward and backward pass on an autodiff input, waited for; returns the gradient.
pub fn forward_backward<const D: usize>(
    loss: &str,
    execution: Execution,
    x: &Tensor<D>,
    y: &BinaryTargets<D>,
) -> Tensor<D> {
    let value = run(loss, execution, x.clone(), y.clone()).expect("benchmark inputs are valid");
    let grads = value.backward();
    let grad = x.grad(&grads).expect("the input takes part in autodiff");
    grad.device().sync().expect("device sync");
    grad
}
