//! Deep supervision against MONAI's `DeepSupervisionLoss(DiceCELoss(softmax=True,
//! to_onehot_y=True))` (`tests/reference/deep_supervision.json`, from
//! `generate_deep_supervision.py`): the value and the gradient of every head, on every backend,
//! heads of sizes that divide the targets' and of sizes that do not (nearest-exact resizing),
//! 2D and 3D; and the errors a careless call meets.

mod common;

use burn::tensor::{DType, Device, Tensor};
use common::*;
use segloss::SegLossError;
use segloss::losses::{
    DeepSupervisionConfig, DeepSupervisionWeights, DiceCeConfig, MulticlassLoss, deep_supervision,
};
use serde_json::Value;

fn weights(case: &Value) -> DeepSupervisionWeights {
    if let Some(w) = case["weights"].as_array() {
        return DeepSupervisionWeights::Explicit(floats(&Value::from(w.clone())));
    }
    match case["weight_mode"].as_str() {
        Some("same") => DeepSupervisionWeights::Same,
        Some("two") => DeepSupervisionWeights::Two,
        _ => DeepSupervisionWeights::Exp,
    }
}

fn check_case<const D: usize>(case: &Value, device: &Device, backend: &str) {
    let config = DeepSupervisionConfig::new().with_weights(weights(case));
    let ad = device.clone().autodiff();
    let heads: Vec<Tensor<D>> = case["heads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            tensor(
                &floats(&h["logits"]),
                shape_of(&h["shape"]),
                &ad,
                DType::F32,
            )
            .require_grad()
        })
        .collect();
    let targets = indices::<D>(
        &case["targets"]["indices"],
        shape_of(&case["targets"]["shape"]),
        &ad,
    );
    let what = format!("{backend} {}", case["name"]);
    let tol = parity_tolerance(backend);
    let value = deep_supervision(heads.clone(), targets, &config).unwrap();
    let grads = value.backward();
    assert_close(
        &to_vec(value),
        &[case["value"].as_f64().unwrap()],
        tol,
        1e-6,
        &what,
    );
    for (l, (head, expected)) in heads
        .iter()
        .zip(case["grads"].as_array().unwrap())
        .enumerate()
    {
        let grad = to_vec(head.grad(&grads).unwrap());
        assert_close(
            &grad,
            &floats(expected),
            tol,
            0.0,
            &format!("{what} head {l}"),
        );
    }
}

#[test]
fn deep_supervision_matches_monai() {
    let doc: Value = serde_json::from_str(include_str!("reference/deep_supervision.json")).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for (backend, device) in all_devices() {
        for case in cases {
            match case["targets"]["shape"].as_array().unwrap().len() {
                4 => check_case::<4>(case, &device, backend),
                5 => check_case::<5>(case, &device, backend),
                r => panic!("no fixture of rank {r} expected"),
            }
        }
    }
}

#[test]
fn one_head_is_the_loss_itself_and_the_module_is_the_function() {
    let device = ndarray();
    let mut rng = TestRng::new(7);
    let x: Vec<f64> = (0..2 * 3 * 6 * 5).map(|_| rng.range(-3.0, 3.0)).collect();
    let y: Vec<f64> = (0..2 * 6 * 5)
        .map(|_| (rng.next_u64() % 3) as f64)
        .collect();
    let logits = tensor(&x, [2, 3, 6, 5], &device, DType::F32);
    let classes = tensor(&y, [2, 1, 6, 5], &device, DType::F32).int();
    let config = DeepSupervisionConfig::new();
    let alone = MulticlassLoss::DiceCe(DiceCeConfig::new())
        .compute(logits.clone(), classes.clone())
        .unwrap();
    let supervised = deep_supervision(vec![logits.clone()], classes.clone(), &config).unwrap();
    let module = config.init().unwrap().forward(vec![logits], classes);
    assert_eq!(to_vec(alone.clone()), to_vec(supervised));
    assert_eq!(to_vec(alone), to_vec(module));
}

#[test]
fn careless_deep_supervision_calls_are_errors() {
    let device = ndarray();
    let logits = Tensor::<4>::zeros([1, 2, 4, 4], &device);
    let classes = Tensor::<4, burn::tensor::Int>::zeros([1, 1, 4, 4], &device);
    let config = DeepSupervisionConfig::new();
    let none = deep_supervision(Vec::<Tensor<4>>::new(), classes.clone(), &config);
    assert!(matches!(
        none,
        Err(SegLossError::InvalidOption { name: "heads", .. })
    ));
    let short = config
        .clone()
        .with_weights(DeepSupervisionWeights::Explicit(vec![1.0]));
    let two = vec![logits.clone(), logits.clone()];
    assert!(matches!(
        deep_supervision(two, classes.clone(), &short),
        Err(SegLossError::InvalidOption {
            name: "weights",
            ..
        })
    ));
    let negative = config.with_weights(DeepSupervisionWeights::Explicit(vec![1.0, -0.5]));
    assert!(negative.init().is_err());
    assert!(deep_supervision(vec![logits], classes, &negative).is_err());
}
