//! The multiclass losses: values and gradients on every backend against MONAI's `DiceLoss` /
//! `TverskyLoss` (`multiclass.json`), smp's `DiceLoss` / `JaccardLoss` / `TverskyLoss` in
//! multiclass and multilabel modes (`multiclass_smp.json`), Berman's `lovasz_softmax` (`lovasz_softmax.json`, both
//! execution paths), MONAI's `GeneralizedDiceLoss` (`generalized_dice.json`) and
//! `FocalLoss(use_softmax=True)` (`multiclass_focal.json`), each
//! cross-checked against a closed form by its generator in `tests/reference/`; MONAI's
//! `SoftclDiceLoss` and `GeneralizedWassersteinDiceLoss` and smp's `TverskyLoss(gamma)`
//! (`requested_multiclass.json`); the binary
//! losses as the one-channel case; errors; `validate_class_indices`.

mod common;

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use common::*;
use segloss::losses::{
    ClassAverage, ClassMode, ClassTargets, DiceCeConfig, DiceFocalConfig, GeneralizedDiceConfig,
    GeneralizedDiceWeight, LovaszClasses, LovaszSoftmaxConfig, MulticlassClDiceConfig,
    MulticlassCompoundConfig, MulticlassFocalConfig, MulticlassLoss, MulticlassOverlapConfig,
    OverlapScore, PixelAverage, SoftDiceConfig, TverskyConfig, WassersteinDiceConfig,
    WassersteinWeighting, WeightedClassTargets, generalized_dice, lovasz_softmax,
    multiclass_compound, multiclass_overlap, soft_dice, tversky, wasserstein_dice,
};
use segloss::{Aggregation, Execution, Reduction, SegLossError, validate_class_indices};
use serde_json::Value;

/// The fixture files, with the loss each one is for.
fn fixtures() -> [(&'static str, Value); 7] {
    let parse = |text: &str| serde_json::from_str(text).unwrap();
    [
        (
            "multiclass_overlap",
            parse(include_str!("reference/multiclass.json")),
        ),
        (
            "multiclass_overlap",
            parse(include_str!("reference/multiclass_smp.json")),
        ),
        (
            "lovasz_softmax",
            parse(include_str!("reference/lovasz_softmax.json")),
        ),
        (
            "generalized_dice",
            parse(include_str!("reference/generalized_dice.json")),
        ),
        (
            "multiclass_focal",
            parse(include_str!("reference/multiclass_focal.json")),
        ),
        // Each case names its loss (clDice, Wasserstein Dice, smp's focal Tversky).
        (
            "multiclass_overlap",
            parse(include_str!("reference/requested_multiclass.json")),
        ),
        // Each case names its loss and its pixel weights (the binary cases are checked in
        // `tests/pixel_weights.rs`).
        (
            "multiclass_overlap",
            parse(include_str!("reference/pixel_weights.json")),
        ),
    ]
}

/// Runs the multiclass loss `loss` with the fixtures' JSON options, through
/// [`MulticlassLoss::compute`], or [`multiclass_compound`] for `"multiclass_compound"`
/// (`"terms": [{"weight", "loss", "options"}]`).
fn run<const D: usize>(
    loss: &str,
    options: &Value,
    reduction: Reduction,
    x: Tensor<D>,
    targets: WeightedClassTargets<D>,
) -> Result<Tensor<1>, SegLossError> {
    if loss != "multiclass_compound" {
        return multiclass_loss(loss, options, reduction).compute(x, targets);
    }
    let mut config = MulticlassCompoundConfig::new();
    for term in options["terms"].as_array().unwrap() {
        let mut term_options = term["options"].clone();
        if term_options.is_null() {
            term_options = serde_json::json!({});
        }
        if !options["execution"].is_null() {
            term_options["execution"] = options["execution"].clone();
        }
        config = config.with_term(
            term["weight"].as_f64().unwrap(),
            multiclass_loss(term["loss"].as_str().unwrap(), &term_options, reduction),
        );
    }
    multiclass_compound(x, targets, &config)
}

/// A preset config with the options both presets share, from the JSON options and the overlap
/// config `base` read from them (the presets are two types with the same `with_*` methods).
macro_rules! with_preset_options {
    ($config:expr, $options:expr, $base:expr, $reduction:expr) => {
        $config
            .with_lambda_dice($options["lambda_dice"].as_f64().unwrap())
            .with_include_background($base.include_background)
            .with_class_weights($base.class_weights.clone())
            .with_ignore_index($base.ignore_index)
            .with_smooth_nr($base.smooth_nr)
            .with_smooth_dr($base.smooth_dr)
            .with_squared($base.squared)
            .with_aggregation($base.aggregation)
            .with_from_logits($base.from_logits)
            .with_reduction($reduction)
    };
}

/// The [`MulticlassLoss`] (name and config) of the JSON options.
fn multiclass_loss(loss: &str, options: &Value, reduction: Reduction) -> MulticlassLoss {
    let base = config(options, reduction);
    match loss {
        "multiclass_overlap" => MulticlassLoss::Overlap(base),
        "lovasz_softmax" => {
            let classes = match &options["classes"] {
                Value::Array(list) => {
                    LovaszClasses::List(list.iter().map(|c| c.as_u64().unwrap() as usize).collect())
                }
                Value::String(s) if s == "all" => LovaszClasses::All,
                _ => LovaszClasses::Present,
            };
            MulticlassLoss::LovaszSoftmax(
                LovaszSoftmaxConfig::new()
                    .with_classes(classes)
                    .with_aggregation(if options["per_image"].as_bool().unwrap_or(false) {
                        Aggregation::PerImage
                    } else {
                        Aggregation::Batch
                    })
                    .with_ignore_index(base.ignore_index)
                    .with_from_logits(base.from_logits)
                    .with_reduction(reduction)
                    .with_execution(match options["execution"].as_str() {
                        Some("host") => Execution::Host,
                        Some("device") => Execution::Device,
                        _ => Execution::Auto,
                    }),
            )
        }
        "generalized_dice" => {
            let weight = match options["weight_type"].as_str() {
                Some("simple") => GeneralizedDiceWeight::Simple,
                Some("uniform") => GeneralizedDiceWeight::Uniform,
                _ => GeneralizedDiceWeight::Square,
            };
            MulticlassLoss::GeneralizedDice(
                GeneralizedDiceConfig::new()
                    .with_weight(weight)
                    .with_mode(base.mode)
                    .with_from_logits(base.from_logits)
                    .with_include_background(base.include_background)
                    .with_ignore_index(base.ignore_index)
                    .with_smooth_nr(base.smooth_nr)
                    .with_smooth_dr(base.smooth_dr)
                    .with_aggregation(base.aggregation)
                    .with_reduction(reduction),
            )
        }
        "multiclass_focal" => MulticlassLoss::Focal(
            MulticlassFocalConfig::new()
                .with_gamma(options["gamma"].as_f64().unwrap_or(2.0))
                .with_label_smoothing(options["label_smoothing"].as_f64().unwrap_or(0.0))
                .with_pixel_average(match options["pixel_average"].as_str() {
                    Some("torch_weighted") => PixelAverage::TorchWeighted,
                    _ => PixelAverage::PerImage,
                })
                .with_class_weights(base.class_weights)
                .with_mode(base.mode)
                .with_include_background(base.include_background)
                .with_ignore_index(base.ignore_index)
                .with_from_logits(base.from_logits)
                .with_reduction(reduction),
        ),
        "multiclass_cl_dice" => MulticlassLoss::ClDice(
            MulticlassClDiceConfig::new()
                .with_iterations(options["iterations"].as_u64().unwrap() as usize)
                .with_smooth_nr(base.smooth_nr)
                .with_smooth_dr(base.smooth_dr)
                .with_smooth(options["smooth"].as_f64().unwrap())
                .with_mode(base.mode)
                .with_include_background(base.include_background)
                .with_from_logits(base.from_logits)
                .with_reduction(reduction),
        ),
        "wasserstein_dice" => MulticlassLoss::WassersteinDice(
            WassersteinDiceConfig::new()
                .with_distances(
                    options["distances"]
                        .as_array()
                        .map(|rows| rows.iter().map(floats).collect::<Vec<_>>()),
                )
                .with_weighting(match options["weighting"].as_str() {
                    Some("gdl") => WassersteinWeighting::Gdl,
                    _ => WassersteinWeighting::Default,
                })
                .with_smooth_nr(base.smooth_nr)
                .with_smooth_dr(base.smooth_dr)
                .with_ignore_index(base.ignore_index)
                .with_from_logits(base.from_logits)
                .with_reduction(reduction)
                .with_execution(match options["execution"].as_str() {
                    Some("host") => Execution::Host,
                    Some("device") => Execution::Device,
                    _ => Execution::Auto,
                }),
        ),
        "dice_ce" => MulticlassLoss::DiceCe(with_preset_options!(
            DiceCeConfig::new()
                .with_lambda_ce(options["lambda_ce"].as_f64().unwrap())
                .with_label_smoothing(options["label_smoothing"].as_f64().unwrap()),
            options,
            base,
            reduction
        )),
        "dice_focal" => MulticlassLoss::DiceFocal(with_preset_options!(
            DiceFocalConfig::new()
                .with_lambda_focal(options["lambda_focal"].as_f64().unwrap())
                .with_gamma(options["gamma"].as_f64().unwrap()),
            options,
            base,
            reduction
        )),
        other => panic!("unknown multiclass loss {other}"),
    }
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
            gamma: f("gamma", 1.0),
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
            Some("zero_absent") => ClassAverage::ZeroAbsent,
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

fn check_case<const D: usize>(
    loss: &str,
    case: &Value,
    input: &Value,
    device: &Device,
    backend: &str,
    execution: &str,
) {
    let shape: [usize; D] = shape_of(&input["shape"]);
    let mut index_shape = shape;
    index_shape[1] = 1;
    let kind = case["targets"].as_str().unwrap();
    let weights = case["options"]["weights"].as_str();
    let targets = |device: &Device| -> WeightedClassTargets<D> {
        let targets: ClassTargets<D> = if kind.starts_with("indices") {
            indices(&input[kind], index_shape, device).into()
        } else {
            tensor(&floats(&input[kind]), shape, device, DType::F32).into()
        };
        match weights {
            Some(name) => {
                let w = tensor(&floats(&input[name]), index_shape, device, DType::F32);
                targets.with_pixel_weights(w)
            }
            None => targets.into(),
        }
    };
    let x = if case["input_values"].is_null() {
        floats(&input["logits"])
    } else {
        floats(&case["input_values"])
    };
    let options = &with_execution(&case["options"], execution);
    let what = format!("{backend} {loss} {kind} {options} on {shape:?}");
    check_fixture_case(
        case,
        &x,
        shape,
        device,
        parity_tolerance(backend),
        &what,
        |reduction, x, device| run(loss, options, reduction, x, targets(device)).unwrap(),
    );
}

#[test]
fn multiclass_losses_match_monai_berman_and_the_closed_form() {
    for (loss, doc) in fixtures() {
        let cases = doc["cases"].as_array().unwrap();
        assert!(cases.len() >= 10, "{loss}: {} cases", cases.len());
        // Both paths where a loss has an execution option that the other fixtures do not
        // exercise: the Lovász sort, and the host kernel of the Wasserstein Dice loss.
        // (and both paths of every loss with pixel weights).
        let executions: &[&str] =
            if loss == "lovasz_softmax" || cases.iter().any(|c| c["loss"] == "wasserstein_dice") {
                &EXECUTIONS
            } else {
                &["auto"]
            };
        for (backend, device) in all_devices() {
            for &execution in executions {
                for case in cases.iter().filter(|c| c["kind"] != "binary") {
                    let input = &doc["inputs"][case["input"].as_str().unwrap()];
                    let loss = case["loss"].as_str().unwrap_or(loss);
                    match input["shape"].as_array().unwrap().len() {
                        4 => check_case::<4>(loss, case, input, &device, backend, execution),
                        5 => check_case::<5>(loss, case, input, &device, backend, execution),
                        r => panic!("no fixture of rank {r} expected"),
                    }
                }
            }
        }
    }
}

#[test]
fn multiclass_compound_is_monai_dice_ce() {
    // Inputs of multiclass.json; values and gradients of MONAI's DiceCELoss(softmax=True).
    let inputs = fixtures()[0].1["inputs"].clone();
    let doc: Value =
        serde_json::from_str(include_str!("reference/multiclass_compound.json")).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for (backend, device) in all_devices() {
        for case in cases {
            let input = &inputs[case["input"].as_str().unwrap()];
            let loss = "multiclass_compound";
            match input["shape"].as_array().unwrap().len() {
                4 => check_case::<4>(loss, case, input, &device, backend, "auto"),
                5 => check_case::<5>(loss, case, input, &device, backend, "auto"),
                r => panic!("no fixture of rank {r} expected"),
            }
        }
    }
}

/// With two classes and the 0/1 distances, the generalized Wasserstein Dice loss is the soft
/// Dice loss of class 1 (background weight 0): `w_i = 1 - p_1` on foreground pixels and `p_1`
/// on background ones, so `TP = sum(y p_1)` and `2 TP + sum w = sum(p_1) + sum(y)`.
#[test]
fn wasserstein_dice_of_two_classes_is_the_soft_dice_of_class_one() {
    const SHAPE: [usize; 4] = [3, 1, 5, 4];
    let n: usize = SHAPE.iter().product();
    let mut rng = TestRng::new(41);
    let x: Vec<f64> = (0..n).map(|_| rng.range(-4.0, 4.0)).collect();
    let y = rng.mask(n, 0.4);
    for (backend, device) in all_devices() {
        let foreground = tensor(&x, SHAPE, &device, DType::F32);
        // Logits (0, x): softmax class 1 is sigmoid(x).
        let logits = Tensor::cat(vec![foreground.zeros_like(), foreground.clone()], 1);
        let classes = tensor(&y, SHAPE, &device, DType::F32).int();
        let config = WassersteinDiceConfig::new().with_reduction(Reduction::None);
        let got = to_vec(wasserstein_dice(logits, classes, &config).unwrap());
        let dice = SoftDiceConfig::new().with_reduction(Reduction::None);
        let expected =
            to_vec(soft_dice(foreground, tensor(&y, SHAPE, &device, DType::F32), &dice).unwrap());
        assert_close(&got, &expected, parity_tolerance(backend), 1e-6, backend);
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
            gamma: 1.0,
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
                gamma: 1.0,
            }),
            "alpha",
        ),
    ] {
        let err = multiclass_overlap(x(), idx([2, 1, 2, 2]), &bad).unwrap_err();
        // A flag (soft_label) is a non-numeric option: its own variant.
        assert!(
            matches!(&err, SegLossError::InvalidParameter { name: n, .. } if *n == name)
                || matches!(&err, SegLossError::InvalidOption { name: n, .. }
                            if *n == name && name == "soft_label"),
            "{name}: {err}"
        );
    }
    // Lovász-softmax: a listed class must exist; GDL: something besides the background.
    let lovasz = LovaszSoftmaxConfig::new().with_classes(LovaszClasses::List(vec![0, 3]));
    let err = lovasz_softmax(x(), idx([2, 1, 2, 2]), &lovasz).unwrap_err();
    assert!(
        matches!(
            &err,
            SegLossError::InvalidParameter {
                name: "classes",
                ..
            }
        ),
        "{err}"
    );
    let one_class = tensor(&[0.0; 8], [2, 1, 2, 2], &device, DType::F32);
    let gdl = GeneralizedDiceConfig::new().with_include_background(false);
    let err = generalized_dice(one_class, idx([2, 1, 2, 2]), &gdl).unwrap_err();
    assert!(
        matches!(
            &err,
            SegLossError::InvalidOption {
                name: "include_background",
                ..
            }
        ),
        "{err}"
    );
    // Lovász needs hard per-class targets.
    let soft = tensor(&[0.5; 24], [2, 3, 2, 2], &device, DType::F32);
    let err = lovasz_softmax(x(), soft, &LovaszSoftmaxConfig::new()).unwrap_err();
    assert!(matches!(err, SegLossError::InvalidTargets { .. }), "{err}");
    // ignore_index needs index targets.
    let y = tensor(&[0.0; 24], [2, 3, 2, 2], &device, DType::F32);
    let err = multiclass_overlap(x(), y, &config.clone().with_ignore_index(Some(0))).unwrap_err();
    assert!(
        matches!(
            &err,
            SegLossError::InvalidOption {
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

#[test]
fn lovasz_softmax_of_class_one_of_two_is_lovasz_sigmoid() {
    // softmax([0, x])_1 = sigmoid(x): Berman's lovasz_softmax(classes=[1]) on two channels is
    // the Lovász-sigmoid of x, per image or over the batch, on both execution paths.
    const N: usize = 3;
    const P: usize = 20;
    let mut rng = TestRng::new(33);
    let x: Vec<f64> = (0..N * P).map(|_| rng.range(-4.0, 4.0)).collect();
    let y = rng.mask(N * P, 0.4);
    let mut two_channels = Vec::with_capacity(2 * N * P);
    for image in 0..N {
        two_channels.extend(std::iter::repeat_n(0.0, P));
        two_channels.extend_from_slice(&x[image * P..(image + 1) * P]);
    }
    let labels: Vec<i64> = y.iter().map(|&v| v as i64).collect();
    for (backend, device) in all_devices() {
        for per_image in [true, false] {
            for execution in [Execution::Host, Execution::Device] {
                let softmax = lovasz_softmax(
                    tensor(&two_channels, [N, 2, P], &device, DType::F32),
                    indices(&Value::from(labels.clone()), [N, 1, P], &device),
                    &LovaszSoftmaxConfig::new()
                        .with_classes(LovaszClasses::List(vec![1]))
                        .with_aggregation(if per_image {
                            Aggregation::PerImage
                        } else {
                            Aggregation::Batch
                        })
                        .with_reduction(Reduction::None)
                        .with_execution(execution),
                )
                .unwrap();
                let sigmoid = segloss::losses::lovasz_sigmoid(
                    tensor(&x, [N, P], &device, DType::F32),
                    tensor(&y, [N, P], &device, DType::F32),
                    &segloss::losses::LovaszSigmoidConfig::new()
                        .with_aggregation(if per_image {
                            Aggregation::PerImage
                        } else {
                            Aggregation::Batch
                        })
                        .with_reduction(Reduction::None)
                        .with_execution(execution),
                )
                .unwrap();
                assert_close(
                    &to_vec(softmax),
                    &to_vec(sigmoid),
                    parity_tolerance(backend),
                    1e-6,
                    &format!("{backend} per_image {per_image} {execution:?}"),
                );
            }
        }
    }
}

#[test]
fn extreme_logits_give_finite_multiclass_losses_and_gradients() {
    // Logits of +-1e4 (softmax saturates to exact 0 and 1), classes absent from the target.
    const SHAPE: [usize; 4] = [2, 3, 2, 3];
    let x: Vec<f64> = (0..36)
        .map(|i| match i % 3 {
            0 => 1e4,
            1 => -1e4,
            _ => 0.0,
        })
        .collect();
    let labels = Value::from(vec![0, 0, 1, 1, 0, 0, 2, 2, 2, 2, 2, 2]);
    let losses: [(&str, Value); 6] = [
        ("multiclass_overlap", serde_json::json!({})),
        (
            "multiclass_overlap",
            serde_json::json!({"log_loss": true, "smooth_nr": 0.0, "smooth_dr": 0.0}),
        ),
        (
            "lovasz_softmax",
            serde_json::json!({"classes": "all", "per_image": true}),
        ),
        (
            "generalized_dice",
            serde_json::json!({"smooth_nr": 0.0, "smooth_dr": 0.0}),
        ),
        ("multiclass_focal", serde_json::json!({"gamma": 0.5})),
        (
            "multiclass_focal",
            serde_json::json!({"mode": "multilabel"}),
        ),
    ];
    for (backend, device) in all_devices() {
        let ad = device.clone().autodiff();
        for (loss, options) in &losses {
            let xt = tensor(&x, SHAPE, &ad, DType::F32).require_grad();
            let y = indices(&labels, [2, 1, 2, 3], &ad);
            let value = run(loss, options, Reduction::Mean, xt.clone(), y.into()).unwrap();
            let grad = to_vec(xt.grad(&value.backward()).unwrap());
            let v = to_vec(value)[0];
            assert!(v.is_finite(), "{backend} {loss} {options}: {v}");
            assert!(
                grad.iter().all(|g| g.is_finite()),
                "{backend} {loss} {options}: {grad:?}"
            );
        }
    }
}

#[test]
fn class_indices_of_any_int_dtype_give_the_same_result() {
    // The default int dtype is i64 on the CPU backends and i32 on wgpu; targets read from a
    // data loader may come in either (burn panics when two int dtypes meet).
    const SHAPE: [usize; 4] = [2, 3, 2, 3];
    let mut rng = TestRng::new(34);
    let x: Vec<f64> = (0..36).map(|_| rng.range(-3.0, 3.0)).collect();
    let labels: Vec<i64> = (0..12).map(|i| (i * 7 % 3) as i64).collect();
    for (backend, device) in all_devices() {
        let i64_targets = || indices(&Value::from(labels.clone()), [2, 1, 2, 3], &device);
        let i32_targets = || {
            let v: Vec<i32> = labels.iter().map(|&l| l as i32).collect();
            let t = Tensor::<4, Int>::from_data(
                TensorData::new(v, [2, 1, 2, 3]),
                (&device, DType::I32),
            );
            assert_eq!(t.dtype(), DType::I32);
            t
        };
        for loss in [
            "multiclass_overlap",
            "generalized_dice",
            "lovasz_softmax",
            "multiclass_focal",
        ] {
            let options = serde_json::json!({});
            let value = |targets: Tensor<4, Int>| {
                let x = tensor(&x, SHAPE, &device, DType::F32);
                to_vec(run(loss, &options, Reduction::None, x, targets.into()).unwrap())
            };
            assert_eq!(
                value(i64_targets()),
                value(i32_targets()),
                "{backend} {loss}"
            );
        }
        let pred = i32_targets();
        let c32 =
            segloss::metrics::ClassConfusion::from_indices(pred.clone(), i32_targets(), 3, None);
        let c64 = segloss::metrics::ClassConfusion::from_indices(pred, i64_targets(), 3, Some(5));
        assert_eq!(
            c32.unwrap().classes(),
            c64.unwrap().classes(),
            "{backend} ClassConfusion"
        );
    }
}

#[test]
fn degenerate_class_options_are_errors_or_finite() {
    let device = f64_device();
    let one_channel = || tensor(&[0.5; 8], [2, 1, 2, 2], &device, DType::F32);
    let zeros =
        || Tensor::<4, Int>::from_data(TensorData::new(vec![0i64; 8], [2, 1, 2, 2]), &device);
    // Background excluded with a single channel: nothing left to score.
    for loss in ["multiclass_overlap", "multiclass_focal", "generalized_dice"] {
        let options = serde_json::json!({"include_background": false});
        let err = run(
            loss,
            &options,
            Reduction::Mean,
            one_channel(),
            zeros().into(),
        )
        .unwrap_err();
        assert!(
            matches!(
                &err,
                SegLossError::InvalidOption {
                    name: "include_background",
                    ..
                }
            ),
            "{loss}: {err}"
        );
    }
    // An empty class list.
    let config = LovaszSoftmaxConfig::new().with_classes(LovaszClasses::List(vec![]));
    let x = tensor(&[0.5; 16], [2, 2, 2, 2], &device, DType::F32);
    let err = lovasz_softmax(x.clone(), zeros(), &config).unwrap_err();
    assert!(
        matches!(
            &err,
            SegLossError::InvalidOption {
                name: "classes",
                ..
            }
        ),
        "{err}"
    );
    // Soft per-class targets with a class volume far below f32's reach of 1/Y^2: finite.
    let mut y = vec![0.5f64; 16];
    y[..4].copy_from_slice(&[1e-30, 0.0, 0.0, 0.0]);
    y[4..8].copy_from_slice(&[1.0, 1.0, 1.0, 1.0]);
    let ad = device.clone().autodiff();
    let xt = tensor(&[0.3; 16], [2, 2, 2, 2], &ad, DType::F32).require_grad();
    let config = GeneralizedDiceConfig::new().with_mode(ClassMode::Multilabel);
    let value = generalized_dice(
        xt.clone(),
        tensor(&y, [2, 2, 2, 2], &ad, DType::F32),
        &config,
    )
    .unwrap();
    let grad = to_vec(xt.grad(&value.backward()).unwrap());
    let v = to_vec(value)[0];
    assert!(
        v.is_finite() && grad.iter().all(|g| g.is_finite()),
        "{v} {grad:?}"
    );
}
