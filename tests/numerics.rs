//! Extreme inputs: logits of +/-1e4 and all-empty / all-full masks give finite losses and
//! finite gradients for every loss and option that changes the computation.

mod common;

use burn::tensor::DType;
use common::*;
use serde_json::json;

#[test]
fn extreme_logits_and_degenerate_masks_stay_finite() {
    const SHAPE: [usize; 4] = [2, 1, 3, 4];
    let n: usize = SHAPE.iter().product();
    let mut rng = TestRng::new(11);
    let logit_sets: Vec<(&str, Vec<f64>)> = vec![
        ("+1e4", vec![1e4; n]),
        ("-1e4", vec![-1e4; n]),
        (
            "+-1e4",
            (0..n)
                .map(|i| if i % 2 == 0 { 1e4 } else { -1e4 })
                .collect(),
        ),
        ("random", (0..n).map(|_| rng.range(-1e4, 1e4)).collect()),
        ("zeros", vec![0.0; n]),
    ];
    let mask_sets: Vec<(&str, Vec<f64>)> = vec![
        ("empty", vec![0.0; n]),
        ("full", vec![1.0; n]),
        (
            "mixed",
            (0..n).map(|i| f64::from(u8::from(i % 3 == 0))).collect(),
        ),
    ];
    let option_sets: Vec<_> = [
        json!({}),
        json!({"aggregation": "batch"}),
        json!({"smooth_nr": 0.0, "smooth_dr": 0.0}),
        json!({"squared": true, "smooth_nr": 0.0, "smooth_dr": 0.0}),
        // log_loss at a zero score (the floor), soft labels, the focal exponent below 1.
        json!({"log_loss": true, "soft_label": true, "smooth_nr": 0.0, "smooth_dr": 0.0,
               "gamma": 0.5, "alpha": 0.25, "beta": 0.9}),
        json!({"per_image": false}),
        json!({"prior": 1e-6}),
    ]
    .iter()
    .flat_map(|o| EXECUTIONS.map(|e| with_execution(o, e)))
    .collect();
    for (backend, device) in all_devices() {
        for dtype in float_dtypes(&device) {
            for (xn, x) in &logit_sets {
                for (yn, y) in &mask_sets {
                    for loss in ALL_LOSSES {
                        for options in &option_sets {
                            let (v, g) = value_and_grad(loss, options, x, y, SHAPE, &device, dtype);
                            let what = format!(
                                "{backend} {dtype:?} {loss} {options} logits {xn} mask {yn}"
                            );
                            assert!(v.is_finite(), "{what}: value {v}");
                            assert!(g.iter().all(|g| g.is_finite()), "{what}: gradient {g:?}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn probabilities_at_zero_and_one_stay_finite() {
    const SHAPE: [usize; 3] = [2, 2, 3];
    let p = [0.0, 1.0, 0.0, 1.0, 0.5, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.3];
    let y = [0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0];
    for (backend, device) in all_devices() {
        for loss in [
            "binary_cross_entropy",
            "weighted_cross_entropy",
            "soft_dice",
            "soft_jaccard",
            "lovasz_sigmoid",
            "tversky",
            "focal",
            "compound",
        ] {
            for execution in EXECUTIONS {
                let options = json!({"from_logits": false, "execution": execution});
                let (v, g) = value_and_grad(loss, &options, &p, &y, SHAPE, &device, DType::F32);
                assert!(v.is_finite(), "{backend} {loss} {execution}: value {v}");
                assert!(
                    g.iter().all(|g| g.is_finite()),
                    "{backend} {loss} {execution}: gradient {g:?}"
                );
            }
        }
    }
}
