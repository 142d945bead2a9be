//! Bad input returns `Err(SegLossError)` with the right variant, never a panic.

mod common;

use burn::tensor::{DType, Tensor};
use common::*;
use segloss::losses::*;
use segloss::{Reduction, SegLossError, TargetKind, validate_targets};
use serde_json::json;

fn device() -> burn::tensor::Device {
    f64_device()
}

#[test]
fn mismatched_shapes_are_reported_with_both_shapes() {
    let d = device();
    for loss in ALL_LOSSES {
        let x = tensor(&[0.0; 6], [1, 2, 3], &d, DType::F32);
        let y = tensor(&[0.0; 6], [1, 3, 2], &d, DType::F32);
        let err = run_loss(loss, &json!({}), Reduction::Mean, x, y).unwrap_err();
        assert!(
            matches!(&err, SegLossError::ShapeMismatch { left, right, .. } if left == &vec![1, 2, 3] && right == &vec![1, 3, 2]),
            "{loss}: {err}"
        );
        assert!(err.to_string().contains("[1, 2, 3]") && err.to_string().contains("[1, 3, 2]"));
    }
}

#[test]
fn rank_one_is_rejected() {
    let d = device();
    for loss in ALL_LOSSES {
        let x = tensor(&[0.0; 4], [4], &d, DType::F32);
        let y = tensor(&[0.0; 4], [4], &d, DType::F32);
        let err = run_loss(loss, &json!({}), Reduction::Mean, x, y).unwrap_err();
        assert!(
            matches!(
                err,
                SegLossError::UnsupportedRank {
                    rank: 1,
                    min: 2,
                    ..
                }
            ),
            "{loss}: {err}"
        );
    }
}

#[test]
fn zero_sized_tensors_are_rejected() {
    let d = device();
    for shape in [[0, 1, 4], [2, 0, 4], [2, 1, 0]] {
        for loss in ALL_LOSSES {
            let x = Tensor::<3>::zeros(shape, &d);
            let y = Tensor::<3>::zeros(shape, &d);
            let err = run_loss(loss, &json!({}), Reduction::Mean, x, y).unwrap_err();
            assert!(
                matches!(err, SegLossError::EmptyTensor { .. }),
                "{loss} {shape:?}: {err}"
            );
        }
    }
}

#[test]
fn invalid_parameters_are_rejected() {
    let d = device();
    let x = || tensor(&[0.0, 1.0, -1.0, 2.0], [2, 2], &d, DType::F32);
    let y = || tensor(&[0.0, 1.0, 1.0, 0.0], [2, 2], &d, DType::F32);
    let cases = [
        ("soft_dice", json!({"smooth_nr": -1e-3}), "smooth_nr"),
        ("soft_dice", json!({"smooth_dr": -1.0}), "smooth_dr"),
        ("soft_jaccard", json!({"smooth_nr": -1.0}), "smooth_nr"),
        ("soft_jaccard", json!({"smooth_dr": -0.5}), "smooth_dr"),
        ("weighted_cross_entropy", json!({"prior": 0.0}), "prior"),
        ("weighted_cross_entropy", json!({"prior": 1.0}), "prior"),
        ("weighted_cross_entropy", json!({"prior": -0.2}), "prior"),
        (
            "weighted_cross_entropy",
            json!({"fg_weight": 0.0}),
            "fg_weight",
        ),
        (
            "weighted_cross_entropy",
            json!({"bg_weight": -2.0}),
            "bg_weight",
        ),
        (
            "weighted_cross_entropy",
            json!({"fg_weight": 1e300}),
            "fg_weight",
        ),
        ("lovasz_hinge", json!({"from_logits": false}), "from_logits"),
        ("tversky", json!({"alpha": -0.1}), "alpha"),
        ("tversky", json!({"beta": -1.0}), "beta"),
        ("tversky", json!({"smooth_dr": -1.0}), "smooth_dr"),
        ("focal", json!({"gamma": -0.5}), "gamma"),
        ("focal", json!({"alpha": 1.5}), "alpha"),
        ("focal", json!({"alpha": -0.25}), "alpha"),
        (
            "soft_dice",
            json!({"soft_label": true, "squared": true}),
            "soft_label",
        ),
        ("compound", json!({"terms": []}), "terms"),
        (
            "compound",
            json!({"terms": [{"weight": -1.0, "loss": "soft_dice"}]}),
            "weight",
        ),
        (
            "compound",
            json!({"terms": [{"weight": 1.0, "loss": "focal", "options": {"gamma": -1.0}}]}),
            "gamma",
        ),
    ];
    // Options that are not numbers have their own variant, which names the value given.
    let non_numeric = ["from_logits", "soft_label", "terms"];
    for (loss, options, param) in cases {
        let err = run_loss(loss, &options, Reduction::Mean, x(), y()).unwrap_err();
        let named = match &err {
            SegLossError::InvalidParameter { name, .. } => {
                !non_numeric.contains(&param) && name.starts_with(param)
            }
            SegLossError::InvalidOption { name, value, .. } => {
                non_numeric.contains(&param) && *name == param && !value.is_empty()
            }
            _ => false,
        };
        assert!(named, "{loss} {options}: {err}");
    }
    // Non-finite smoothing is rejected too.
    let err = soft_dice(x(), y(), &SoftDiceConfig::new().with_smooth_dr(f64::NAN)).unwrap_err();
    assert!(matches!(
        err,
        SegLossError::InvalidParameter {
            name: "smooth_dr",
            ..
        }
    ));
}

#[test]
fn lovasz_losses_reject_non_binary_targets() {
    let d = device();
    for loss in ["lovasz_sigmoid", "lovasz_hinge"] {
        let x = tensor(&[0.0, 1.0, -1.0, 2.0], [2, 2], &d, DType::F32);
        let y = tensor(&[0.0, 0.5, 1.0, 0.0], [2, 2], &d, DType::F32);
        let err = run_loss(loss, &json!({}), Reduction::Mean, x, y).unwrap_err();
        assert!(
            matches!(err, SegLossError::InvalidTargets { .. }),
            "{loss}: {err}"
        );
        assert!(err.to_string().contains("0.5"));
    }
}

#[test]
fn validate_targets_checks_values() {
    let d = device();
    let soft = tensor(&[0.0, 0.25, 1.0, 0.0], [2, 2], &d, DType::F32);
    assert!(validate_targets(soft.clone(), TargetKind::Soft).is_ok());
    assert!(matches!(
        validate_targets(soft, TargetKind::Hard),
        Err(SegLossError::InvalidTargets { .. })
    ));
    let out_of_range = tensor(&[0.0, 1.5, 1.0, 0.0], [2, 2], &d, DType::F32);
    assert!(validate_targets(out_of_range, TargetKind::Soft).is_err());
    let nan = tensor(&[0.0, f64::NAN, 1.0, 0.0], [2, 2], &d, DType::F32);
    assert!(validate_targets(nan, TargetKind::Soft).is_err());
    let rank1 = tensor(&[0.0, 1.0], [2], &d, DType::F32);
    assert!(matches!(
        validate_targets(rank1, TargetKind::Hard),
        Err(SegLossError::UnsupportedRank { .. })
    ));
}

#[test]
fn lovasz_grad_checks_its_input_and_matches_the_closed_form() {
    let d = device();
    assert!(matches!(
        lovasz_grad(Tensor::<1>::zeros([0], &d)),
        Err(SegLossError::EmptyTensor { .. })
    ));
    assert!(lovasz_grad(tensor(&[1.0, 2.0], [2], &d, DType::F32)).is_err());
    // No foreground: [1, 0, 0].
    let w = to_vec(lovasz_grad(tensor(&[0.0, 0.0, 0.0], [3], &d, DType::F32)).unwrap());
    assert_eq!(w, vec![1.0, 0.0, 0.0]);
    // g = [1, 1, 0]: G = 2, J = [1 - 1/2, 1 - 0/2, 1 - 0/3] = [0.5, 1, 1].
    let w = to_vec(lovasz_grad(tensor(&[1.0, 1.0, 0.0], [3], &d, DType::F64)).unwrap());
    assert_eq!(w, vec![0.5, 0.5, 0.0]);
}
