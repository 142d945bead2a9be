//! NaN and infinite inputs: a NaN anywhere in the logits (or probabilities) gives a NaN loss on
//! every backend, dtype and execution path, so that a "stop when the loss is NaN" check fires,
//! and on the host kernels also a NaN gradient at that pixel (with burn operations the gradient
//! there is whatever burn's backward of `relu`/`abs` gives: 0 on some backends). `+-inf` logits
//! give the same value and gradient on the host kernels as with burn operations, except where
//! a formula of burn operations multiplies 0 by an infinity (`x * y` at `x = inf`, `y = 0` in
//! the cross-entropy) and gives NaN: the host kernels give the limit there (an infinite loss,
//! a finite gradient).
//!
//! The PyTorch side of the same inputs (tests/reference/generate_nonfinite.py) is checked in
//! `nonfinite_inputs_match_pytorch`.

mod common;

use burn::tensor::{DType, Device, Int, Tensor};
use common::*;
use segloss::losses::*;
use serde_json::{Value, json};

const SHAPE: [usize; 4] = [2, 1, 4, 4];
const PIXELS: usize = 32;

/// A fixed batch: distinct logits in [-3, 3], no two of the same magnitude (equal Lovász
/// errors would leave the order of those pixels to rounding), a mask with both classes in each
/// image.
fn batch() -> (Vec<f64>, Vec<f64>) {
    let x = (0..PIXELS)
        .map(|i| ((i * 7 % 32) as f64 - 15.3) / 5.0)
        .collect();
    let y = (0..PIXELS).map(|i| f64::from(i % 3 == 0)).collect();
    (x, y)
}

/// Losses with the options under which each is checked (every option that changes how a
/// statistic or a term is computed: squared and soft-label statistics, the log loss, batch
/// statistics, alpha).
fn cases() -> Vec<(&'static str, Value)> {
    let mut cases = Vec::new();
    for loss in ALL_LOSSES.iter().chain(&LATER_LOSSES).copied() {
        cases.push((loss, json!({})));
    }
    for loss in ["soft_dice", "soft_jaccard"] {
        cases.push((loss, json!({ "squared": true })));
        cases.push((loss, json!({ "soft_label": true })));
        cases.push((loss, json!({ "log_loss": true })));
        cases.push((loss, json!({ "aggregation": "batch" })));
    }
    cases.push((
        "tversky",
        json!({ "alpha": 0.3, "beta": 0.7, "log_loss": true }),
    ));
    cases.push(("tversky", json!({ "gamma": 0.75, "soft_label": true })));
    cases.push(("mcc", json!({ "aggregation": "per_image" })));
    cases.push(("focal", json!({ "alpha": 0.25 })));
    cases.push(("weighted_cross_entropy", json!({ "prior": 0.3 })));
    cases.push(("lovasz_sigmoid", json!({ "per_image": false })));
    cases.push(("lovasz_hinge", json!({ "per_image": false })));
    cases
}

/// Every (device, dtype, execution) a loss can run with in this build.
fn configurations() -> Vec<(&'static str, Device, DType, &'static str)> {
    let mut out = Vec::new();
    for (name, device) in all_devices() {
        for dtype in float_dtypes(&device) {
            for execution in EXECUTIONS {
                out.push((name, device.clone(), dtype, execution));
            }
        }
    }
    out
}

#[test]
fn a_nan_logit_gives_a_nan_loss_and_a_nan_gradient_on_every_path() {
    let (mut x, y) = batch();
    x[5] = f64::NAN;
    let mut failures = Vec::new();
    for (loss, options) in cases() {
        for (backend, device, dtype, execution) in configurations() {
            let options = with_execution(&options, execution);
            let (value, grad) = value_and_grad(loss, &options, &x, &y, SHAPE, &device, dtype);
            if !value.is_nan() || (execution == "host" && !grad[5].is_nan()) {
                failures.push(format!(
                    "{loss} {options} on {backend} {dtype:?}: loss {value}, gradient {}",
                    grad[5]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "a NaN logit vanished:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_nan_probability_gives_a_nan_loss_and_a_nan_gradient_on_every_path() {
    let (x, y) = batch();
    let mut p: Vec<f64> = x.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect();
    p[9] = f64::NAN;
    let mut failures = Vec::new();
    for (loss, options) in cases() {
        if loss == "lovasz_hinge" {
            continue; // defined on raw scores only
        }
        let mut options = options.clone();
        options["from_logits"] = json!(false);
        for (backend, device, dtype, execution) in configurations() {
            let options = with_execution(&options, execution);
            let (value, grad) = value_and_grad(loss, &options, &p, &y, SHAPE, &device, dtype);
            if !value.is_nan() || (execution == "host" && !grad[9].is_nan()) {
                failures.push(format!(
                    "{loss} {options} on {backend} {dtype:?}: loss {value}, gradient {}",
                    grad[9]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "a NaN probability vanished:\n{}",
        failures.join("\n")
    );
}

/// `a` and `b` agree: both NaN, equal infinities, or close.
fn agree(a: f64, b: f64, tol: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= tol * (1.0 + b.abs())
}

/// The host kernels' `host` against burn operations' `device`: they agree, or burn operations
/// give NaN (0 times an infinity) where the host kernels give the limit, `limit(host)`.
fn host_matches(host: f64, device: f64, limit: fn(f64) -> bool) -> bool {
    agree(host, device, 1e-5) || (device.is_nan() && limit(host))
}

#[test]
fn infinite_logits_give_the_same_result_on_the_host_kernels_and_with_burn_operations() {
    let (x, y) = batch();
    // Confident and right (+inf on foreground, -inf on background: the limit is finite), then
    // confident and wrong (an infinite loss for the cross-entropies).
    let right = {
        let mut x = x.clone();
        x[0] = f64::INFINITY;
        x[1] = f64::NEG_INFINITY;
        x
    };
    let wrong = {
        let mut x = x.clone();
        x[3] = f64::NEG_INFINITY;
        x[4] = f64::INFINITY;
        x
    };
    let mut failures = Vec::new();
    for (name, x) in [("right", right), ("wrong", wrong)] {
        for (loss, options) in cases() {
            for (backend, device) in cpu_devices() {
                for dtype in float_dtypes(&device) {
                    let run = |execution| {
                        let options = with_execution(&options, execution);
                        value_and_grad(loss, &options, &x, &y, SHAPE, &device, dtype)
                    };
                    let (host_value, host_grad) = run("host");
                    let (device_value, device_grad) = run("device");
                    let what = format!("{loss} {options} {name} on {backend} {dtype:?}");
                    // The limit of a loss at an infinite logit: finite, or +inf (confidently wrong).
                    if !host_matches(host_value, device_value, |v| v >= 0.0) {
                        failures.push(format!(
                            "{what}: host {host_value}, burn operations {device_value}"
                        ));
                    }
                    for (i, (h, d)) in host_grad.iter().zip(&device_grad).enumerate() {
                        if !host_matches(*h, *d, f64::is_finite) {
                            failures.push(format!(
                                "{what}: gradient at {i}: host {h}, burn operations {d}"
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The multiclass losses, on the host kernels (`Auto` on the CPU backends) and with burn
/// operations (`Device`): a NaN logit gives a NaN loss and a NaN gradient at its pixel.
#[test]
fn multiclass_losses_propagate_a_nan_logit() {
    use segloss::Execution::Device;
    let losses = [
        MulticlassLoss::Overlap(MulticlassOverlapConfig::new()),
        MulticlassLoss::Overlap(MulticlassOverlapConfig::new().with_execution(Device)),
        MulticlassLoss::GeneralizedDice(GeneralizedDiceConfig::new()),
        MulticlassLoss::GeneralizedDice(GeneralizedDiceConfig::new().with_execution(Device)),
        MulticlassLoss::LovaszSoftmax(LovaszSoftmaxConfig::new()),
        MulticlassLoss::LovaszSoftmax(LovaszSoftmaxConfig::new().with_execution(Device)),
        MulticlassLoss::Focal(MulticlassFocalConfig::new()),
        MulticlassLoss::Focal(MulticlassFocalConfig::new().with_execution(Device)),
        MulticlassLoss::Focal(MulticlassFocalConfig::new().with_gamma(0.0)),
        MulticlassLoss::Focal(
            MulticlassFocalConfig::new()
                .with_gamma(0.0)
                .with_label_smoothing(0.1)
                .with_pixel_average(PixelAverage::TorchWeighted),
        ),
        MulticlassLoss::Overlap(
            MulticlassOverlapConfig::new().with_score(OverlapScore::Tversky {
                alpha: 0.3,
                beta: 0.7,
                gamma: 0.75,
            }),
        ),
        MulticlassLoss::WassersteinDice(WassersteinDiceConfig::new()),
        MulticlassLoss::WassersteinDice(WassersteinDiceConfig::new().with_execution(Device)),
        MulticlassLoss::ClDice(MulticlassClDiceConfig::new()),
        MulticlassLoss::DiceCe(DiceCeConfig::new()),
        MulticlassLoss::DiceFocal(DiceFocalConfig::new()),
    ];
    let values: Vec<f64> = (0..2 * 3 * 8)
        .map(|i| ((i * 5 % 11) as f64) / 3.0 - 1.5)
        .collect();
    let classes: Vec<i64> = (0..2 * 8).map(|i| (i % 3) as i64).collect();
    for (backend, device) in all_devices() {
        let ad = device.clone().autodiff();
        for loss in &losses {
            let mut x = values.clone();
            x[4] = f64::NAN;
            let logits = tensor(&x, [2, 3, 8], &ad, DType::F32).require_grad();
            let targets = Tensor::<3, Int>::from_data(
                burn::tensor::TensorData::new(classes.clone(), [2, 1, 8]),
                &ad,
            );
            let value = loss
                .compute(logits.clone(), targets.clone())
                .unwrap_or_else(|e| panic!("{loss:?} on {backend}: {e}"));
            let grads = value.clone().backward();
            let value = to_vec(value)[0];
            let grad = to_vec(logits.grad(&grads).unwrap());
            assert!(value.is_nan(), "{loss:?} on {backend}: loss {value}");
            assert!(
                grad[4].is_nan(),
                "{loss:?} on {backend}: gradient {}",
                grad[4]
            );
        }
        let dice_ce = MulticlassCompoundConfig::new()
            .with_term(1.0, MulticlassLoss::Overlap(MulticlassOverlapConfig::new()))
            .with_term(
                1.0,
                MulticlassLoss::Focal(MulticlassFocalConfig::new().with_gamma(0.0)),
            );
        let mut x = values.clone();
        x[20] = f64::NAN;
        let logits = tensor(&x, [2, 3, 8], &ad, DType::F32);
        let targets = Tensor::<3, Int>::from_data(
            burn::tensor::TensorData::new(classes.clone(), [2, 1, 8]),
            &ad,
        );
        let value = to_vec(multiclass_compound(logits, targets, &dice_ce).unwrap())[0];
        assert!(value.is_nan(), "Dice + CE on {backend}: loss {value}");
    }
}

/// The values PyTorch (torch, MONAI, smp) gives for the same non-finite inputs, where it defines
/// them (tests/reference/nonfinite.json), against both paths.
#[test]
fn nonfinite_inputs_match_pytorch() {
    let fixture: Value =
        serde_json::from_str(include_str!("reference/nonfinite.json")).expect("valid JSON");
    let mut checked = 0;
    for case in fixture["cases"].as_array().unwrap() {
        let loss = case["loss"].as_str().unwrap();
        let shape: [usize; 4] = shape_of(&case["shape"]);
        let x = nonfinite_floats(&case["logits"]);
        let y = floats(&case["targets"]);
        let expected = nonfinite_floats(&case["value"])[0];
        let nan_input = x.iter().any(|v| v.is_nan());
        if expected.is_nan() && !nan_input {
            // PyTorch's own formula multiplies 0 by an infinity: not a value to compare with.
            continue;
        }
        for (backend, device) in cpu_devices() {
            for execution in EXECUTIONS {
                let options = with_execution(&case["options"], execution);
                let (value, _) = value_and_grad(loss, &options, &x, &y, shape, &device, DType::F32);
                assert!(
                    agree(value, expected, 1e-5),
                    "{loss} ({}) on {backend}, {execution}: {value}, PyTorch {expected}",
                    case["name"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 0);
}

/// A JSON array whose entries are numbers or the strings `"nan"`, `"inf"`, `"-inf"` (JSON has
/// no literal for them).
fn nonfinite_floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| match x {
            Value::String(s) => s.parse::<f64>().expect("nan, inf or -inf"),
            x => x.as_f64().expect("a number"),
        })
        .collect()
}
