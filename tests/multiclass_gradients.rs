//! Autodiff gradients against central finite differences, in f64, for the multiclass losses
//! (their values and gradients are also checked against MONAI, smp and torch in
//! `tests/multiclass.rs`; this checks the gradient against the loss's own value), through the
//! host kernels and the burn-operations path where a loss has both, with class-index targets,
//! an ignored index and per-class targets.

mod common;

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use common::*;
use segloss::losses::*;
use segloss::{Execution, Reduction, SegLossError};

const SHAPE: [usize; 4] = [2, 3, 4, 5];
const H: f64 = 1e-6;

/// Every multiclass loss with options that change its formula, on `execution`.
fn losses(execution: Execution) -> Vec<(&'static str, MulticlassLoss)> {
    let distances = vec![
        vec![0.0, 1.0, 2.0],
        vec![1.0, 0.0, 0.5],
        vec![1.5, 0.7, 0.0],
    ];
    vec![
        (
            "dice",
            MulticlassLoss::Overlap(MulticlassOverlapConfig::new().with_execution(execution)),
        ),
        (
            "focal Tversky, absent classes zero",
            MulticlassLoss::Overlap(
                MulticlassOverlapConfig::new()
                    .with_score(OverlapScore::Tversky {
                        alpha: 0.3,
                        beta: 0.7,
                        gamma: 0.75,
                    })
                    .with_average(ClassAverage::ZeroAbsent)
                    .with_execution(execution),
            ),
        ),
        (
            "generalized dice",
            MulticlassLoss::GeneralizedDice(GeneralizedDiceConfig::new().with_execution(execution)),
        ),
        (
            "cross-entropy, label smoothing, torch's weighted mean",
            MulticlassLoss::Focal(
                MulticlassFocalConfig::new()
                    .with_gamma(0.0)
                    .with_class_weights(Some(vec![0.5, 2.0, 1.0]))
                    .with_label_smoothing(0.1)
                    .with_pixel_average(PixelAverage::TorchWeighted)
                    .with_execution(execution),
            ),
        ),
        (
            "wasserstein dice",
            MulticlassLoss::WassersteinDice(
                WassersteinDiceConfig::new()
                    .with_distances(Some(distances.clone()))
                    .with_execution(execution),
            ),
        ),
        (
            "wasserstein dice, gdl",
            MulticlassLoss::WassersteinDice(
                WassersteinDiceConfig::new()
                    .with_weighting(WassersteinWeighting::Gdl)
                    .with_execution(execution),
            ),
        ),
        (
            "cl_dice",
            MulticlassLoss::ClDice(
                MulticlassClDiceConfig::new()
                    .with_include_background(false)
                    .with_iterations(2),
            ),
        ),
        (
            "dice_ce",
            MulticlassLoss::DiceCe(
                DiceCeConfig::new()
                    .with_class_weights(Some(vec![1.0, 2.0, 0.5]))
                    .with_label_smoothing(0.05)
                    .with_execution(execution),
            ),
        ),
        (
            "dice_focal",
            MulticlassLoss::DiceFocal(DiceFocalConfig::new().with_execution(execution)),
        ),
    ]
}

/// Class indices `[N, 1, ...]` in `0..C`, with `255` at a few pixels when `ignore`.
fn indices(rng: &mut TestRng, ignore: bool, device: &Device) -> Tensor<4, Int> {
    let n = SHAPE[0] * SHAPE[2] * SHAPE[3];
    let v: Vec<i64> = (0..n)
        .map(|i| {
            if ignore && i % 7 == 3 {
                255
            } else {
                (rng.next_u64() % SHAPE[1] as u64) as i64
            }
        })
        .collect();
    Tensor::from_data(
        TensorData::new(v, [SHAPE[0], 1, SHAPE[2], SHAPE[3]]),
        device,
    )
}

#[test]
fn multiclass_autodiff_matches_finite_differences() {
    let device = f64_device();
    let n: usize = SHAPE.iter().product();
    let mut rng = TestRng::new(17);
    for execution in [Execution::Host, Execution::Device] {
        for (name, loss) in losses(execution) {
            // An execution a loss has no host path for is the burn-operations path.
            let loss = with_ignore(loss, 255);
            for targets_kind in ["indices", "ignored", "per_class"] {
                if targets_kind == "per_class" && ignores(&loss) {
                    continue;
                }
                let x: Vec<f64> = (0..n).map(|_| rng.range(-3.0, 3.0)).collect();
                let targets: ClassTargets<4> = match targets_kind {
                    "per_class" => {
                        let soft: Vec<f64> = (0..n).map(|_| rng.range(0.0, 1.0)).collect();
                        tensor(&soft, SHAPE, &device, DType::F64).into()
                    }
                    kind => indices(&mut rng, kind == "ignored", &device).into(),
                };
                let value_at = |x: &[f64], device: &Device| -> Result<Tensor<1>, SegLossError> {
                    loss.compute(
                        tensor(x, SHAPE, device, DType::F64),
                        move_to(&targets, device),
                    )
                };
                let ad = device.clone().autodiff();
                let xt = tensor(&x, SHAPE, &ad, DType::F64).require_grad();
                let value = loss
                    .compute(xt.clone(), move_to(&targets, &ad))
                    .unwrap_or_else(|e| panic!("{name} {targets_kind}: {e}"));
                let grads = value.backward();
                let grad = to_vec(xt.grad(&grads).unwrap());
                let numeric: Vec<f64> = (0..n)
                    .map(|i| {
                        let (mut plus, mut minus) = (x.clone(), x.clone());
                        plus[i] += H;
                        minus[i] -= H;
                        let at = |x: &[f64]| to_vec(value_at(x, &device).unwrap())[0];
                        (at(&plus) - at(&minus)) / (2.0 * H)
                    })
                    .collect();
                assert_close(
                    &grad,
                    &numeric,
                    1e-6,
                    1e-3,
                    &format!("{name} {execution:?} {targets_kind}"),
                );
            }
        }
    }
}

/// `loss` with `ignore` as its ignored index where it takes one.
fn with_ignore(loss: MulticlassLoss, ignore: i64) -> MulticlassLoss {
    match loss {
        MulticlassLoss::Overlap(c) => MulticlassLoss::Overlap(c.with_ignore_index(Some(ignore))),
        MulticlassLoss::Focal(c) => MulticlassLoss::Focal(c.with_ignore_index(Some(ignore))),
        MulticlassLoss::WassersteinDice(c) => {
            MulticlassLoss::WassersteinDice(c.with_ignore_index(Some(ignore)))
        }
        MulticlassLoss::DiceCe(c) => MulticlassLoss::DiceCe(c.with_ignore_index(Some(ignore))),
        other => other,
    }
}

/// Whether `loss` has an ignored index (which per-class targets cannot carry).
fn ignores(loss: &MulticlassLoss) -> bool {
    matches!(
        loss,
        MulticlassLoss::Overlap(_)
            | MulticlassLoss::Focal(_)
            | MulticlassLoss::WassersteinDice(_)
            | MulticlassLoss::DiceCe(_)
    )
}

/// `targets` on `device` (the same values).
fn move_to(targets: &ClassTargets<4>, device: &Device) -> ClassTargets<4> {
    match targets {
        ClassTargets::Indices(t) => ClassTargets::Indices(t.clone().to_device(device)),
        ClassTargets::PerClass(t) => ClassTargets::PerClass(t.clone().to_device(device)),
    }
}

/// `Reduction::None` gives one value per image, or one for the batch where the loss averages
/// over the batch.
#[test]
fn reductions_keep_their_shapes() {
    let device = f64_device();
    let mut rng = TestRng::new(3);
    let n: usize = SHAPE.iter().product();
    let x: Vec<f64> = (0..n).map(|_| rng.range(-3.0, 3.0)).collect();
    let targets = indices(&mut rng, false, &device);
    for (name, loss) in losses(Execution::Auto) {
        // torch's weighted mean is one value for the batch.
        let per_image = !matches!(
            &loss,
            MulticlassLoss::Focal(c) if c.pixel_average == PixelAverage::TorchWeighted
        );
        let value = with_reduction(loss, Reduction::None)
            .compute(tensor(&x, SHAPE, &device, DType::F64), targets.clone())
            .unwrap();
        let expected = if per_image { SHAPE[0] } else { 1 };
        assert_eq!(value.dims(), [expected], "{name}");
    }
}

fn with_reduction(loss: MulticlassLoss, reduction: Reduction) -> MulticlassLoss {
    match loss {
        MulticlassLoss::Overlap(c) => MulticlassLoss::Overlap(c.with_reduction(reduction)),
        MulticlassLoss::GeneralizedDice(c) => {
            MulticlassLoss::GeneralizedDice(c.with_reduction(reduction))
        }
        MulticlassLoss::Focal(c) => MulticlassLoss::Focal(c.with_reduction(reduction)),
        MulticlassLoss::WassersteinDice(c) => {
            MulticlassLoss::WassersteinDice(c.with_reduction(reduction))
        }
        MulticlassLoss::ClDice(c) => MulticlassLoss::ClDice(c.with_reduction(reduction)),
        MulticlassLoss::DiceCe(c) => MulticlassLoss::DiceCe(c.with_reduction(reduction)),
        MulticlassLoss::DiceFocal(c) => MulticlassLoss::DiceFocal(c.with_reduction(reduction)),
        other => other,
    }
}
