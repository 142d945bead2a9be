//! Hard metrics: counts and scores against smp `get_stats` / smp metrics / MONAI
//! (`tests/reference/metrics.json`, from `tests/reference/generate_metrics.py`), empty
//! policies, aggregation, exact counting past 2^25 pixels, and errors.

mod common;

use burn::tensor::{Bool, DType, Device, Tensor, TensorData};
use common::*;
use segloss::metrics::*;
use segloss::{EmptyPolicy, SegLossError};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("reference/metrics.json")).unwrap()
}

fn counts(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

fn reference_confusion(device: &Device) -> Confusion {
    let doc = fixture();
    let shape: [usize; 4] = [8, 1, 7, 9];
    let p = tensor(&floats(&doc["probabilities"]), shape, device, DType::F32);
    let y = tensor(&floats(&doc["targets"]), shape, device, DType::F32);
    Confusion::from_masks(
        threshold_probabilities(p, DEFAULT_PROBABILITY_THRESHOLD),
        y.greater_elem(0.5),
    )
    .unwrap()
}

fn assert_scores(actual: &[f64], expected: &[f64], what: &str) {
    assert_eq!(actual.len(), expected.len());
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        // smp computes in float32.
        assert!(
            (a.is_nan() && e.is_nan()) || (a - e).abs() <= 1e-6,
            "{what}[{i}]: got {a}, expected {e}"
        );
    }
}

#[test]
fn counts_match_smp_get_stats_on_every_backend() {
    let doc = fixture();
    for (backend, device) in all_devices() {
        let c = reference_confusion(&device);
        assert_eq!(c.tp(), counts(&doc["tp"]), "{backend} tp");
        assert_eq!(c.fp(), counts(&doc["fp"]), "{backend} fp");
        assert_eq!(c.fn_(), counts(&doc["fn"]), "{backend} fn");
        assert_eq!(c.tn(), counts(&doc["tn"]), "{backend} tn");
    }
}

#[test]
fn scores_match_smp_and_monai() {
    let doc = fixture();
    let c = reference_confusion(&f64_device());
    assert_scores(
        &c.dice(EmptyPolicy::One),
        &floats(&doc["dice_one"]),
        "dice One vs smp f1",
    );
    assert_scores(
        &c.jaccard(EmptyPolicy::One),
        &floats(&doc["jaccard_one"]),
        "jaccard One vs smp iou",
    );
    assert_scores(
        &c.hamming(),
        &floats(&doc["hamming"]),
        "hamming vs smp accuracy",
    );
    assert_scores(
        &c.micro().dice(EmptyPolicy::One),
        &[doc["dice_micro"].as_f64().unwrap()],
        "micro dice",
    );
    assert_scores(
        &c.micro().jaccard(EmptyPolicy::One),
        &[doc["jaccard_micro"].as_f64().unwrap()],
        "micro jaccard",
    );

    // Weighted Hamming with gamma = 1/2 is the balanced accuracy. smp replaces the whole
    // score by its zero_division value (1) as soon as one term is 0/0, so on image 1 (empty
    // target, 29 false positives) smp says 1 where Eq. 3 with the One policy for the
    // undefined sensitivity gives (1 + 34/63) / 2, and on image 3 (full target, 32 false
    // negatives) smp says 1 where it gives (31/63 + 1) / 2.
    let wh = c.weighted_hamming(0.5, EmptyPolicy::One).unwrap();
    let mut expected = floats(&doc["balanced_accuracy_one"]);
    assert_eq!((c.tp()[1] + c.fn_()[1], c.fp()[1], c.tn()[1]), (0, 29, 34));
    assert_eq!((c.tp()[3], c.fn_()[3], c.fp()[3] + c.tn()[3]), (31, 32, 0));
    assert_eq!((expected[1], expected[3]), (1.0, 1.0));
    expected[1] = 0.5 * 1.0 + 0.5 * 34.0 / 63.0;
    expected[3] = 0.5 * 31.0 / 63.0 + 0.5 * 1.0;
    assert_scores(
        &wh,
        &expected,
        "weighted hamming 0.5 vs smp balanced accuracy",
    );

    // EmptyPolicy::Nan vs MONAI ignore_empty=True: MONAI leaves out every image with an empty
    // target; ours only leaves out 0/0 (image 0, both empty). Image 1 (empty target, false
    // positives) is a real Dice of 0 for us.
    let (dice_nan, jac_nan) = (c.dice(EmptyPolicy::Nan), c.jaccard(EmptyPolicy::Nan));
    let (monai_dice, monai_jac) = (floats(&doc["dice_nan"]), floats(&doc["jaccard_nan"]));
    assert!(dice_nan[0].is_nan() && jac_nan[0].is_nan());
    assert!(monai_dice[1].is_nan() && dice_nan[1] == 0.0 && jac_nan[1] == 0.0);
    assert_scores(
        &dice_nan[2..],
        &monai_dice[2..],
        "dice Nan vs MONAI DiceMetric",
    );
    assert_scores(
        &jac_nan[2..],
        &monai_jac[2..],
        "jaccard Nan vs MONAI MeanIoU",
    );

    // Zero policy: only the 0/0 image changes.
    assert_eq!(c.dice(EmptyPolicy::Zero)[0], 0.0);
    assert_eq!(
        c.dice(EmptyPolicy::Zero)[1..],
        c.dice(EmptyPolicy::One)[1..]
    );
}

#[test]
fn weighted_hamming_follows_the_empty_policy_and_eq3() {
    let c = Confusion::new(vec![0, 5, 3], vec![2, 0, 1], vec![0, 0, 2], vec![8, 0, 4]).unwrap();
    // Image 0: |y| = 0, sensitivity 0/0. Image 1: |y| = d, specificity 0/0.
    let one = c.weighted_hamming(0.3, EmptyPolicy::One).unwrap();
    assert!((one[0] - (0.3 * 1.0 + 0.7 * 0.8)).abs() < 1e-12);
    assert!((one[1] - (0.3 * 1.0 + 0.7 * 1.0)).abs() < 1e-12);
    let zero = c.weighted_hamming(0.3, EmptyPolicy::Zero).unwrap();
    assert!((zero[0] - 0.7 * 0.8).abs() < 1e-12 && (zero[1] - 0.3).abs() < 1e-12);
    let nan = c.weighted_hamming(0.3, EmptyPolicy::Nan).unwrap();
    assert!(nan[0].is_nan() && nan[1].is_nan());
    // Eq. 3 on a regular image: 1 - gamma FN/|y| - (1 - gamma) FP/(d - |y|).
    assert!((one[2] - (1.0 - 0.3 * 2.0 / 5.0 - 0.7 * 1.0 / 5.0)).abs() < 1e-12);
    // A zero weight keeps an undefined term out.
    assert_eq!(c.weighted_hamming(0.0, EmptyPolicy::Nan).unwrap()[0], 0.8);
    for gamma in [-0.1, 1.1, f64::NAN] {
        assert!(matches!(
            c.weighted_hamming(gamma, EmptyPolicy::One),
            Err(SegLossError::InvalidParameter { name: "gamma", .. })
        ));
    }
}

#[test]
fn mean_over_images_skips_nan_only_when_asked() {
    assert_eq!(mean_over_images(&[1.0, f64::NAN, 0.5], true), 0.75);
    assert!(mean_over_images(&[1.0, f64::NAN], false).is_nan());
    assert!(mean_over_images(&[f64::NAN], true).is_nan());
    assert!(mean_over_images(&[], true).is_nan());
}

#[test]
fn counts_stay_exact_beyond_2_pow_25_pixels() {
    // One image of 2^25 + 7 pixels, with more than 2^24 true positives: an f32 sum of ones
    // stops counting at 2^24.
    const P: usize = (1 << 25) + 7;
    let device = f64_device();
    let pred: Vec<bool> = (0..P).map(|i| i % 5 != 0).collect();
    let target: Vec<bool> = (0..P).map(|i| i % 7 != 0).collect();
    let count = |f: &dyn Fn(usize) -> bool| (0..P).filter(|&i| f(i)).count() as u64;
    let c = Confusion::from_masks(
        Tensor::<2, Bool>::from_data(TensorData::new(pred, [1, P]), &device),
        Tensor::<2, Bool>::from_data(TensorData::new(target, [1, P]), &device),
    )
    .unwrap();
    assert_eq!(c.tp()[0], count(&|i| i % 5 != 0 && i % 7 != 0));
    assert_eq!(c.fp()[0], count(&|i| i % 5 != 0 && i % 7 == 0));
    assert_eq!(c.fn_()[0], count(&|i| i % 5 == 0 && i % 7 != 0));
    assert_eq!(c.tn()[0], count(&|i| i % 35 == 0));
    assert_eq!(c.pixels(0), P as u64);
    assert!(c.tp()[0] > 1 << 24);
    // f32 would not even hold the pixel count.
    assert_ne!((P as f32) as u64, P as u64);
}

#[test]
fn from_logits_thresholds_and_validates_targets() {
    let d = f64_device();
    let x = tensor(&[2.0, -1.0, 0.0, 0.5], [1, 4], &d, DType::F32);
    let y = tensor(&[1.0, 0.0, 1.0, 1.0], [1, 4], &d, DType::F32);
    let c = Confusion::from_logits(x.clone(), y, DEFAULT_LOGIT_THRESHOLD).unwrap();
    // x > 0: [1, 0, 0, 1]; y: [1, 0, 1, 1].
    assert_eq!((c.tp()[0], c.fp()[0], c.fn_()[0], c.tn()[0]), (2, 0, 1, 1));
    let soft = tensor(&[1.0, 0.2, 1.0, 1.0], [1, 4], &d, DType::F32);
    assert!(matches!(
        Confusion::from_logits(x, soft, 0.0),
        Err(SegLossError::InvalidTargets { .. })
    ));
}

#[test]
fn bad_masks_are_errors() {
    let d = f64_device();
    let a = Tensor::<2, Bool>::from_bool(TensorData::new(vec![true; 6], [2, 3]), &d);
    let b = Tensor::<2, Bool>::from_bool(TensorData::new(vec![true; 6], [3, 2]), &d);
    assert!(matches!(
        Confusion::from_masks(a, b),
        Err(SegLossError::ShapeMismatch { .. })
    ));
    let r1 = Tensor::<1, Bool>::from_bool(TensorData::new(vec![true; 3], [3]), &d);
    assert!(matches!(
        Confusion::from_masks(r1.clone(), r1),
        Err(SegLossError::UnsupportedRank { .. })
    ));
    let empty = Tensor::<2, Bool>::from_bool(TensorData::new(Vec::<bool>::new(), [0, 3]), &d);
    assert!(matches!(
        Confusion::from_masks(empty.clone(), empty),
        Err(SegLossError::EmptyTensor { .. })
    ));
}
