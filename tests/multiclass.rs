//! The multiclass / multilabel overlap losses: values and gradients against MONAI's
//! `DiceLoss` / `TverskyLoss` and a closed form (`tests/reference/multiclass.json`, generated
//! by `tests/reference/generate_multiclass.py`) on every backend; the binary losses as the
//! one-channel case; errors; `validate_class_indices`.

mod common;

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use common::*;
use segloss::losses::{
    ClassAverage, ClassMode, ClassTargets, MulticlassOverlapConfig, OverlapScore, SoftDiceConfig,
    TverskyConfig, multiclass_overlap, soft_dice, tversky,
};
use segloss::{Aggregation, Reduction, SegLossError, validate_class_indices};
use serde_json::Value;

fn fixtures() -> Value {
    serde_json::from_str(include_str!("reference/multiclass.json")).unwrap()
}

/// The config of the fixtures' JSON options (missing keys keep the defaults).
fn config(options: &Value, reduction: Reduction) -> MulticlassOverlapConfig {
    let f = |k: &str, d: f64| options[k].as_f64().unwrap_or(d);
    let flag = |k: &str, d: bool| options[k].as_bool().unwrap_or(d);
    let score = match options["score"].as_str() {
        None | Some("dice") => OverlapScore::Dice,
        Some("jaccard") => OverlapScore::Jaccard,
        Some("tversky") => OverlapScore::Tversky {
            alpha: f("alpha", 0.5),
            beta: f("beta", 0.5),
        },
        Some(other) => panic!("unknown score {other}"),
    };
    MulticlassOverlapConfig::new()
        .with_score(score)
        .with_mode(match options["mode"].as_str() {
            Some("multilabel") => ClassMode::Multilabel,
            _ => ClassMode::Softmax,
        })
        .with_from_logits(flag("from_logits", true))
        .with_include_background(flag("include_background", true))
        .with_class_weights(
            options["class_weights"]
                .as_array()
                .map(|w| floats(&Value::from(w.clone()))),
        )
        .with_ignore_index(options["ignore_index"].as_i64())
        .with_average(match options["average"].as_str() {
            Some("present") => ClassAverage::Present,
            _ => ClassAverage::All,
        })
        .with_smooth_nr(f("smooth_nr", 1e-5))
        .with_smooth_dr(f("smooth_dr", 1e-5))
        .with_squared(flag("squared", false))
        .with_soft_label(flag("soft_label", false))
        .with_log_loss(flag("log_loss", false))
        .with_aggregation(match options["aggregation"].as_str() {
            Some("batch") => Aggregation::Batch,
            _ => Aggregation::PerImage,
        })
        .with_reduction(reduction)
}

fn shape_of<const D: usize>(v: &Value) -> [usize; D] {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect::<Vec<_>>()
        .try_into()
        .unwrap()
}

fn indices<const D: usize>(values: &Value, shape: [usize; D], device: &Device) -> Tensor<D, Int> {
    let v: Vec<i64> = values
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_i64().unwrap())
        .collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

fn check_case<const D: usize>(case: &Value, input: &Value, device: &Device, backend: &str) {
    let shape: [usize; D] = shape_of(&input["shape"]);
    let mut index_shape = shape;
    index_shape[1] = 1;
    let kind = case["targets"].as_str().unwrap();
    let targets = |device: &Device| -> ClassTargets<D> {
        if kind.starts_with("indices") {
            indices(&input[kind], index_shape, device).into()
        } else {
            tensor(&floats(&input[kind]), shape, device, DType::F32).into()
        }
    };
    let x = if case["input_values"].is_null() {
        floats(&input["logits"])
    } else {
        floats(&case["input_values"])
    };
    let options = &case["options"];
    let what = format!("{backend} {kind} {options} on {shape:?}");
    let tol = parity_tolerance(backend);
    for (reduction, expected) in [
        (Reduction::None, floats(&case["per_item"])),
        (Reduction::Mean, vec![case["mean"].as_f64().unwrap()]),
        (Reduction::Sum, vec![case["sum"].as_f64().unwrap()]),
    ] {
        let loss = multiclass_overlap(
            tensor(&x, shape, device, DType::F32),
            targets(device),
            &config(options, reduction),
        )
        .unwrap();
        assert_close(
            &to_vec(loss),
            &expected,
            tol,
            1e-6,
            &format!("{what} {reduction:?}"),
        );
    }
    let ad = device.clone().autodiff();
    let xt = tensor(&x, shape, &ad, DType::F32).require_grad();
    let loss =
        multiclass_overlap(xt.clone(), targets(&ad), &config(options, Reduction::Mean)).unwrap();
    let grads = loss.backward();
    let grad = to_vec(xt.grad(&grads).unwrap());
    assert_close(
        &grad,
        &floats(&case["grad_mean"]),
        tol,
        0.0,
        &format!("{what} gradient"),
    );
}

#[test]
fn multiclass_overlap_matches_monai_and_the_closed_form() {
    let doc = fixtures();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for (backend, device) in all_devices() {
        for case in cases {
            let input = &doc["inputs"][case["input"].as_str().unwrap()];
            match input["shape"].as_array().unwrap().len() {
                4 => check_case::<4>(case, input, &device, backend),
                5 => check_case::<5>(case, input, &device, backend),
                r => panic!("no fixture of rank {r} expected"),
            }
        }
    }
}

#[test]
fn one_multilabel_channel_is_the_binary_loss() {
    // C = 1 with a sigmoid: the multiclass loss of the only class is the binary loss.
    const SHAPE: [usize; 4] = [3, 1, 5, 4];
    let n: usize = SHAPE.iter().product();
    let mut rng = TestRng::new(31);
    let x: Vec<f64> = (0..n).map(|_| rng.range(-4.0, 4.0)).collect();
    let y = rng.mask(n, 0.4);
    for (backend, device) in all_devices() {
        let xt = || tensor(&x, SHAPE, &device, DType::F32);
        let yt = || tensor(&y, SHAPE, &device, DType::F32);
        let multilabel = MulticlassOverlapConfig::new()
            .with_mode(ClassMode::Multilabel)
            .with_reduction(Reduction::None);
        let got = to_vec(multiclass_overlap(xt(), yt(), &multilabel).unwrap());
        let binary = to_vec(
            soft_dice(
                xt(),
                yt(),
                &SoftDiceConfig::new().with_reduction(Reduction::None),
            )
            .unwrap(),
        );
        assert_close(
            &got,
            &binary,
            parity_tolerance(backend),
            1e-6,
            &format!("{backend} dice"),
        );
        let t = multilabel.clone().with_score(OverlapScore::Tversky {
            alpha: 0.3,
            beta: 0.7,
        });
        let got = to_vec(multiclass_overlap(xt(), yt(), &t).unwrap());
        let binary = to_vec(
            tversky(
                xt(),
                yt(),
                &TverskyConfig::new()
                    .with_alpha(0.3)
                    .with_beta(0.7)
                    .with_reduction(Reduction::None),
            )
            .unwrap(),
        );
        assert_close(
            &got,
            &binary,
            parity_tolerance(backend),
            1e-6,
            &format!("{backend} tversky"),
        );
    }
}

#[test]
fn class_indices_and_their_one_hot_give_the_same_loss_and_gradient() {
    const SHAPE: [usize; 4] = [2, 3, 4, 5];
    let mut rng = TestRng::new(32);
    let n: usize = SHAPE.iter().product();
    let x: Vec<f64> = (0..n).map(|_| rng.range(-3.0, 3.0)).collect();
    let classes: Vec<i64> = (0..n / 3)
        .map(|_| (rng.range(0.0, 3.0) as i64).min(2))
        .collect();
    let mut one_hot = vec![0.0; n];
    for (i, &c) in classes.iter().enumerate() {
        let (image, pixel) = (i / 20, i % 20);
        one_hot[image * 60 + c as usize * 20 + pixel] = 1.0;
    }
    for (backend, device) in all_devices() {
        let ad = device.clone().autodiff();
        let run = |targets: ClassTargets<4>, xt: Tensor<4>| {
            let l =
                multiclass_overlap(xt.clone(), targets, &MulticlassOverlapConfig::new()).unwrap();
            let g = to_vec(xt.grad(&l.backward()).unwrap());
            (to_vec(l), g)
        };
        let xt = || tensor(&x, SHAPE, &ad, DType::F32).require_grad();
        let idx = indices(&Value::from(classes.clone()), [2, 1, 4, 5], &ad);
        let (v1, g1) = run(idx.into(), xt());
        let (v2, g2) = run(tensor(&one_hot, SHAPE, &ad, DType::F32).into(), xt());
        let tol = parity_tolerance(backend);
        assert_close(&v1, &v2, tol, 1e-6, &format!("{backend} value"));
        assert_close(&g1, &g2, tol, 0.0, &format!("{backend} gradient"));
    }
}

#[test]
fn bad_multiclass_input_is_an_error() {
    let device = f64_device();
    let x = || tensor(&[0.0; 24], [2, 3, 2, 2], &device, DType::F32);
    let idx = |shape: [usize; 4]| {
        let n: usize = shape.iter().product();
        Tensor::<4, Int>::from_data(TensorData::new(vec![1i64; n], shape), &device)
    };
    let config = MulticlassOverlapConfig::new();
    // Index targets must be [N, 1, ...].
    let err = multiclass_overlap(x(), idx([2, 3, 2, 2]), &config).unwrap_err();
    assert!(matches!(err, SegLossError::ShapeMismatch { .. }), "{err}");
    // Per-class targets must have the logits' shape.
    let y = tensor(&[0.0; 16], [2, 2, 2, 2], &device, DType::F32);
    assert!(matches!(
        multiclass_overlap(x(), y, &config).unwrap_err(),
        SegLossError::ShapeMismatch { .. }
    ));
    for (bad, name) in [
        (
            config.clone().with_class_weights(Some(vec![1.0, 2.0])),
            "class_weights",
        ),
        (
            config
                .clone()
                .with_class_weights(Some(vec![1.0, -2.0, 1.0])),
            "class_weights",
        ),
        (config.clone().with_smooth_nr(-1.0), "smooth_nr"),
        (
            config.clone().with_soft_label(true).with_squared(true),
            "soft_label",
        ),
        (
            config.clone().with_score(OverlapScore::Tversky {
                alpha: -1.0,
                beta: 0.5,
            }),
            "alpha",
        ),
    ] {
        let err = multiclass_overlap(x(), idx([2, 1, 2, 2]), &bad).unwrap_err();
        assert!(
            matches!(&err, SegLossError::InvalidParameter { name: n, .. } if *n == name),
            "{name}: {err}"
        );
    }
    // ignore_index needs index targets.
    let y = tensor(&[0.0; 24], [2, 3, 2, 2], &device, DType::F32);
    let err = multiclass_overlap(x(), y, &config.clone().with_ignore_index(Some(0))).unwrap_err();
    assert!(
        matches!(
            &err,
            SegLossError::InvalidParameter {
                name: "ignore_index",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn validate_class_indices_finds_out_of_range_indices() {
    let device = f64_device();
    let y = Tensor::<3, Int>::from_data(TensorData::new(vec![0i64, 2, 255, 1], [1, 1, 4]), &device);
    assert!(validate_class_indices(y.clone(), 3, Some(255)).is_ok());
    let err = validate_class_indices(y.clone(), 3, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("255") && err.contains("flat index 2"), "{err}");
    assert!(validate_class_indices(y, 2, Some(255)).is_err());
}
