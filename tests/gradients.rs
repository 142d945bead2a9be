//! Autodiff gradients against central finite differences, in f64, for every binary loss and
//! the options that change the formula, through the host kernels and the burn-operations path.

mod common;

use burn::tensor::DType;
use common::*;
use serde_json::{Value, json};

const SHAPE: [usize; 4] = [3, 1, 4, 5];
const H: f64 = 1e-6;

fn option_sets(loss: &str) -> Vec<Value> {
    match loss {
        "binary_cross_entropy" => vec![json!({}), json!({"from_logits": false})],
        "weighted_cross_entropy" => vec![
            json!({}),
            json!({"prior": 0.2}),
            json!({"fg_weight": 2.0, "bg_weight": 0.7}),
            json!({"from_logits": false}),
        ],
        "soft_dice" | "soft_jaccard" => vec![
            json!({}),
            json!({"smooth_nr": 0.0, "smooth_dr": 0.0}),
            json!({"squared": true}),
            json!({"aggregation": "batch", "smooth_nr": 1.0, "smooth_dr": 1.0}),
            json!({"from_logits": false}),
            json!({"soft_label": true}),
            json!({"log_loss": true, "aggregation": "batch"}),
        ],
        "tversky" => vec![
            json!({"alpha": 0.3, "beta": 0.7}),
            json!({"alpha": 1.0, "beta": 1.0, "smooth_nr": 0.0, "smooth_dr": 0.0}),
            json!({"alpha": 0.7, "beta": 0.3, "log_loss": true, "soft_label": true}),
            json!({"from_logits": false, "aggregation": "batch"}),
            json!({"alpha": 0.3, "beta": 0.7, "gamma": 0.75}),
            json!({"gamma": 2.0, "aggregation": "batch", "soft_label": true}),
        ],
        "mcc" => vec![
            json!({}),
            json!({"aggregation": "per_image"}),
            json!({"from_logits": false, "eps": 1e-3}),
        ],
        // A skeleton is piecewise (min and max pools): the random inputs sit away from its
        // switches, so central differences see one piece.
        "cl_dice" => vec![
            json!({}),
            json!({"iterations": 1, "smooth_nr": 0.0, "smooth_dr": 0.5}),
            json!({"from_logits": false}),
        ],
        "focal" => vec![
            json!({}),
            json!({"gamma": 0.5, "alpha": 0.25}),
            json!({"from_logits": false}),
            json!({"from_logits": false, "gamma": 1.5, "alpha": 0.8}),
        ],
        "compound" => vec![
            json!({}),
            json!({"terms": [
                {"weight": 0.5, "loss": "tversky", "options": {"alpha": 0.3, "beta": 0.7}},
                {"weight": 2.0, "loss": "focal", "options": {}},
                {"weight": 1.0, "loss": "lovasz_hinge", "options": {}},
            ]}),
        ],
        "lovasz_sigmoid" => vec![
            json!({}),
            json!({"per_image": false}),
            json!({"from_logits": false}),
        ],
        "lovasz_hinge" => vec![json!({}), json!({"per_image": false})],
        other => panic!("{other}"),
    }
}

#[test]
fn autodiff_matches_finite_differences() {
    let device = f64_device();
    let mut rng = TestRng::new(7);
    let n: usize = SHAPE.iter().product();
    for loss in ALL_LOSSES.iter().chain(&LATER_LOSSES) {
        for options in option_sets(loss)
            .iter()
            .flat_map(|o| EXECUTIONS.map(|e| with_execution(o, e)))
        {
            let from_logits = options["from_logits"].as_bool().unwrap_or(true);
            let x: Vec<f64> = (0..n)
                .map(|_| {
                    if from_logits {
                        rng.range(-3.0, 3.0)
                    } else {
                        rng.range(0.02, 0.98)
                    }
                })
                .collect();
            let y = rng.mask(n, 0.4);
            let (_, grad) = value_and_grad(loss, &options, &x, &y, SHAPE, &device, DType::F64);
            let value_at = |x: &[f64]| {
                let xt = tensor(x, SHAPE, &device, DType::F64);
                let yt = tensor(&y, SHAPE, &device, DType::F64);
                to_vec(run_loss(loss, &options, segloss::Reduction::Mean, xt, yt).unwrap())[0]
            };
            let numeric: Vec<f64> = (0..n)
                .map(|i| {
                    let (mut plus, mut minus) = (x.clone(), x.clone());
                    plus[i] += H;
                    minus[i] -= H;
                    (value_at(&plus) - value_at(&minus)) / (2.0 * H)
                })
                .collect();
            assert_close(
                &grad,
                &numeric,
                1e-6,
                1e-3,
                &format!("{loss} {options} gradient"),
            );
        }
    }
}
