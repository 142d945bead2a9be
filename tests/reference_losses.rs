//! Values and gradients against the public PyTorch implementations (torch BCE, MONAI DiceLoss,
//! smp soft_jaccard_score, smp/Berman Lovász; MONAI TverskyLoss, FocalLoss, DiceCELoss and
//! DiceFocalLoss; MONAI SoftclDiceLoss, smp MCCLoss and TverskyLoss(gamma)), from
//! `tests/reference/losses.json`, `losses_extended.json` and `requested_binary.json`, generated
//! by `tests/reference/generate.py`, `generate_extended.py` and `generate_requested_binary.py`. Relative tolerance 1e-5 on the CPU
//! backends, 1e-4 on wgpu ([`parity_tolerance`]), on every enabled backend, through both the
//! host kernels and the burn-operations path.

mod common;

use burn::tensor::{DType, Device};
use common::*;
use serde_json::Value;

/// The fixture files: the paper's losses (`generate.py`) and the losses beyond the paper
/// (Tversky, focal, compound, soft-label and log variants: `generate_extended.py`), and those
/// added on request (clDice, MCC, focal Tversky: `generate_requested_binary.py`).
fn fixtures() -> [Value; 3] {
    [
        serde_json::from_str(include_str!("reference/losses.json")).unwrap(),
        serde_json::from_str(include_str!("reference/losses_extended.json")).unwrap(),
        serde_json::from_str(include_str!("reference/requested_binary.json")).unwrap(),
    ]
}

/// Runs every fixture case of `loss` with the input reshaped to rank `D`.
fn check_case<const D: usize>(
    case: &Value,
    input: &Value,
    device: &Device,
    backend: &str,
    execution: &str,
) {
    let shape: [usize; D] = shape_of(&input["shape"]);
    let loss = case["loss"].as_str().unwrap();
    let options = &with_execution(&case["options"], execution);
    let x = match &case["input_values"] {
        Value::Null => floats(&input["logits"]),
        probabilities => floats(probabilities),
    };
    let y = floats(&input["targets"]);
    let what = format!("{backend} {loss} {options} on {shape:?}");
    check_fixture_case(
        case,
        &x,
        shape,
        device,
        parity_tolerance(backend),
        &what,
        |reduction, x, device| {
            let y = tensor(&y, shape, device, DType::F32);
            run_loss(loss, options, reduction, x, y).unwrap()
        },
    );
}

#[test]
fn losses_match_pytorch_references() {
    let mut seen = std::collections::BTreeSet::new();
    for doc in fixtures() {
        let cases = doc["cases"].as_array().unwrap();
        for (backend, device) in all_devices() {
            for execution in EXECUTIONS {
                for case in cases {
                    let input = &doc["inputs"][case["input"].as_str().unwrap()];
                    match input["shape"].as_array().unwrap().len() {
                        3 => check_case::<3>(case, input, &device, backend, execution),
                        4 => check_case::<4>(case, input, &device, backend, execution),
                        5 => check_case::<5>(case, input, &device, backend, execution),
                        r => panic!("no fixture of rank {r} expected"),
                    }
                    seen.insert(case["loss"].as_str().unwrap().to_string());
                }
            }
        }
    }
    // Every loss of the crate has references.
    for loss in ALL_LOSSES.iter().chain(&LATER_LOSSES) {
        assert!(seen.contains(*loss), "no reference case for {loss}");
    }
}
