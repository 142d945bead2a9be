//! proptest properties of the losses: ranges, zero loss at a perfect prediction, J >= D,
//! reductions, batch-order invariance, and no panic on random shapes and parameters.

mod common;

use burn::tensor::DType;
use common::*;
use proptest::prelude::*;
use segloss::{Reduction, SegLossError};
use serde_json::{Value, json};

/// Random batch: shape `[n, 1, h, w]`, logits in [-6, 6], hard targets.
fn batch(max_pixels: usize) -> impl Strategy<Value = ([usize; 4], Vec<f64>, Vec<f64>)> {
    (1usize..5, 1usize..=10, 1usize..=10)
        .prop_filter("image size", move |(_, h, w)| h * w <= max_pixels)
        .prop_flat_map(|(n, h, w)| {
            let len = n * h * w;
            (
                Just([n, 1, h, w]),
                prop::collection::vec(-6.0f64..6.0, len),
                prop::collection::vec(prop::bool::ANY.prop_map(|b| f64::from(u8::from(b))), len),
            )
        })
}

fn eval(
    loss: &str,
    options: &Value,
    reduction: Reduction,
    shape: [usize; 4],
    x: &[f64],
    y: &[f64],
) -> Vec<f64> {
    let device = f64_device();
    let xt = tensor(x, shape, &device, DType::F32);
    let yt = tensor(y, shape, &device, DType::F32);
    to_vec(run_loss(loss, options, reduction, xt, yt).unwrap())
}

fn overlap_options() -> impl Strategy<Value = Value> {
    (
        0.0f64..2.0,
        0.0f64..2.0,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(a, b, squared, batch, soft)| {
            // smooth_nr <= smooth_dr keeps the score <= 1.
            json!({
                "smooth_nr": a.min(b), "smooth_dr": a.max(b), "squared": squared,
                "aggregation": if batch { "batch" } else { "per_image" }, "from_logits": !soft,
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn overlap_losses_lie_in_unit_interval((shape, x, y) in batch(100), options in overlap_options()) {
        // from_logits = false: feed probabilities, the sigmoid of the logits.
        let x: Vec<f64> = if options["from_logits"] == json!(false) {
            x.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect()
        } else { x };
        for loss in ["soft_dice", "soft_jaccard"] {
            for v in eval(loss, &options, Reduction::None, shape, &x, &y) {
                prop_assert!((-1e-6..=1.0 + 1e-6).contains(&v), "{loss} {options}: {v}");
            }
        }
    }

    #[test]
    fn perfect_prediction_has_zero_loss((shape, _x, y) in batch(100)) {
        let x: Vec<f64> = y.iter().map(|&t| if t > 0.5 { 30.0 } else { -30.0 }).collect();
        for loss in ALL_LOSSES {
            let v = eval(loss, &json!({}), Reduction::Mean, shape, &x, &y)[0];
            prop_assert!(v.abs() <= 1e-6, "{loss}: {v}");
        }
    }

    #[test]
    fn soft_jaccard_bounds_soft_dice_on_hard_targets((shape, x, y) in batch(100), batch_agg in any::<bool>()) {
        let options = json!({"smooth_nr": 0.0, "smooth_dr": 0.0,
                             "aggregation": if batch_agg { "batch" } else { "per_image" }});
        let d = eval("soft_dice", &options, Reduction::None, shape, &x, &y);
        let j = eval("soft_jaccard", &options, Reduction::None, shape, &x, &y);
        for (d, j) in d.iter().zip(&j) {
            prop_assert!(j + 1e-6 >= *d, "jaccard {j} < dice {d}");
        }
    }

    #[test]
    fn reduction_none_gives_one_loss_per_image_and_its_mean_is_mean((shape, x, y) in batch(100)) {
        for loss in ALL_LOSSES {
            let none = eval(loss, &json!({}), Reduction::None, shape, &x, &y);
            prop_assert_eq!(none.len(), shape[0], "{}", loss);
            let mean = eval(loss, &json!({}), Reduction::Mean, shape, &x, &y)[0];
            let sum = eval(loss, &json!({}), Reduction::Sum, shape, &x, &y)[0];
            let expected: f64 = none.iter().sum();
            prop_assert!((sum - expected).abs() <= 1e-5 * expected.abs().max(1.0), "{loss}: sum {sum} vs {expected}");
            prop_assert!((mean - expected / shape[0] as f64).abs() <= 1e-5 * mean.abs().max(1.0), "{loss}: mean {mean}");
        }
    }

    #[test]
    fn permuting_the_batch_leaves_the_mean_unchanged((shape, x, y) in batch(100), seed in any::<u64>()) {
        let n = shape[0];
        let per = x.len() / n;
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = TestRng::new(seed);
        for i in (1..n).rev() { order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize); }
        let permute = |v: &[f64]| order.iter().flat_map(|&i| v[i * per..(i + 1) * per].to_vec()).collect::<Vec<_>>();
        let (px, py) = (permute(&x), permute(&y));
        for loss in ALL_LOSSES {
            for options in [json!({}), json!({"aggregation": "batch"}), json!({"per_image": false})] {
                let a = eval(loss, &options, Reduction::Mean, shape, &x, &y)[0];
                let b = eval(loss, &options, Reduction::Mean, shape, &px, &py)[0];
                prop_assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{loss} {options}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn random_shapes_and_parameters_never_panic(
        dims in prop::collection::vec(0usize..4, 4),
        other in prop::collection::vec(0usize..4, 4),
        smooth in -1.0f64..1.0,
        q in -0.5f64..1.5,
        weight in -1.0f64..3.0,
        from_logits in any::<bool>(),
        per_image in any::<bool>(),
        same_shape in any::<bool>(),
    ) {
        let device = f64_device();
        let shape: [usize; 4] = dims.clone().try_into().unwrap();
        let other: [usize; 4] = if same_shape { shape } else { other.try_into().unwrap() };
        let len = |s: [usize; 4]| s.iter().product::<usize>();
        let x: Vec<f64> = (0..len(shape)).map(|i| (i as f64 * 0.37).sin()).collect();
        let y: Vec<f64> = (0..len(other)).map(|i| f64::from(u8::from(i % 3 == 0))).collect();
        let options = json!({"smooth_nr": smooth, "smooth_dr": smooth.abs(), "prior": q,
            "fg_weight": weight, "from_logits": from_logits, "per_image": per_image});
        for loss in ALL_LOSSES {
            let xt = tensor(&x, shape, &device, DType::F32);
            let yt = tensor(&y, other, &device, DType::F32);
            let result = run_loss(loss, &options, Reduction::None, xt, yt);
            match (expected_error(loss, shape, other, smooth, q, weight, from_logits), result) {
                (None, Ok(v)) => {
                    for v in to_vec(v) { prop_assert!(v.is_finite(), "{loss} {options}: {v}"); }
                }
                (Some(expected), Err(e)) => {
                    prop_assert_eq!(expected, variant(&e), "{} {} {:?} {:?}: {}", loss, options, shape, other, e);
                }
                (expected, result) => prop_assert!(
                    false, "{loss} {options} {shape:?} {other:?}: expected {expected:?}, got {:?}",
                    result.map(to_vec)
                ),
            }
        }
    }
}

/// The name of an error's variant.
fn variant(e: &SegLossError) -> &'static str {
    match e {
        SegLossError::InvalidParameter { .. } => "InvalidParameter",
        SegLossError::InvalidOption { .. } => "InvalidOption",
        SegLossError::EmptyTensor { .. } => "EmptyTensor",
        SegLossError::ShapeMismatch { .. } => "ShapeMismatch",
        SegLossError::UnsupportedShape { .. } => "UnsupportedShape",
        _ => "another variant",
    }
}

/// The error `loss` must give for these inputs of `random_shapes_and_parameters_never_panic`
/// (`None`: a finite loss), in the order the losses check: their options first, then the
/// logits' shape (an empty dimension), the targets' shape, and one channel for a binary loss.
fn expected_error(
    loss: &str,
    shape: [usize; 4],
    other: [usize; 4],
    smooth: f64,
    q: f64,
    weight: f64,
    from_logits: bool,
) -> Option<&'static str> {
    let bad_option = match loss {
        "soft_dice" | "soft_jaccard" | "tversky" => (smooth < 0.0).then_some("InvalidParameter"),
        "weighted_cross_entropy" => {
            (q <= 0.0 || q >= 1.0 || weight <= 0.0).then_some("InvalidParameter")
        }
        "lovasz_hinge" => (!from_logits).then_some("InvalidOption"),
        _ => None,
    };
    bad_option.or(if shape.contains(&0) {
        Some("EmptyTensor")
    } else if shape != other {
        Some("ShapeMismatch")
    } else if shape[1] > 1 {
        Some("UnsupportedShape")
    } else {
        None
    })
}
