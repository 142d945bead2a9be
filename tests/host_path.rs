//! The host kernels against the burn-operations path: every loss and option, values (every
//! reduction) and gradients, on random shapes and on fixed batches; composition with other
//! losses in one graph; per-image weights on the values, gradient checkpointing and strided
//! views; compound losses whose host terms share one gradient; untracked inputs; the errors
//! specific to `Execution::Host`.

mod common;

use burn::tensor::{DType, Device, Tensor};
use common::*;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use segloss::losses::{
    BinaryCrossEntropyConfig, CompoundConfig, FocalConfig, Loss, LovaszHingeConfig,
    LovaszSigmoidConfig, SoftDiceConfig, SoftJaccardConfig, compound, soft_dice,
};
use segloss::{Aggregation, Execution, Reduction, SegLossError};
use serde_json::{Value, json};

/// Options that change the computation, per loss, sampled.
fn options(loss: &'static str) -> BoxedStrategy<Value> {
    match loss {
        "binary_cross_entropy" => any::<bool>()
            .prop_map(|soft| json!({ "from_logits": !soft }))
            .boxed(),
        "weighted_cross_entropy" => (0usize..4, 0.05f64..0.95, 0.1f64..5.0, any::<bool>())
            .prop_map(|(kind, q, w, soft)| {
                let mut o = match kind {
                    0 => json!({}),
                    1 => json!({ "prior": q }),
                    2 => json!({ "fg_weight": w }),
                    _ => json!({ "prior": q, "bg_weight": w }),
                };
                o["from_logits"] = json!(!soft);
                o
            })
            .boxed(),
        "soft_dice" | "soft_jaccard" => (
            0.0f64..2.0,
            0.0f64..2.0,
            0usize..3,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(nr, dr, form, log_loss, batch, soft)| {
                // form: plain, squared or soft-label statistics (the last two exclude each other).
                json!({ "smooth_nr": nr, "smooth_dr": dr, "squared": form == 1,
                        "soft_label": form == 2, "log_loss": log_loss,
                        "aggregation": if batch { "batch" } else { "per_image" },
                        "from_logits": !soft })
            })
            .boxed(),
        "tversky" => (
            0.0f64..1.5,
            0.0f64..1.5,
            0.0f64..2.0,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(alpha, beta, smooth, soft_label, log_loss, batch, soft)| {
                json!({ "alpha": alpha, "beta": beta, "smooth_nr": smooth, "smooth_dr": smooth,
                        "soft_label": soft_label, "log_loss": log_loss,
                        "aggregation": if batch { "batch" } else { "per_image" },
                        "from_logits": !soft })
            })
            .boxed(),
        "focal" => (0.0f64..3.0, prop::option::of(0.0f64..1.0), any::<bool>())
            .prop_map(|(gamma, alpha, soft)| {
                json!({ "gamma": gamma, "alpha": alpha, "from_logits": !soft })
            })
            .boxed(),
        "compound" => (0.0f64..2.0, 0.0f64..2.0, any::<bool>())
            .prop_map(|(a, b, soft)| {
                json!({ "from_logits": !soft, "terms": [
                    {"weight": a, "loss": "soft_jaccard", "options": {"log_loss": true}},
                    {"weight": b, "loss": "focal", "options": {}},
                ]})
            })
            .boxed(),
        "lovasz_sigmoid" => (any::<bool>(), any::<bool>())
            .prop_map(|(per_image, soft)| json!({ "per_image": per_image, "from_logits": !soft }))
            .boxed(),
        "lovasz_hinge" => any::<bool>()
            .prop_map(|per_image| json!({ "per_image": per_image }))
            .boxed(),
        other => panic!("{other}"),
    }
}

/// A random case: a loss, its options, a reduction, a shape `[n, 1, h, w]`, inputs (logits,
/// or probabilities when the options say so) and hard or soft targets.
fn case() -> impl Strategy<
    Value = (
        &'static str,
        Value,
        Reduction,
        [usize; 4],
        Vec<f64>,
        Vec<f64>,
    ),
> {
    (
        0usize..ALL_LOSSES.len(),
        1usize..5,
        1usize..=24,
        1usize..=24,
        0usize..3,
    )
        .prop_flat_map(|(l, n, h, w, r)| {
            let loss = ALL_LOSSES[l];
            let len = n * h * w;
            let soft_targets_ok = !loss.starts_with("lovasz");
            (
                Just(loss),
                options(loss),
                Just([Reduction::Mean, Reduction::Sum, Reduction::None][r]),
                Just([n, 1, h, w]),
                prop::collection::vec(-6.0f64..6.0, len),
                prop::collection::vec(0.0f64..1.0, len).prop_map(move |u| {
                    u.into_iter()
                        .map(|v| {
                            if soft_targets_ok && v < 0.2 {
                                v * 5.0
                            } else {
                                f64::from(u8::from(v < 0.6))
                            }
                        })
                        .collect()
                }),
            )
        })
}

/// Value (with `reduction`) and gradient (of the mean) through one execution path.
#[allow(clippy::too_many_arguments)] // a test helper: every argument is one axis of the cases
fn evaluate<const D: usize>(
    loss: &str,
    options: &Value,
    execution: &str,
    reduction: Reduction,
    shape: [usize; D],
    x: &[f64],
    y: &[f64],
    device: &Device,
    dtype: DType,
) -> (Vec<f64>, Vec<f64>) {
    let options = with_execution(options, execution);
    let value = to_vec(
        run_loss(
            loss,
            &options,
            reduction,
            tensor(x, shape, device, dtype),
            tensor(y, shape, device, dtype),
        )
        .unwrap(),
    );
    let (_, grad) = value_and_grad(loss, &options, x, y, shape, device, dtype);
    (value, grad)
}

fn inputs_for(options: &Value, x: Vec<f64>) -> Vec<f64> {
    if options["from_logits"] == json!(false) {
        x.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect()
    } else {
        x
    }
}

proptest! {
    // A fixed seed: the cases are random but the same in every run.
    #![proptest_config(ProptestConfig {
        cases: 96,
        rng_seed: RngSeed::Fixed(0x5E6_1055),
        ..ProptestConfig::default()
    })]

    #[test]
    fn host_kernels_match_burn_operations((loss, options, reduction, shape, x, y) in case()) {
        let x = inputs_for(&options, x);
        let device = f64_device();
        let (hv, hg) = evaluate(loss, &options, "host", reduction, shape, &x, &y, &device, DType::F32);
        let (dv, dg) = evaluate(loss, &options, "device", reduction, shape, &x, &y, &device, DType::F32);
        let what = format!("{loss} {options} {reduction:?} {shape:?}");
        assert_close(&hv, &dv, 1e-5, 1e-6, &format!("{what}: value"));
        assert_close(&hg, &dg, 1e-5, 0.0, &format!("{what}: gradient"));
    }
}

#[test]
fn host_kernels_match_burn_operations_in_f64_and_on_every_cpu_backend() {
    const SHAPE: [usize; 4] = [3, 1, 9, 7];
    let n: usize = SHAPE.iter().product();
    let (x, y) = TestRng::new(21).logits_and_mask(n, 5.0, 0.35);
    let option_sets = [
        json!({}),
        json!({"from_logits": false}),
        json!({"prior": 0.3, "smooth_nr": 0.0, "smooth_dr": 0.0}),
        json!({"aggregation": "batch", "squared": true, "per_image": false}),
        json!({"fg_weight": 3.0, "bg_weight": 0.5}),
    ];
    for (backend, device) in cpu_devices() {
        for dtype in float_dtypes(&device) {
            // ndarray computes sigmoid in f32 whatever the dtype. flex computes f64 in f64, but
            // its log_sigmoid gradient is good to about 3e-8 only (the host kernel's is exact
            // to 1e-16 against sigmoid(x) - y), hence 1e-7 rather than 1e-12.
            let tol = if dtype == DType::F64 && backend == "flex" {
                1e-7
            } else {
                1e-5
            };
            for loss in ALL_LOSSES.iter().chain(&LATER_LOSSES).copied() {
                for options in &option_sets {
                    if loss == "lovasz_hinge" && options["from_logits"] == json!(false) {
                        continue;
                    }
                    // clDice needs smooth_dr > 0 (an empty skeleton would be 0/0).
                    if loss == "cl_dice" && options["smooth_dr"] == json!(0.0) {
                        continue;
                    }
                    let x = inputs_for(options, x.clone());
                    let run = |execution| {
                        evaluate(
                            loss,
                            options,
                            execution,
                            Reduction::None,
                            SHAPE,
                            &x,
                            &y,
                            &device,
                            dtype,
                        )
                    };
                    let ((hv, hg), (dv, dg)) = (run("host"), run("device"));
                    let what = format!("{backend} {dtype:?} {loss} {options}");
                    assert_close(&hv, &dv, tol, 1e-6, &format!("{what}: value"));
                    assert_close(&hg, &dg, tol, 0.0, &format!("{what}: gradient"));
                }
            }
        }
    }
}

/// Past one chunk of the host passes (32,768 elements: several chunks per image, partial sums
/// added across chunks and threads) and past the Lovász sort's split (2^17 keys: a scatter by
/// the top bits, then one sort per part), every binary loss still matches burn operations,
/// values and gradients, per image and over the batch.
#[test]
fn host_kernels_match_burn_operations_past_one_chunk_and_the_sort_split() {
    let device = f64_device();
    // 2 x 40,000 pixels (two chunks per image), and 1 x 393 x 401 = 157,593 (> 2^17).
    for (shape, seed) in [([2, 1, 200, 200], 31), ([1, 1, 393, 401], 32)] {
        let n: usize = shape.iter().product();
        let (x, y) = TestRng::new(seed).logits_and_mask(n, 5.0, 0.35);
        for loss in ALL_LOSSES.iter().chain(&LATER_LOSSES).copied() {
            for options in [
                json!({}),
                json!({"aggregation": "batch", "per_image": false}),
            ] {
                let run = |execution| {
                    evaluate(
                        loss,
                        &options,
                        execution,
                        Reduction::None,
                        shape,
                        &x,
                        &y,
                        &device,
                        DType::F32,
                    )
                };
                let ((hv, hg), (dv, dg)) = (run("host"), run("device"));
                let what = format!("{loss} {options} {shape:?}");
                assert_close(&hv, &dv, 1e-5, 1e-6, &format!("{what}: value"));
                assert_close(&hg, &dg, 1e-5, 0.0, &format!("{what}: gradient"));
            }
        }
    }
}

#[test]
fn host_losses_compose_with_others_in_one_graph() {
    // 2 * dice + bce, host and device paths mixed both ways: the gradient is the same sum.
    const SHAPE: [usize; 3] = [2, 5, 6];
    let n: usize = SHAPE.iter().product();
    let (x, y) = TestRng::new(5).logits_and_mask(n, 3.0, 0.5);
    for (backend, device) in cpu_devices() {
        let ad = device.clone().autodiff();
        let grad_of = |dice_path: &str, bce_path: &str| {
            let xt = tensor(&x, SHAPE, &ad, DType::F32).require_grad();
            let yt = tensor(&y, SHAPE, &ad, DType::F32);
            let dice = run_loss(
                "soft_dice",
                &json!({ "execution": dice_path }),
                Reduction::Mean,
                xt.clone(),
                yt.clone(),
            )
            .unwrap();
            let bce = run_loss(
                "binary_cross_entropy",
                &json!({ "execution": bce_path }),
                Reduction::Mean,
                xt.clone(),
                yt,
            )
            .unwrap();
            let total = dice.mul_scalar(2.0) + bce;
            let value = to_vec(total.clone())[0];
            (value, to_vec(xt.grad(&total.backward()).unwrap()))
        };
        let (reference_value, reference) = grad_of("device", "device");
        for (a, b) in [("host", "host"), ("host", "device"), ("device", "host")] {
            let (value, grad) = grad_of(a, b);
            let what = format!("{backend} dice {a} + bce {b}");
            assert!((value - reference_value).abs() < 1e-5, "{what}: {value}");
            assert_close(&grad, &reference, 1e-5, 0.0, &what);
        }
    }
}

#[test]
fn host_gradients_follow_the_graph_around_the_loss() {
    // On flex and ndarray the host path joins the graph as a custom autodiff operation. Its
    // backward must scale each image's gradient by what flows into that image's value
    // (here unequal weights on `Reduction::None`), work under gradient checkpointing, and take
    // a strided view of the logits (`swap_dims`) as well as a contiguous tensor.
    const SHAPE: [usize; 4] = [3, 1, 4, 5];
    let n: usize = SHAPE.iter().product();
    let (x, y) = TestRng::new(11).logits_and_mask(n, 3.0, 0.4);
    for (backend, device) in cpu_devices() {
        let autodiff = device.clone().autodiff();
        let checkpointed = device.clone().autodiff().gradient_checkpointing();
        for loss in ALL_LOSSES.iter().chain(&LATER_LOSSES).copied() {
            let run = |execution: &str, device: &Device, strided: bool| {
                let xt = tensor(&x, SHAPE, device, DType::F32).require_grad();
                let yt = tensor(&y, SHAPE, device, DType::F32);
                let (logits, targets) = if strided {
                    (xt.clone().swap_dims(2, 3), yt.swap_dims(2, 3))
                } else {
                    (xt.clone(), yt)
                };
                let options = json!({ "execution": execution });
                let values = run_loss(loss, &options, Reduction::None, logits, targets).unwrap();
                let problems = values.dims()[0];
                let weights: Vec<f64> = (0..problems).map(|k| 1.0 + k as f64).collect();
                let weights = Tensor::<1>::from_floats(weights.as_slice(), device);
                let total = (values.clone() * weights).sum();
                let grad = to_vec(xt.grad(&total.backward()).expect("a gradient"));
                (to_vec(values), grad)
            };
            let (reference_values, reference_grad) = run("device", &autodiff, false);
            for (what, device, strided) in [
                ("contiguous", &autodiff, false),
                ("checkpointed", &checkpointed, false),
                ("strided", &autodiff, true),
            ] {
                let (values, grad) = run("host", device, strided);
                let what = format!("{backend} {loss} {what}");
                assert_close(&values, &reference_values, 1e-5, 1e-6, &what);
                assert_close(&grad, &reference_grad, 1e-5, 1e-7, &what);
            }
        }
    }
}

#[test]
fn compound_host_terms_match_the_sum_of_the_separate_terms() {
    // A compound's host terms run as one operation with one shared gradient buffer; each
    // term's reduction (mean, sum, batch statistics, a batch-wide Lovász problem) scales its
    // share. Reference: the same terms computed one by one and added in the graph.
    const SHAPE: [usize; 4] = [3, 1, 6, 7];
    let n: usize = SHAPE.iter().product();
    let (x, y) = TestRng::new(12).logits_and_mask(n, 3.0, 0.4);
    let reduced = vec![
        (0.7, Loss::SoftDice(SoftDiceConfig::new())),
        (
            1.3,
            Loss::BinaryCrossEntropy(
                BinaryCrossEntropyConfig::new().with_reduction(Reduction::Sum),
            ),
        ),
        (
            0.4,
            Loss::SoftJaccard(SoftJaccardConfig::new().with_aggregation(Aggregation::Batch)),
        ),
        (
            0.9,
            Loss::LovaszHinge(LovaszHingeConfig::new().with_aggregation(Aggregation::Batch)),
        ),
        // A device-path term among the host terms.
        (
            0.2,
            Loss::Focal(FocalConfig::new().with_execution(Execution::Device)),
        ),
    ];
    let per_image = vec![
        (
            0.6,
            Loss::SoftDice(SoftDiceConfig::new().with_reduction(Reduction::None)),
        ),
        (
            1.1,
            Loss::Focal(FocalConfig::new().with_reduction(Reduction::None)),
        ),
        (
            0.3,
            Loss::LovaszSigmoid(LovaszSigmoidConfig::new().with_reduction(Reduction::None)),
        ),
    ];
    for (backend, device) in cpu_devices() {
        let device = device.autodiff();
        for terms in [&reduced, &per_image] {
            // Unequal weights on the values reach every image's share of the gradient.
            let total = |values: Tensor<1>| {
                let weights: Vec<f64> = (0..values.dims()[0]).map(|k| 1.0 + k as f64).collect();
                (values * Tensor::<1>::from_floats(weights.as_slice(), &device)).sum()
            };
            let xt = tensor(&x, SHAPE, &device, DType::F32).require_grad();
            let yt = tensor(&y, SHAPE, &device, DType::F32);
            let mut config = CompoundConfig::new();
            for (weight, loss) in terms.iter() {
                config = config.with_term(*weight, loss.clone());
            }
            let values = compound(xt.clone(), yt.clone(), &config).unwrap();
            let grad = to_vec(xt.grad(&total(values.clone()).backward()).unwrap());

            let xr = tensor(&x, SHAPE, &device, DType::F32).require_grad();
            let reference = terms
                .iter()
                .map(|(w, loss)| loss.compute(xr.clone(), yt.clone()).unwrap().mul_scalar(*w))
                .reduce(|a, b| a + b)
                .unwrap();
            let reference_grad = to_vec(xr.grad(&total(reference.clone()).backward()).unwrap());
            let what = format!("{backend} {} terms", terms.len());
            assert_close(&to_vec(values), &to_vec(reference), 1e-5, 1e-6, &what);
            assert_close(&grad, &reference_grad, 1e-5, 1e-7, &what);
        }
    }
}

#[test]
fn untracked_inputs_get_the_plain_value() {
    const SHAPE: [usize; 2] = [2, 8];
    let x: Vec<f64> = (0..16).map(|i| f64::from(i) * 0.3 - 2.0).collect();
    let y: Vec<f64> = (0..16).map(|i| f64::from(u8::from(i % 3 == 0))).collect();
    for (backend, device) in cpu_devices() {
        for loss in ALL_LOSSES.iter().chain(&LATER_LOSSES).copied() {
            let value = |device: &Device, execution: &str| {
                let out = run_loss(
                    loss,
                    &json!({ "execution": execution }),
                    Reduction::None,
                    tensor(&x, SHAPE, device, DType::F32),
                    tensor(&y, SHAPE, device, DType::F32),
                )
                .unwrap();
                assert!(!out.is_tracked(), "{backend} {loss} {execution}: tracked");
                to_vec(out)
            };
            let reference = value(&device, "device");
            // Plain device, and an autodiff device whose input does not require a gradient.
            for d in [device.clone(), device.clone().autodiff()] {
                assert_close(
                    &value(&d, "host"),
                    &reference,
                    1e-5,
                    1e-6,
                    &format!("{backend} {loss}"),
                );
            }
        }
    }
}

#[test]
fn host_execution_rejects_tracked_targets() {
    let device = f64_device().autodiff();
    let x = tensor(&[0.5, -1.0, 2.0, 0.0], [1, 4], &device, DType::F32);
    let y = tensor(&[1.0, 0.0, 1.0, 0.0], [1, 4], &device, DType::F32).require_grad();
    let host = SoftDiceConfig::new().with_execution(Execution::Host);
    assert!(matches!(
        soft_dice(x.clone(), y.clone(), &host),
        Err(SegLossError::InvalidOption {
            name: "execution",
            ..
        })
    ));
    // Auto takes the device path, so the targets get their gradient.
    let loss = soft_dice(x, y.clone(), &SoftDiceConfig::new()).unwrap();
    assert!(y.grad(&loss.backward()).is_some());
}

/// Multiclass host terms that cannot share one pass (here: different `ignore_index`) still run
/// as one host operation with one gradient buffer; the sum equals the terms computed alone.
#[test]
fn multiclass_terms_of_different_passes_share_one_host_operation() {
    use burn::tensor::{Int, TensorData};
    use segloss::losses::{
        MulticlassCompoundConfig, MulticlassFocalConfig, MulticlassLoss, MulticlassOverlapConfig,
        multiclass_compound,
    };
    let device = f64_device().autodiff();
    let (n, c, p) = (3, 4, 37);
    let x: Vec<f64> = (0..n * c * p)
        .map(|i| ((i * 7919) % 23) as f64 / 4.0 - 2.8)
        .collect();
    let labels: Vec<i64> = (0..n * p).map(|i| ((i * 31) % 5) as i64).collect();
    let y = Tensor::<3, Int>::from_data(TensorData::new(labels, [n, 1, p]), &device);
    let terms = [
        (1.0, MulticlassLoss::Overlap(MulticlassOverlapConfig::new())),
        (
            0.5,
            MulticlassLoss::Focal(MulticlassFocalConfig::new().with_ignore_index(Some(4))),
        ),
    ];
    let config = terms
        .iter()
        .fold(MulticlassCompoundConfig::new(), |c, (w, l)| {
            c.with_term(*w, l.clone())
        });
    let logits = tensor(&x, [n, c, p], &device, DType::F64).require_grad();
    let total = multiclass_compound(logits.clone(), y.clone(), &config).unwrap();
    let grad = to_vec(logits.grad(&total.clone().backward()).unwrap());
    let mut expected_value = 0.0;
    let mut expected_grad = vec![0.0; x.len()];
    for (weight, loss) in &terms {
        let logits = tensor(&x, [n, c, p], &device, DType::F64).require_grad();
        let value = loss.compute(logits.clone(), y.clone()).unwrap();
        let g = to_vec(logits.grad(&value.clone().backward()).unwrap());
        expected_value += weight * to_vec(value)[0];
        for (e, g) in expected_grad.iter_mut().zip(g) {
            *e += weight * g;
        }
    }
    assert_close(&to_vec(total), &[expected_value], 1e-12, 0.0, "value");
    assert_close(&grad, &expected_grad, 1e-12, 1e-15, "gradient");
}
