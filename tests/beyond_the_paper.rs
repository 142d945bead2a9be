//! Properties of the losses beyond the paper: Tversky generalises soft Dice and soft Jaccard,
//! the soft-label (L1) overlap losses are minimal at `p = y` for soft targets while the
//! classic ones are not, focal with `gamma = 0` is the cross-entropy, `log_loss` is
//! `-ln(1 - loss)`, and a compound loss is the weighted sum of its terms (values and
//! gradients). Every comparison runs through both execution paths.

mod common;

use burn::tensor::{DType, Device};
use common::*;
use proptest::prelude::*;
use segloss::Reduction;
use segloss::losses::{CompoundConfig, Loss, SoftDiceConfig, compound};
use serde_json::{Value, json};

const SHAPE: [usize; 4] = [3, 1, 6, 5];

/// Per-image values (`Reduction::None`) and the gradient of their mean, on flex (f64 where
/// it is enabled).
fn value_grad(loss: &str, options: &Value, x: &[f64], y: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let device = f64_device();
    let dtype = float_dtypes(&device).into_iter().last().unwrap();
    let value = to_vec(
        run_loss(
            loss,
            options,
            Reduction::None,
            tensor(x, SHAPE, &device, dtype),
            tensor(y, SHAPE, &device, dtype),
        )
        .unwrap(),
    );
    let (_, grad) = value_and_grad(loss, options, x, y, SHAPE, &device, dtype);
    (value, grad)
}

fn len() -> usize {
    SHAPE.iter().product()
}

fn logits_and_masks() -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
    (
        prop::collection::vec(-5.0f64..5.0, len()),
        prop::collection::vec(prop::bool::ANY.prop_map(|b| f64::from(u8::from(b))), len()),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn tversky_is_soft_dice_at_one_half_and_soft_jaccard_at_one((x, y) in logits_and_masks(), batch in any::<bool>()) {
        for execution in EXECUTIONS {
            let common = json!({"smooth_nr": 0.0, "smooth_dr": 0.0, "execution": execution,
                                "aggregation": if batch { "batch" } else { "per_image" }});
            for (alpha, other) in [(0.5, "soft_dice"), (1.0, "soft_jaccard")] {
                let mut t = common.clone();
                t["alpha"] = json!(alpha);
                t["beta"] = json!(alpha);
                let (tv, tg) = value_grad("tversky", &t, &x, &y);
                let (ov, og) = value_grad(other, &common, &x, &y);
                assert_close(&tv, &ov, 1e-6, 1e-6, &format!("tversky {t} vs {other}: value"));
                assert_close(&tg, &og, 1e-6, 0.0, &format!("tversky {t} vs {other}: gradient"));
            }
        }
    }

    #[test]
    fn focal_with_gamma_zero_is_cross_entropy((x, y) in logits_and_masks(), from_logits in any::<bool>()) {
        let x: Vec<f64> = if from_logits { x } else { x.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect() };
        for execution in EXECUTIONS {
            let bce = json!({"from_logits": from_logits, "execution": execution});
            let mut focal = bce.clone();
            focal["gamma"] = json!(0.0);
            let (fv, fg) = value_grad("focal", &focal, &x, &y);
            let (bv, bg) = value_grad("binary_cross_entropy", &bce, &x, &y);
            assert_close(&fv, &bv, 1e-6, 1e-6, &format!("{focal}: value"));
            assert_close(&fg, &bg, 1e-6, 0.0, &format!("{focal}: gradient"));
            // alpha = 1/2 weighs both classes by 1/2.
            focal["alpha"] = json!(0.5);
            let (hv, _) = value_grad("focal", &focal, &x, &y);
            let half: Vec<f64> = bv.iter().map(|v| v / 2.0).collect();
            assert_close(&hv, &half, 1e-6, 1e-6, &format!("{focal}: value"));
        }
    }

    #[test]
    fn focal_weighs_confident_pixels_less_than_cross_entropy((x, y) in logits_and_masks()) {
        // (1 - p_t)^gamma <= 1, so per image focal <= BCE, with equality only where p_t = 0.
        for execution in EXECUTIONS {
            let options = json!({"execution": execution});
            let (fv, _) = value_grad("focal", &options, &x, &y);
            let (bv, _) = value_grad("binary_cross_entropy", &options, &x, &y);
            for (f, b) in fv.iter().zip(&bv) {
                prop_assert!(*f <= b + 1e-9 && *f >= 0.0, "focal {f} vs bce {b}");
            }
        }
    }

    #[test]
    fn log_loss_is_minus_log_of_the_score((x, y) in logits_and_masks(), loss_index in 0usize..3) {
        let loss = ["soft_dice", "soft_jaccard", "tversky"][loss_index];
        for execution in EXECUTIONS {
            let plain = json!({"execution": execution, "alpha": 0.3, "beta": 0.7});
            let mut log = plain.clone();
            log["log_loss"] = json!(true);
            let (pv, pg) = value_grad(loss, &plain, &x, &y);
            let (lv, lg) = value_grad(loss, &log, &x, &y);
            let expected: Vec<f64> = pv.iter().map(|v| -(1.0 - v).max(1e-7).ln()).collect();
            assert_close(&lv, &expected, 1e-6, 1e-6, &format!("{loss} {log}: value"));
            // d(-ln s)/dx = (d(1 - s)/dx) / s for each image: here per image of the mean.
            let per = len() / SHAPE[0];
            let scaled: Vec<f64> = pg.iter().enumerate().map(|(i, g)| g / (1.0 - pv[i / per])).collect();
            assert_close(&lg, &scaled, 1e-6, 0.0, &format!("{loss} {log}: gradient"));
        }
    }
}

/// Soft targets strictly inside (0, 1), and probabilities equal to them.
fn soft_targets() -> Vec<f64> {
    let mut rng = TestRng::new(11);
    (0..len()).map(|_| rng.range(0.1, 0.9)).collect()
}

#[test]
fn soft_label_overlap_losses_are_minimal_at_the_soft_target() {
    let y = soft_targets();
    let mut rng = TestRng::new(12);
    for loss in ["soft_dice", "soft_jaccard", "tversky"] {
        for execution in EXECUTIONS {
            let soft = json!({"from_logits": false, "soft_label": true, "execution": execution,
                              "alpha": 0.3, "beta": 0.7});
            let (at_target, grad) = value_grad(loss, &soft, &y, &y);
            assert!(
                at_target.iter().all(|v| v.abs() < 1e-9),
                "{loss} {soft}: {at_target:?}"
            );
            // p = y is a kink of |p - y|. Dice and Jaccard weigh both sides alike, so the
            // gradient (sign(0) = 0, as burn's `abs`) vanishes there; Tversky with
            // alpha != beta has one-sided slopes alpha and beta (both > 0: still the minimum).
            if loss != "tversky" {
                assert!(
                    grad.iter().all(|g| g.abs() < 1e-9),
                    "{loss} {soft}: {grad:?}"
                );
            }
            // Any other prediction scores worse.
            for _ in 0..20 {
                let p: Vec<f64> = y
                    .iter()
                    .map(|v| (v + rng.range(-0.1, 0.1)).clamp(0.0, 1.0))
                    .collect();
                let (moved, _) = value_grad(loss, &soft, &p, &y);
                assert!(moved.iter().all(|v| *v > 1e-6), "{loss} {soft}: {moved:?}");
            }
            // The classic intersection sum(p y) is not stationary at p = y: its gradient there
            // is far from zero, so p = y is not its minimum.
            let mut classic = soft.clone();
            classic["soft_label"] = json!(false);
            let (value, grad) = value_grad(loss, &classic, &y, &y);
            assert!(
                value.iter().all(|v| *v > 0.05),
                "{loss} {classic}: {value:?}"
            );
            let norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
            assert!(norm > 1e-2, "{loss} {classic}: gradient norm {norm}");
        }
    }
}

#[test]
fn soft_label_changes_nothing_for_hard_targets() {
    let mut rng = TestRng::new(13);
    let x: Vec<f64> = (0..len()).map(|_| rng.range(-4.0, 4.0)).collect();
    let y = rng.mask(len(), 0.4);
    for loss in ["soft_dice", "soft_jaccard", "tversky"] {
        for execution in EXECUTIONS {
            let plain = json!({"execution": execution, "alpha": 0.3, "beta": 0.7});
            let mut soft = plain.clone();
            soft["soft_label"] = json!(true);
            let (pv, pg) = value_grad(loss, &plain, &x, &y);
            let (sv, sg) = value_grad(loss, &soft, &x, &y);
            assert_close(&sv, &pv, 1e-9, 1e-9, &format!("{loss} {soft}: value"));
            assert_close(&sg, &pg, 1e-9, 0.0, &format!("{loss} {soft}: gradient"));
        }
    }
}

#[test]
fn compound_is_the_weighted_sum_of_its_terms() {
    let mut rng = TestRng::new(14);
    let x: Vec<f64> = (0..len()).map(|_| rng.range(-4.0, 4.0)).collect();
    let y = rng.mask(len(), 0.4);
    let terms = [
        (0.3, "soft_jaccard", json!({"log_loss": true})),
        (1.7, "focal", json!({"alpha": 0.25})),
        (0.5, "lovasz_hinge", json!({})),
    ];
    for execution in EXECUTIONS {
        let terms: Vec<Value> = terms
            .iter()
            .map(|(w, l, o)| json!({"weight": w, "loss": l, "options": o}))
            .collect();
        let options = json!({"terms": terms, "execution": execution});
        let (cv, cg) = value_grad("compound", &options, &x, &y);
        let mut sum_v = vec![0.0; SHAPE[0]];
        let mut sum_g = vec![0.0; len()];
        for term in &terms {
            let (w, loss) = (
                term["weight"].as_f64().unwrap(),
                term["loss"].as_str().unwrap(),
            );
            let o = with_execution(&term["options"], execution);
            let (v, g) = value_grad(loss, &o, &x, &y);
            sum_v.iter_mut().zip(&v).for_each(|(s, v)| *s += w * v);
            sum_g.iter_mut().zip(&g).for_each(|(s, g)| *s += w * g);
        }
        assert_close(
            &cv,
            &sum_v,
            1e-9,
            1e-9,
            &format!("compound {execution} value"),
        );
        assert_close(
            &cg,
            &sum_g,
            1e-9,
            0.0,
            &format!("compound {execution} gradient"),
        );
    }
}

#[test]
fn compound_rejects_no_terms_bad_weights_and_mismatched_shapes() {
    let device: Device = f64_device();
    let x = tensor(&vec![0.5; len()], SHAPE, &device, DType::F32);
    let y = tensor(&vec![1.0; len()], SHAPE, &device, DType::F32);
    assert!(compound(x.clone(), y.clone(), &CompoundConfig::new()).is_err());
    let dice = || Loss::SoftDice(SoftDiceConfig::new());
    for w in [-1.0, f64::NAN, f64::INFINITY] {
        let config = CompoundConfig::new().with_term(w, dice());
        assert!(
            compound(x.clone(), y.clone(), &config).is_err(),
            "weight {w}"
        );
    }
    // [1] (mean) plus [N] (none): an error naming both shapes, not a silent broadcast.
    let config = CompoundConfig::new().with_term(1.0, dice()).with_term(
        1.0,
        Loss::SoftDice(SoftDiceConfig::new().with_reduction(Reduction::None)),
    );
    let err = compound(x, y, &config).unwrap_err().to_string();
    assert!(err.contains("[1]") && err.contains("[3]"), "{err}");
}
