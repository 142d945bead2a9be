//! What a careless or unlucky user hands the crate (issue "Reliability, round two", items
//! 8-12): a PNG mask read as 0/255, three channels given to a binary loss, class indices of
//! any `i64` value, half-precision logits, absurd sizes. Each gives a typed error or the right
//! answer, never a panic or a silent number.

mod common;

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use common::*;
use segloss::losses::*;
use segloss::metrics::ClassConfusion;
use segloss::metrics::surface::{ClassSurfaceDistances, SurfaceConfig, distance_transform};
use segloss::{Execution, Reduction, SegLossError, TargetKind, validate_targets};
use serde_json::json;

/// Every binary loss with its default options on `execution` (`"host"`, `"device"`, or `""`
/// for `Auto`), boundary losses included.
fn binary_losses(execution: &str) -> Vec<(String, Loss)> {
    let options = if execution.is_empty() {
        json!({})
    } else {
        json!({ "execution": execution })
    };
    let mut losses: Vec<(String, Loss)> = ALL_LOSSES
        .iter()
        .chain(&LATER_LOSSES)
        .filter(|name| **name != "compound")
        .map(|name| {
            (
                name.to_string(),
                loss_config(name, &options, Reduction::None),
            )
        })
        .collect();
    losses.push(("boundary".into(), Loss::Boundary(BoundaryConfig::new())));
    losses.push((
        "hausdorff_dt".into(),
        Loss::HausdorffDt(HausdorffDtConfig::new()),
    ));
    losses
}

fn logits_values(len: usize) -> Vec<f64> {
    (0..len).map(|i| 3.0 * (i as f64 * 0.37).sin()).collect()
}

fn mask_values(len: usize, one: f64) -> Vec<f64> {
    (0..len)
        .map(|i| if i % 3 == 0 { one } else { 0.0 })
        .collect()
}

// Item 8: a 0/255 mask.

/// Every loss that reads its targets on the host path (all but the boundary loss, whose map
/// only thresholds `y > 0.5` and is right for a 0/255 mask) refuses a 0/255 mask there with
/// `InvalidTargets`, in f32 and f64, alone and inside a compound: the kernels count such
/// targets in the pass that reads them, the Hausdorff DT loss beside the masks it reads.
#[test]
fn a_0_255_mask_is_an_error_on_the_host_path() {
    let shape = [2, 1, 8, 8];
    let x = logits_values(128);
    let y = mask_values(128, 255.0);
    for (backend, device) in cpu_devices() {
        for dtype in [DType::F32, DType::F64] {
            let logits = tensor(&x, shape, &device, dtype);
            let targets = tensor(&y, shape, &device, dtype);
            for (name, loss) in binary_losses("") {
                if name == "boundary" {
                    continue;
                }
                let result = loss.compute(logits.clone(), targets.clone());
                assert!(
                    matches!(result, Err(SegLossError::InvalidTargets { ref reason }) if reason.contains("255")),
                    "{name} on {backend} {dtype:?}: {result:?}"
                );
            }
            let dice_ce = CompoundConfig::new()
                .with_term(1.0, Loss::SoftDice(SoftDiceConfig::new()))
                .with_term(
                    1.0,
                    Loss::BinaryCrossEntropy(BinaryCrossEntropyConfig::new()),
                );
            let result = compound(logits.clone(), targets.clone(), &dice_ce);
            assert!(
                matches!(result, Err(SegLossError::InvalidTargets { .. })),
                "compound on {backend}: {result:?}"
            );
            // One bad pixel past the first chunk of a large image, and a negative one.
            let big = [1, 1, 256, 256];
            let mut y = mask_values(65536, 1.0);
            y[40_000] = -0.5;
            let result = soft_dice(
                tensor(&logits_values(65536), big, &device, dtype),
                tensor(&y, big, &device, dtype),
                &SoftDiceConfig::new(),
            );
            assert!(
                matches!(result, Err(SegLossError::InvalidTargets { ref reason }) if reason.contains("40000")),
                "{result:?}"
            );
        }
    }
}

/// Targets in `[0, 1]`, soft ones included, pass the fused check unchanged, and a NaN target
/// is not an error: it gives a NaN loss (as a NaN logit does).
#[test]
fn soft_targets_pass_and_a_nan_target_gives_nan() {
    let shape = [2, 1, 4, 4];
    let x = logits_values(32);
    let soft: Vec<f64> = (0..32).map(|i| f64::from(i % 5) / 4.0).collect();
    let mut with_nan = mask_values(32, 1.0);
    with_nan[5] = f64::NAN;
    let device = f64_device();
    for name in ["binary_cross_entropy", "soft_dice", "tversky", "focal"] {
        let loss = loss_config(name, &json!({}), Reduction::None);
        let ok = loss.compute(
            tensor(&x, shape, &device, DType::F32),
            tensor(&soft, shape, &device, DType::F32),
        );
        assert!(ok.is_ok(), "{name}: {ok:?}");
        let nan = to_vec(
            loss.compute(
                tensor(&x, shape, &device, DType::F32),
                tensor(&with_nan, shape, &device, DType::F32),
            )
            .unwrap(),
        );
        assert!(nan[0].is_nan() && nan[1].is_finite(), "{name}: {nan:?}");
    }
}

/// The device path reads nothing back, so it cannot see a 0/255 mask; `validate_targets`, the
/// opt-in the docs of every binary loss name, does.
#[test]
fn validate_targets_is_the_device_path_opt_in() {
    let shape = [2, 1, 4, 4];
    let device = f64_device();
    let y = tensor(&mask_values(32, 255.0), shape, &device, DType::F32);
    let result = validate_targets(y, TargetKind::Soft);
    assert!(
        matches!(result, Err(SegLossError::InvalidTargets { ref reason }) if reason.contains("255")),
        "{result:?}"
    );
    let y = tensor(&mask_values(32, 1.0), shape, &device, DType::F32);
    assert_eq!(validate_targets(y, TargetKind::Hard), Ok(()));
}

// Item 9: channels handed to a binary loss.

#[test]
fn channels_handed_to_a_binary_loss_are_an_error_naming_the_multilabel_path() {
    let device = f64_device();
    for execution in ["host", "device"] {
        for (name, loss) in binary_losses(execution) {
            let shape = [2, 3, 4, 4];
            let result = loss.compute(
                tensor(&logits_values(96), shape, &device, DType::F32),
                tensor(&mask_values(96, 1.0), shape, &device, DType::F32),
            );
            match result {
                Err(SegLossError::UnsupportedShape {
                    shape, expected, ..
                }) => {
                    assert_eq!(shape, vec![2, 3, 4, 4]);
                    assert!(
                        expected.contains("multiclass_overlap")
                            && expected.contains("ClassMode::Multilabel"),
                        "{name}: {expected}"
                    );
                }
                other => panic!("{name} {execution}: {other:?}"),
            }
            // 3D volumes with channels too.
            let shape = [1, 2, 2, 2, 2];
            let result = loss.compute(
                tensor(&logits_values(16), shape, &device, DType::F32),
                tensor(&mask_values(16, 1.0), shape, &device, DType::F32),
            );
            assert!(
                matches!(result, Err(SegLossError::UnsupportedShape { .. })),
                "{name}: {result:?}"
            );
            // Rank 3 is [N, H, W], a 2D image without a channel axis: a loss, not an error.
            let shape = [2, 4, 4];
            let result = loss.compute(
                tensor(&logits_values(32), shape, &device, DType::F32),
                tensor(&mask_values(32, 1.0), shape, &device, DType::F32),
            );
            assert!(result.is_ok(), "{name} on [N, H, W]: {result:?}");
        }
    }
}

// Item 10: class indices of any value.

/// Index targets with these values at two pixels, and the per-class targets they mean: an
/// index of no class is a pixel with every class target 0.
fn odd_labels(
    value: i64,
    device: &Device,
) -> (Tensor<4>, Tensor<4, Int>, Tensor<4>, Vec<i64>, Vec<f64>) {
    let (n, classes, h, w) = (2, 3, 2, 4);
    let pixels = h * w;
    let mut labels: Vec<i64> = (0..n * pixels).map(|i| (i % classes) as i64).collect();
    labels[3] = value;
    labels[pixels + 6] = value;
    let mut per_class = vec![0.0; n * classes * pixels];
    for image in 0..n {
        for pixel in 0..pixels {
            let label = labels[image * pixels + pixel];
            if (0..classes as i64).contains(&label) {
                per_class[(image * classes + label as usize) * pixels + pixel] = 1.0;
            }
        }
    }
    let logits = tensor(
        &logits_values(n * classes * pixels),
        [n, classes, h, w],
        device,
        DType::F32,
    );
    let indices = Tensor::<4, Int>::from_data(
        TensorData::new(labels.clone(), [n, 1, h, w]),
        (device, DType::I64),
    );
    let per_class_tensor = tensor(&per_class, [n, classes, h, w], device, DType::F32);
    (logits, indices, per_class_tensor, labels, per_class)
}

/// Every multiclass loss with its defaults (the ones that take `include_background` with it on,
/// so that every class is scored), on `execution`.
fn multiclass_losses(execution: Execution) -> Vec<(&'static str, MulticlassLoss)> {
    vec![
        (
            "overlap",
            MulticlassLoss::Overlap(
                MulticlassOverlapConfig::new()
                    .with_include_background(true)
                    .with_execution(execution),
            ),
        ),
        (
            "generalized_dice",
            MulticlassLoss::GeneralizedDice(GeneralizedDiceConfig::new().with_execution(execution)),
        ),
        (
            "lovasz_softmax",
            MulticlassLoss::LovaszSoftmax(LovaszSoftmaxConfig::new().with_execution(execution)),
        ),
        (
            "cross_entropy",
            MulticlassLoss::Focal(
                MulticlassFocalConfig::new()
                    .with_gamma(0.0)
                    .with_execution(execution),
            ),
        ),
        (
            "boundary",
            MulticlassLoss::Boundary(MulticlassBoundaryConfig::new()),
        ),
        (
            "hausdorff_dt",
            MulticlassLoss::HausdorffDt(MulticlassHausdorffDtConfig::new()),
        ),
        (
            "cl_dice",
            MulticlassLoss::ClDice(MulticlassClDiceConfig::new()),
        ),
        (
            "wasserstein_dice",
            MulticlassLoss::WassersteinDice(WassersteinDiceConfig::new()),
        ),
        (
            "dice_ce",
            MulticlassLoss::DiceCe(
                DiceCeConfig::new()
                    .with_label_smoothing(0.1)
                    .with_execution(execution),
            ),
        ),
        (
            "dice_focal",
            MulticlassLoss::DiceFocal(DiceFocalConfig::new().with_execution(execution)),
        ),
    ]
}

/// `i64::MIN`, `-7`, `i64::MAX` (and `u8`/`i32` indices) are "no class" on every multiclass
/// loss and path: the same loss as per-class targets with an all-zero column there.
#[test]
fn class_indices_of_any_value_are_no_class_never_a_panic() {
    for (backend, device) in cpu_devices() {
        for value in [i64::MIN, -7, 3, 255, i64::MAX] {
            let (logits, indices, per_class, _, _) = odd_labels(value, &device);
            for execution in [Execution::Auto, Execution::Device] {
                for (name, loss) in multiclass_losses(execution) {
                    let from_indices = loss.compute(logits.clone(), indices.clone());
                    let expected = to_vec(loss.compute(logits.clone(), per_class.clone()).unwrap());
                    let got = to_vec(from_indices.unwrap_or_else(|e| {
                        panic!("{name} {backend} {execution:?} label {value}: {e}")
                    }));
                    for (g, e) in got.iter().zip(&expected) {
                        assert!(
                            (g - e).abs() <= 1e-5 * e.abs().max(1.0),
                            "{name} {backend} {execution:?} label {value}: {got:?} vs {expected:?}"
                        );
                    }
                }
            }
            // The metrics read the counts and say which index is wrong.
            let result = ClassConfusion::from_indices(indices.clone(), indices.clone(), 3, None);
            assert!(
                matches!(result, Err(SegLossError::InvalidTargets { .. })),
                "{backend} label {value}: {result:?}"
            );
        }
    }
}

/// Indices in narrow integer dtypes and an `ignore_index` no value of that dtype can hold
/// (`i64::MAX` against `u8` and `i32` maps, `-1` against `u8`): compared in the indices' own
/// dtype, never cast out of range.
#[test]
fn ignore_index_and_labels_outside_the_index_dtype_do_not_panic() {
    for (backend, device) in cpu_devices() {
        let (logits, indices, per_class, _, _) = odd_labels(1, &device);
        // And a map that holds the ignored value 255 at two pixels.
        let (_, with_255, _, labels_255, _) = odd_labels(255, &device);
        for dtype in [DType::U8, DType::I32, DType::I16] {
            let narrow = with_255.clone().cast(dtype);
            let config = MulticlassOverlapConfig::new()
                .with_include_background(true)
                .with_ignore_index(Some(255));
            for execution in [Execution::Auto, Execution::Device] {
                let config = config.clone().with_execution(execution);
                let got =
                    to_vec(multiclass_overlap(logits.clone(), narrow.clone(), &config).unwrap());
                // The same as i64 indices (whose ignored pixels the other tests check).
                let wide =
                    to_vec(multiclass_overlap(logits.clone(), with_255.clone(), &config).unwrap());
                assert!(
                    (got[0] - wide[0]).abs() < 1e-6,
                    "{backend} {dtype:?} {execution:?}"
                );
                // And not the loss that scores the two pixels as no class.
                let unignored = to_vec(
                    multiclass_overlap(
                        logits.clone(),
                        with_255.clone(),
                        &config.clone().with_ignore_index(None),
                    )
                    .unwrap(),
                );
                assert!(
                    (got[0] - unignored[0]).abs() > 1e-6,
                    "{backend} {dtype:?}: 255 not ignored"
                );
            }
            assert_eq!(labels_255.iter().filter(|&&l| l == 255).count(), 2);
        }
        for dtype in [DType::U8, DType::I32, DType::I16] {
            let narrow = indices.clone().cast(dtype);
            for ignore in [i64::MAX, i64::MIN, -1, 255] {
                for execution in [Execution::Auto, Execution::Device] {
                    let config = MulticlassOverlapConfig::new()
                        .with_include_background(true)
                        .with_ignore_index(Some(ignore))
                        .with_execution(execution);
                    let got = to_vec(
                        multiclass_overlap(logits.clone(), narrow.clone(), &config)
                            .unwrap_or_else(|e| panic!("{backend} {dtype:?} ignore {ignore}: {e}")),
                    );
                    // No pixel holds the ignored value: the loss without ignore_index.
                    let expected = to_vec(
                        multiclass_overlap(
                            logits.clone(),
                            per_class.clone(),
                            &config.clone().with_ignore_index(None),
                        )
                        .unwrap(),
                    );
                    assert!(
                        (got[0] - expected[0]).abs() < 1e-5,
                        "{backend} {dtype:?} ignore {ignore} {execution:?}: {got:?} vs {expected:?}"
                    );
                }
                let counts =
                    ClassConfusion::from_indices(narrow.clone(), narrow.clone(), 3, Some(ignore))
                        .unwrap_or_else(|e| panic!("{backend} {dtype:?} ignore {ignore}: {e}"));
                assert_eq!(counts.micro().fp(), &[0, 0]);
            }
        }
    }
}

// Item 11: half precision.

/// f16 and bf16 logits compute in f32: every binary and multiclass loss within 1e-2 of the f32
/// result on the same (rounded) inputs, with a finite gradient in the logits' own dtype. The
/// all-background weighted cross-entropy, NaN in f16 before, is among them.
#[test]
fn half_precision_logits_match_f32_within_1e_2() {
    let device = Device::flex().autodiff();
    let shape = [2, 1, 8, 8];
    let x = logits_values(128);
    let targets = [mask_values(128, 1.0), vec![0.0; 128]];
    for half in [DType::F16, DType::BF16] {
        // The f32 reference sees the inputs rounded to the half dtype.
        let rounded: Vec<f64> = to_vec(tensor(&x, shape, &device, half).cast(DType::F32));
        for y in &targets {
            for (name, loss) in binary_losses("") {
                let reference = to_vec(
                    loss.compute(
                        tensor(&rounded, shape, &device, DType::F32),
                        tensor(y, shape, &device, DType::F32),
                    )
                    .unwrap(),
                );
                let logits = tensor(&x, shape, &device, half).require_grad();
                let value = loss
                    .compute(logits.clone(), tensor(y, shape, &device, half))
                    .unwrap_or_else(|e| panic!("{name} {half:?}: {e}"));
                let grads = value.clone().sum().backward();
                let grad = logits.grad(&grads).expect("a gradient");
                assert_eq!(grad.dtype(), half, "{name}");
                assert!(
                    to_vec(grad).iter().all(|g| g.is_finite()),
                    "{name} {half:?}"
                );
                for (v, r) in to_vec(value).iter().zip(&reference) {
                    assert!(
                        (v - r).abs() <= 1e-2 * r.abs().max(1.0),
                        "{name} {half:?}: {v} vs f32 {r}"
                    );
                }
            }
        }
        let (logits, indices, _, _, _) = odd_labels(1, &Device::flex());
        let rounded = logits.clone().cast(half).cast(DType::F32);
        for (name, loss) in multiclass_losses(Execution::Auto) {
            let reference = to_vec(loss.compute(rounded.clone(), indices.clone()).unwrap());
            let value = to_vec(
                loss.compute(logits.clone().cast(half), indices.clone())
                    .unwrap_or_else(|e| panic!("{name} {half:?}: {e}")),
            );
            for (v, r) in value.iter().zip(&reference) {
                assert!(
                    v.is_finite() && (v - r).abs() <= 1e-2 * r.abs().max(1.0),
                    "{name} {half:?}: {v} vs f32 {r}"
                );
            }
        }
    }
}

// Item 12: sizes from user input.

#[test]
fn sizes_past_the_limits_are_too_large_not_wrapped() {
    // 2^32 x 2^32 wraps to 0 in u64: with no values it would have passed as an empty grid.
    let result = distance_transform(&[], &[1 << 32, 1 << 32], None);
    assert!(
        matches!(result, Err(SegLossError::TooLarge { .. })),
        "{result:?}"
    );
    let result = distance_transform(&[true; 4], &[usize::MAX, 2], None);
    assert!(
        matches!(result, Err(SegLossError::TooLarge { .. })),
        "{result:?}"
    );
    let device = f64_device();
    let labels = Tensor::<4, Int>::zeros([2, 1, 4, 4], &device);
    for classes in [usize::MAX, 1 << 62, 1 << 40, 1 << 31] {
        let result = ClassConfusion::from_indices(labels.clone(), labels.clone(), classes, None);
        assert!(
            matches!(result, Err(SegLossError::TooLarge { .. })),
            "{classes}: {result:?}"
        );
        let result = ClassSurfaceDistances::from_indices(
            labels.clone(),
            labels.clone(),
            classes,
            None,
            &SurfaceConfig::new(),
        );
        assert!(
            matches!(result, Err(SegLossError::TooLarge { .. })),
            "{classes}: {result:?}"
        );
    }
}

/// More classes than a `u8` index map can name (300 against 0..=255): the classes past 255 are
/// absent from every pixel, on both paths, as with per-class targets.
#[test]
fn more_classes_than_the_index_dtype_names() {
    let device = f64_device();
    let (classes, pixels) = (300, 4);
    let labels: Vec<i64> = vec![0, 7, 255, 3];
    let mut per_class = vec![0.0; classes * pixels];
    for (pixel, &label) in labels.iter().enumerate() {
        per_class[label as usize * pixels + pixel] = 1.0;
    }
    let logits = tensor(
        &logits_values(classes * pixels),
        [1, classes, 2, 2],
        &device,
        DType::F32,
    );
    let indices =
        Tensor::<4, Int>::from_data(TensorData::new(labels, [1, 1, 2, 2]), (&device, DType::I64))
            .cast(DType::U8);
    let per_class = tensor(&per_class, [1, classes, 2, 2], &device, DType::F32);
    for execution in [Execution::Auto, Execution::Device] {
        let config = MulticlassOverlapConfig::new()
            .with_include_background(true)
            .with_execution(execution);
        let got = to_vec(multiclass_overlap(logits.clone(), indices.clone(), &config).unwrap());
        let expected =
            to_vec(multiclass_overlap(logits.clone(), per_class.clone(), &config).unwrap());
        assert!(
            (got[0] - expected[0]).abs() < 1e-5,
            "{execution:?}: {got:?} vs {expected:?}"
        );
    }
}

/// The same on wgpu, for each half dtype its adapter computes in (lavapipe in CI; the test
/// says which it skipped).
#[cfg(feature = "wgpu")]
#[test]
fn half_precision_logits_on_wgpu_where_the_adapter_has_them() {
    let Some(device) = wgpu_device() else {
        return;
    };
    let shape = [2, 1, 8, 8];
    let x = logits_values(128);
    let y = mask_values(128, 1.0);
    for half in [DType::F16, DType::BF16] {
        if !device.supports_dtype(half) {
            eprintln!("wgpu adapter without {half:?}: skipped");
            continue;
        }
        let rounded: Vec<f64> = to_vec(tensor(&x, shape, &device, half).cast(DType::F32));
        for (name, loss) in binary_losses("") {
            let reference = to_vec(
                loss.compute(
                    tensor(&rounded, shape, &device, DType::F32),
                    tensor(&y, shape, &device, DType::F32),
                )
                .unwrap(),
            );
            let value = to_vec(
                loss.compute(
                    tensor(&x, shape, &device, half),
                    tensor(&y, shape, &device, half),
                )
                .unwrap_or_else(|e| panic!("{name} {half:?}: {e}")),
            );
            for (v, r) in value.iter().zip(&reference) {
                assert!(
                    (v - r).abs() <= 1e-2 * r.abs().max(1.0),
                    "{name} {half:?} on wgpu: {v} vs f32 {r}"
                );
            }
        }
    }
}
