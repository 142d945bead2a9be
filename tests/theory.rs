//! The paper's theory checked on hard masks: Eq. 4, Prop. 1 (bounds and where the largest
//! gap is reached) and Prop. 2 (weighted Hamming cannot approximate Dice).

mod common;

use burn::tensor::{Bool, Tensor, TensorData};
use common::*;
use proptest::prelude::*;
use segloss::EmptyPolicy;
use segloss::metrics::{Confusion, mean_over_images};
use segloss::theory::*;

/// Confusion of masks given as bool vectors `[n, len]`, counted by the crate on a device.
fn confusion(pred: Vec<bool>, target: Vec<bool>, n: usize) -> Confusion {
    let device = f64_device();
    let len = pred.len() / n;
    Confusion::from_masks(
        Tensor::<2, Bool>::from_data(TensorData::new(pred, [n, len]), &device),
        Tensor::<2, Bool>::from_data(TensorData::new(target, [n, len]), &device),
    )
    .unwrap()
}

fn masks() -> impl Strategy<Value = (Vec<bool>, Vec<bool>, usize)> {
    (1usize..6, 1usize..60).prop_flat_map(|(n, len)| {
        (
            prop::collection::vec(any::<bool>(), n * len),
            prop::collection::vec(any::<bool>(), n * len),
            Just(n),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn eq4_and_prop1_hold_on_random_masks((pred, target, n) in masks()) {
        let c = confusion(pred, target, n);
        let (d, j) = (c.dice(EmptyPolicy::One), c.jaccard(EmptyPolicy::One));
        for (&d, &j) in d.iter().zip(&j) {
            prop_assert!((jaccard_from_dice(d) - j).abs() < 1e-12, "Eq. 4: J = D/(2-D)");
            prop_assert!((dice_from_jaccard(j) - d).abs() < 1e-12, "Eq. 4: D = 2J/(1+J)");
            prop_assert!(j <= d + 1e-15, "J <= D");
            prop_assert!(d <= (1.0 + DICE_JACCARD_RELATIVE_ERROR) * j + 1e-15, "D <= 2J");
            prop_assert!(d - j <= DICE_JACCARD_ABSOLUTE_ERROR + 1e-15, "D - J <= 3 - 2 sqrt 2");
            prop_assert!(1.0 - d <= 1.0 - j + 1e-15, "Dice loss <= Jaccard loss");
        }
        // So the mean Jaccard loss bounds the mean Dice loss (Sect. 2).
        let mean_dice_loss = 1.0 - mean_over_images(&d, false);
        let mean_jaccard_loss = 1.0 - mean_over_images(&j, false);
        prop_assert!(mean_dice_loss <= mean_jaccard_loss + 1e-12);
    }
}

#[test]
fn the_largest_dice_jaccard_gap_is_reached_at_dice_two_minus_sqrt2() {
    // D = 2TP / (2TP + E) = 2 - sqrt(2) needs E / TP = sqrt(2): TP = 29289, E = 41421.
    let (tp, fp, fn_) = (29_289usize, 20_710usize, 20_711usize);
    let len = tp + fp + fn_ + 1000;
    let pred: Vec<bool> = (0..len).map(|i| i < tp + fp).collect();
    let target: Vec<bool> = (0..len)
        .map(|i| i < tp || (tp + fp..tp + fp + fn_).contains(&i))
        .collect();
    let c = confusion(pred, target, 1);
    assert_eq!(
        (c.tp()[0], c.fp()[0], c.fn_()[0]),
        (tp as u64, fp as u64, fn_ as u64)
    );
    let (d, j) = (c.dice(EmptyPolicy::One)[0], c.jaccard(EmptyPolicy::One)[0]);
    assert!((d - DICE_AT_LARGEST_GAP).abs() < 1e-5, "D = {d}");
    assert!(
        (d - j - DICE_JACCARD_ABSOLUTE_ERROR).abs() < 1e-9,
        "gap {}",
        d - j
    );
    // And it is a maximum: moving D either way shrinks the gap.
    for dice in [DICE_AT_LARGEST_GAP - 0.05, DICE_AT_LARGEST_GAP + 0.05] {
        assert!(dice - jaccard_from_dice(dice) < DICE_JACCARD_ABSOLUTE_ERROR);
    }
}

#[test]
fn prop2_weighted_hamming_cannot_approximate_dice() {
    // On masks (counted by the crate) for a moderate a.
    let (a, len) = (0.1f64, 10_000usize);
    let (tp, fp) = ((a * a * len as f64) as usize, (a * len as f64) as usize);
    let pred: Vec<bool> = (0..len).map(|i| i < tp + fp).collect();
    let target: Vec<bool> = (0..len).map(|i| i < tp).collect();
    assert_eq!(
        confusion(pred, target, 1),
        prop2_family(a, len as u64).unwrap()
    );

    // The ratio between the best weighted Hamming similarity (the smallest over gamma, the one
    // closest to D) and D grows without bound as a -> 0.
    let d = 1u64 << 50;
    let mut previous = 0.0;
    for k in 1..=6 {
        let a = 10f64.powi(-k);
        let c = prop2_family(a, d).unwrap();
        let dice = c.dice(EmptyPolicy::One)[0];
        assert!(
            (dice - 2.0 * a / (2.0 * a + 1.0)).abs() < 1e-6,
            "D = 2a/(2a+1)"
        );
        let best = (0..=100)
            .map(|g| {
                c.weighted_hamming(g as f64 / 100.0, EmptyPolicy::One)
                    .unwrap()[0]
            })
            .fold(f64::INFINITY, f64::min);
        assert!(best >= 1.0 - a / (1.0 - a * a) - 1e-9);
        let ratio = best / dice;
        assert!(
            ratio > previous,
            "ratio must grow: {ratio} after {previous}"
        );
        assert!(ratio > 0.4 * 10f64.powi(k), "a = {a}: H/D = {ratio}");
        previous = ratio;
    }
    assert!(previous > 1e5, "exceeds any fixed factor: {previous}");
}

#[test]
fn prop2_family_outside_its_domain_is_an_error() {
    use segloss::SegLossError;
    let a_max = (5.0_f64.sqrt() - 1.0) / 2.0;
    // 0.7: a + a^2 = 1.19 > 1, TP + FP = 49 + 70 = 119 of 100 pixels.
    for a in [0.0, 1.0, 0.7, a_max + 1e-9, -0.5, f64::NAN, f64::INFINITY] {
        assert!(
            matches!(
                prop2_family(a, 100),
                Err(SegLossError::InvalidParameter { name: "a", .. })
            ),
            "a = {a}"
        );
    }
    // Just below a_max, rounding can still take TP + FP past d; near u64::MAX pixels the sum
    // TP + FP would wrap: both are errors, never counts that do not add up to d.
    for (a, d) in [(a_max - 1e-12, 999), (a_max, u64::MAX)] {
        match prop2_family(a, d) {
            Ok(c) => assert_eq!(c.tp()[0] + c.fp()[0] + c.tn()[0], d, "a = {a}, d = {d}"),
            Err(e) => assert!(
                matches!(e, SegLossError::InvalidParameter { name: "a", .. }),
                "{e}"
            ),
        }
    }
    // The largest member: a + a^2 just under 1 keeps TP + FP + TN = d.
    let c = prop2_family(0.618, 1000).unwrap();
    assert_eq!(c.tp()[0] + c.fp()[0] + c.tn()[0], 1000);
}
