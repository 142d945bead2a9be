//! The multiclass burn-train metrics (`MulticlassSegmentationMetric`,
//! `MulticlassSurfaceMetric`) driven through burn-train's `Metric`, `Numeric`, `Adaptor` and
//! `ItemLazy` API as a `Learner` drives them, on hand-built class maps whose scores are worked
//! out by hand below, and checked against `ClassConfusion` and `ClassSurfaceDistances`
//! computed directly from the same maps.
#![cfg(feature = "train")]

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use burn::data::dataloader::Progress;
use burn::tensor::{Device, Int, Tensor, TensorData};
use burn::train::metric::{
    Adaptor, ItemLazy, LossInput, Metric, MetricMetadata, Numeric, NumericEntry,
};
use common::*;
use segloss::EmptyPolicy;
use segloss::metrics::ClassConfusion;
use segloss::metrics::surface::{
    BothEmpty, ClassSurfaceDistances, HausdorffMode, OneEmpty, SurfaceConfig,
};
use segloss::metrics::train::{
    MulticlassMetricInput, MulticlassSegmentationMetric, MulticlassSegmentationOutput,
    MulticlassSurfaceMetric,
};

const CLASSES: usize = 3;

fn metadata() -> MetricMetadata {
    MetricMetadata {
        progress: Progress {
            items_processed: 1,
            items_total: 2,
            unit: None,
        },
        iteration: Some(0),
        lr: None,
    }
}

fn value(entry: Option<NumericEntry>) -> f64 {
    entry.unwrap().current()
}

fn count(entry: Option<NumericEntry>) -> usize {
    match entry.unwrap() {
        NumericEntry::Aggregated { count, .. } => count,
        other => panic!("expected an aggregated entry, got {other:?}"),
    }
}

fn close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= 1e-12,
        "{what}: {actual} vs {expected}"
    );
}

/// Class maps `[N, 1, S1, S2]` from rows of class indices, one image after the other.
fn class_map(images: &[&[&[i64]]], device: &Device) -> Tensor<4, Int> {
    let (h, w) = (images[0].len(), images[0][0].len());
    let flat: Vec<i64> = images
        .iter()
        .flat_map(|m| m.iter())
        .flat_map(|r| r.iter())
        .copied()
        .collect();
    Tensor::from_data(TensorData::new(flat, [images.len(), 1, h, w]), device)
}

/// Logits `[N, C, S1, S2]` whose argmax over the channels is `pred`: 2 on the predicted
/// class's channel, 0 (or, for variety, -1) elsewhere.
fn logits_for(pred: &[&[&[i64]]], classes: usize, device: &Device) -> Tensor<4> {
    let (h, w) = (pred[0].len(), pred[0][0].len());
    let mut values = Vec::new();
    for image in pred {
        for c in 0..classes as i64 {
            for row in image.iter() {
                for &p in row.iter() {
                    values.push(if p == c { 2.0 } else { -(c as f64 % 2.0) });
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(values, [pred.len(), classes, h, w]), device)
}

/// What a step returns for predictions `pred` and targets `target`, synced as the learner
/// syncs it, and the metric input adapted from it.
fn step_output(
    pred: &[&[&[i64]]],
    target: &[&[&[i64]]],
    device: &Device,
) -> (MulticlassSegmentationOutput, MulticlassMetricInput) {
    let logits = logits_for(pred, CLASSES, device);
    let loss = logits.clone().mean();
    let output = MulticlassSegmentationOutput::new(loss, logits, class_map(target, device))
        .sync()
        .unwrap();
    let input: MulticlassMetricInput = output.adapt();
    (output, input)
}

// Image A (4x4): classes 0, 1 and 2 in target and prediction.
//
// target     pred       class 1: target 4 px, pred 5 px, TP 4, FP 1 (1,1), FN 0
// 0 0 1 1    0 0 1 1             Dice 8/9, Jaccard 4/5
// 0 0 1 1    0 1 1 1    class 2: target 4 px, pred 3 px, TP 3, FP 0, FN 1 (2,1)
// 2 2 0 0    2 0 0 0             Dice 6/7, Jaccard 3/4
// 2 2 0 0    2 2 0 0    class 0: target 8 px, pred 8 px, TP 7, FP 1 (2,1), FN 1 (1,1)
//                                Dice 7/8, Jaccard 7/9
const A_TARGET: &[&[i64]] = &[&[0, 0, 1, 1], &[0, 0, 1, 1], &[2, 2, 0, 0], &[2, 2, 0, 0]];
const A_PRED: &[&[i64]] = &[&[0, 0, 1, 1], &[0, 1, 1, 1], &[2, 0, 0, 0], &[2, 2, 0, 0]];
// Image B (4x4): class 2 absent from both maps (0/0: skipped by default).
//
// target     pred       class 1: TP 3, FP 0, FN 1 (1,1): Dice 6/7, Jaccard 3/4
// 0 0 0 0    0 0 0 0    class 0: target 12 px, pred 13 px, TP 12, FP 1: Dice 24/25,
// 0 1 1 0    0 0 1 0             Jaccard 12/13
// 0 1 1 0    0 1 1 0    class 2: none: 0/0
// 0 0 0 0    0 0 0 0
const B_TARGET: &[&[i64]] = &[&[0, 0, 0, 0], &[0, 1, 1, 0], &[0, 1, 1, 0], &[0, 0, 0, 0]];
const B_PRED: &[&[i64]] = &[&[0, 0, 0, 0], &[0, 0, 1, 0], &[0, 1, 1, 0], &[0, 0, 0, 0]];

#[test]
fn dice_and_jaccard_per_class_and_macro_match_the_hand_counts_and_class_confusion() {
    for (backend, device) in all_devices() {
        let (output, input) = step_output(&[A_PRED, B_PRED], &[A_TARGET, B_TARGET], &device);
        let _loss: LossInput = output.adapt();
        assert_eq!(output.classes(), CLASSES);
        assert_eq!(output.image_shape, vec![1, 4, 4]);
        let run = |mut metric: MulticlassSegmentationMetric| {
            metric.update(&input, &metadata()).unwrap();
            (value(metric.value()), count(metric.value()))
        };
        let what = |m: &str| format!("{backend}: {m}");

        // Per class: the mean over the images that score the class.
        let dice = |c| run(MulticlassSegmentationMetric::dice().with_class(c));
        let jaccard = |c| run(MulticlassSegmentationMetric::jaccard().with_class(c));
        close(
            dice(0).0,
            (7.0 / 8.0 + 24.0 / 25.0) / 2.0,
            &what("Dice class 0"),
        );
        close(
            dice(1).0,
            (8.0 / 9.0 + 6.0 / 7.0) / 2.0,
            &what("Dice class 1"),
        );
        // Class 2 is absent from both maps of image B: skipped, one image scored.
        assert_eq!(dice(2), (6.0 / 7.0, 1), "{}", what("Dice class 2"));
        close(
            jaccard(1).0,
            (4.0 / 5.0 + 3.0 / 4.0) / 2.0,
            &what("Jaccard class 1"),
        );
        assert_eq!(jaccard(2), (3.0 / 4.0, 1), "{}", what("Jaccard class 2"));

        // Macro, background included (the default, MONAI's DiceMetric): image A averages its
        // three classes, image B its two scored ones.
        let macro_a = (7.0 / 8.0 + 8.0 / 9.0 + 6.0 / 7.0) / 3.0;
        let macro_b = (24.0 / 25.0 + 6.0 / 7.0) / 2.0;
        let (dice_macro, images) = run(MulticlassSegmentationMetric::dice());
        close(dice_macro, (macro_a + macro_b) / 2.0, &what("macro Dice"));
        assert_eq!(images, 2);
        let (no_background, _) =
            run(MulticlassSegmentationMetric::dice().with_include_background(false));
        close(
            no_background,
            ((8.0 / 9.0 + 6.0 / 7.0) / 2.0 + 6.0 / 7.0) / 2.0,
            &what("macro Dice without background"),
        );
        let jaccard_a = (7.0 / 9.0 + 4.0 / 5.0 + 3.0 / 4.0) / 3.0;
        let jaccard_b = (12.0 / 13.0 + 3.0 / 4.0) / 2.0;
        close(
            run(MulticlassSegmentationMetric::jaccard()).0,
            (jaccard_a + jaccard_b) / 2.0,
            &what("macro Jaccard"),
        );

        // The same as ClassConfusion's own scores of the same maps, computed directly.
        let confusion = ClassConfusion::from_indices(
            class_map(&[A_PRED, B_PRED], &device),
            class_map(&[A_TARGET, B_TARGET], &device),
            CLASSES,
            None,
        )
        .unwrap();
        let mean = |v: Vec<f64>| segloss::metrics::mean_over_images(&v, true);
        for background in [true, false] {
            close(
                run(MulticlassSegmentationMetric::dice().with_include_background(background)).0,
                mean(confusion.macro_dice(EmptyPolicy::Nan, background)),
                &what("macro Dice vs ClassConfusion::macro_dice"),
            );
            close(
                run(MulticlassSegmentationMetric::jaccard().with_include_background(background)).0,
                mean(confusion.macro_jaccard(EmptyPolicy::Nan, background)),
                &what("macro Jaccard vs ClassConfusion::macro_jaccard"),
            );
        }
        let dice_table = confusion.dice(EmptyPolicy::Nan);
        for c in 0..CLASSES {
            close(
                dice(c).0,
                mean(dice_table.iter().map(|image| image[c]).collect()),
                &what("Dice class vs ClassConfusion::dice"),
            );
        }
        // Hamming of class 1: one-vs-rest accuracy, 15/16 in both images.
        close(
            run(MulticlassSegmentationMetric::hamming().with_class(1)).0,
            15.0 / 16.0,
            &what("Hamming class 1"),
        );
    }
}

#[test]
fn empty_classes_are_skipped_by_default_and_counted_by_the_other_policies() {
    let device = f64_device();
    let (_, input) = step_output(&[A_PRED, B_PRED], &[A_TARGET, B_TARGET], &device);
    let class_2 = |empty: EmptyPolicy| {
        let mut metric = MulticlassSegmentationMetric::dice()
            .with_class(2)
            .with_empty_policy(empty);
        metric.update(&input, &metadata()).unwrap();
        (value(metric.value()), count(metric.value()))
    };
    assert_eq!(class_2(EmptyPolicy::Nan), (6.0 / 7.0, 1));
    close(class_2(EmptyPolicy::One).0, (6.0 / 7.0 + 1.0) / 2.0, "One");
    close(class_2(EmptyPolicy::Zero).0, (6.0 / 7.0) / 2.0, "Zero");
    assert_eq!(class_2(EmptyPolicy::One).1, 2);
    // In the macro mean, One counts the absent class of image B as a perfect class.
    let mut macro_one = MulticlassSegmentationMetric::dice().with_empty_policy(EmptyPolicy::One);
    macro_one.update(&input, &metadata()).unwrap();
    let macro_a = (7.0 / 8.0 + 8.0 / 9.0 + 6.0 / 7.0) / 3.0;
    close(
        value(macro_one.value()),
        (macro_a + (24.0 / 25.0 + 6.0 / 7.0 + 1.0) / 3.0) / 2.0,
        "macro Dice, empty One",
    );
}

#[test]
fn a_batch_without_the_class_shows_the_perfect_value_and_leaves_the_epoch_alone() {
    let device = f64_device();
    let mut dice_2 = MulticlassSegmentationMetric::dice().with_class(2);
    let mut nsd_2 = MulticlassSurfaceMetric::nsd(1.0).with_class(2);
    let mut hd_2 = MulticlassSurfaceMetric::hd95().with_class(2);
    // Before any batch, and after a batch where class 2 is in neither map: 1 (NSD, Dice) and
    // 0 (HD95), over no image, not NaN.
    assert_eq!(value(dice_2.running_value()), 1.0);
    let (_, only_b) = step_output(&[B_PRED], &[B_TARGET], &device);
    for metric in [&mut nsd_2, &mut hd_2] {
        metric.update(&only_b, &metadata()).unwrap();
    }
    dice_2.update(&only_b, &metadata()).unwrap();
    assert_eq!((value(dice_2.value()), count(dice_2.value())), (1.0, 0));
    assert_eq!(
        (value(dice_2.running_value()), count(dice_2.running_value())),
        (1.0, 0)
    );
    assert_eq!((value(nsd_2.value()), value(hd_2.value())), (1.0, 0.0));
    assert!(matches!(dice_2.final_value(), NumericEntry::Final(v) if v == 1.0));
    let entry = dice_2.compute().unwrap();
    assert!(!entry.formatted.contains("NaN"), "{}", entry.formatted);
    // A later batch with class 2: the epoch is that batch's value alone.
    let (_, only_a) = step_output(&[A_PRED], &[A_TARGET], &device);
    dice_2.update(&only_a, &metadata()).unwrap();
    close(
        value(dice_2.running_value()),
        6.0 / 7.0,
        "epoch after the class appears",
    );
    assert_eq!(count(dice_2.running_value()), 1);
}

#[test]
fn ignore_index_leaves_those_pixels_out_of_prediction_and_target() {
    // Image A with its two wrong pixels, (1,1) and (2,1), ignored in the target: what is left
    // is predicted exactly, so every class of the image scores 1.
    let a_ignored: &[&[i64]] = &[
        &[0, 0, 1, 1],
        &[0, 255, 1, 1],
        &[2, 255, 0, 0],
        &[2, 2, 0, 0],
    ];
    for (backend, device) in all_devices() {
        let (_, input) = step_output(&[A_PRED, B_PRED], &[a_ignored, B_TARGET], &device);
        let mut per_class: Vec<MulticlassSegmentationMetric> = (0..CLASSES)
            .map(|c| {
                MulticlassSegmentationMetric::dice()
                    .with_class(c)
                    .with_ignore_index(Some(255))
            })
            .collect();
        let mut macro_dice = MulticlassSegmentationMetric::dice().with_ignore_index(Some(255));
        for metric in per_class.iter_mut().chain([&mut macro_dice]) {
            metric.update(&input, &metadata()).unwrap();
        }
        close(
            value(per_class[0].value()),
            (1.0 + 24.0 / 25.0) / 2.0,
            backend,
        );
        close(
            value(per_class[1].value()),
            (1.0 + 6.0 / 7.0) / 2.0,
            backend,
        );
        assert_eq!(value(per_class[2].value()), 1.0, "{backend}");
        close(
            value(macro_dice.value()),
            (1.0 + (24.0 / 25.0 + 6.0 / 7.0) / 2.0) / 2.0,
            backend,
        );
        assert!(macro_dice.name().contains("ignore_index 255"));

        // Without ignore_index, 255 is a target outside 0..3: the metric refuses the batch.
        let mut strict = MulticlassSegmentationMetric::dice();
        let refused = catch_unwind(AssertUnwindSafe(|| {
            let _ = strict.update(&input, &metadata());
        }));
        assert!(
            refused.is_err(),
            "{backend}: 255 accepted without ignore_index"
        );
    }
}

#[test]
fn epoch_values_weigh_every_image_and_clear_resets() {
    let device = f64_device();
    let mut dice = MulticlassSegmentationMetric::dice();
    let mut dice_1 = MulticlassSegmentationMetric::dice().with_class(1);
    // Batch 1: image A; batch 2: images B and A. The epoch is the mean over the three images,
    // not the mean of the two batch means.
    let (_, first) = step_output(&[A_PRED], &[A_TARGET], &device);
    let (_, second) = step_output(&[B_PRED, A_PRED], &[B_TARGET, A_TARGET], &device);
    let macro_a = (7.0 / 8.0 + 8.0 / 9.0 + 6.0 / 7.0) / 3.0;
    let macro_b = (24.0 / 25.0 + 6.0 / 7.0) / 2.0;
    for input in [&first, &second] {
        dice.update(input, &metadata()).unwrap();
        dice_1.update(input, &metadata()).unwrap();
    }
    close(value(dice.value()), (macro_b + macro_a) / 2.0, "batch 2");
    let epoch = (2.0 * macro_a + macro_b) / 3.0;
    assert_ne!(epoch, (macro_a + (macro_a + macro_b) / 2.0) / 2.0);
    close(value(dice.running_value()), epoch, "epoch");
    assert_eq!(count(dice.running_value()), 3);
    close(
        value(dice_1.running_value()),
        (2.0 * 8.0 / 9.0 + 6.0 / 7.0) / 3.0,
        "epoch, class 1",
    );
    let final_entry = dice.compute().unwrap();
    assert!(
        final_entry.formatted.contains(&format!("epoch {epoch:.4}")),
        "{}",
        final_entry.formatted
    );
    assert!(matches!(dice.final_value(), NumericEntry::Final(v) if (v - epoch).abs() < 1e-12));
    dice.clear();
    assert_eq!(count(dice.running_value()), 0);
    assert_eq!(value(dice.running_value()), 1.0);
    dice.update(&first, &metadata()).unwrap();
    close(value(dice.running_value()), macro_a, "after clear");
}

#[test]
fn names_are_distinct_and_say_what_changes_the_score() {
    let names: Vec<String> = [
        MulticlassSegmentationMetric::dice(),
        MulticlassSegmentationMetric::dice().with_include_background(false),
        MulticlassSegmentationMetric::dice().with_class(1),
        MulticlassSegmentationMetric::dice().with_class(2),
        MulticlassSegmentationMetric::jaccard(),
        MulticlassSegmentationMetric::dice().with_empty_policy(EmptyPolicy::One),
    ]
    .iter()
    .map(|m| m.name().to_string())
    .chain(
        [
            MulticlassSurfaceMetric::hd95(),
            MulticlassSurfaceMetric::hd95().with_class(1),
            MulticlassSurfaceMetric::nsd(1.0),
            MulticlassSurfaceMetric::nsd(2.0),
        ]
        .iter()
        .map(|m| m.name().to_string()),
    )
    .collect();
    for (i, name) in names.iter().enumerate() {
        assert!(
            !name.contains(['<', '>', ':', '"', '/', '\\', '|', '?', '*']),
            "{name}"
        );
        assert!(!names[..i].contains(name), "{name} twice");
    }
    assert_eq!(names[0], "Dice macro (background included, empty skipped)");
    assert_eq!(names[2], "Dice class 1 (empty skipped)");
    assert_eq!(names[6], "HD95 macro (MaxOfDirected, background excluded)");
    assert!(names[8].starts_with("NSD macro (tolerance 1"));
}

// Surface case (6x8 images, spacing 1):
//
// image C: class 1 is a 2x2 square, predicted 2 columns to the right: every border voxel of
// either square is 1 (its near column) or 2 (its far column) from the other, so
// d_pt = d_tp = [1, 1, 2, 2]: HD95 = P95 = 2 (h = 2.85, between two 2s), NSD at 1 = 4/8.
// Class 2 is a 1x3 bar predicted exactly: HD95 0, NSD 1.
// image D: class 1 only in the target (predicted as background): one empty mask, HD95 = the
// image diagonal sqrt(5^2 + 7^2) = sqrt(74), NSD 0; class 2 in neither map: skipped.
const C_TARGET: &[&[i64]] = &[
    &[0, 0, 0, 0, 0, 0, 0, 0],
    &[0, 1, 1, 0, 0, 0, 0, 0],
    &[0, 1, 1, 0, 0, 0, 0, 0],
    &[0, 0, 0, 0, 0, 0, 0, 0],
    &[0, 0, 0, 0, 0, 2, 2, 2],
    &[0, 0, 0, 0, 0, 0, 0, 0],
];
const C_PRED: &[&[i64]] = &[
    &[0, 0, 0, 0, 0, 0, 0, 0],
    &[0, 0, 0, 1, 1, 0, 0, 0],
    &[0, 0, 0, 1, 1, 0, 0, 0],
    &[0, 0, 0, 0, 0, 0, 0, 0],
    &[0, 0, 0, 0, 0, 2, 2, 2],
    &[0, 0, 0, 0, 0, 0, 0, 0],
];
const D_TARGET: &[&[i64]] = &[
    &[0, 0, 0, 0, 0, 0, 0, 0],
    &[0, 0, 0, 0, 0, 0, 0, 0],
    &[0, 0, 1, 1, 1, 0, 0, 0],
    &[0, 0, 1, 1, 1, 0, 0, 0],
    &[0, 0, 0, 0, 0, 0, 0, 0],
    &[0, 0, 0, 0, 0, 0, 0, 0],
];
const D_PRED: &[&[i64]] = &[&[0; 8], &[0; 8], &[0; 8], &[0; 8], &[0; 8], &[0; 8]];

#[test]
fn hd95_and_nsd_per_class_and_macro_match_the_hand_distances_and_class_surface_distances() {
    let device = f64_device();
    let (_, input) = step_output(&[C_PRED, D_PRED], &[C_TARGET, D_TARGET], &device);
    let run = |mut metric: MulticlassSurfaceMetric| {
        metric.update(&input, &metadata()).unwrap();
        (value(metric.value()), count(metric.value()))
    };
    let diagonal = 74f64.sqrt();
    // Per class.
    close(
        run(MulticlassSurfaceMetric::hd95().with_class(1)).0,
        (2.0 + diagonal) / 2.0,
        "HD95 class 1",
    );
    assert_eq!(run(MulticlassSurfaceMetric::hd95().with_class(2)), (0.0, 1));
    close(
        run(MulticlassSurfaceMetric::nsd(1.0).with_class(1)).0,
        0.25,
        "NSD class 1",
    );
    assert_eq!(
        run(MulticlassSurfaceMetric::nsd(1.0).with_class(2)),
        (1.0, 1)
    );
    // Macro, background excluded (the default, MONAI's HausdorffDistanceMetric): image C
    // averages classes 1 and 2, image D has class 1 alone.
    let (hd_macro, images) = run(MulticlassSurfaceMetric::hd95());
    close(hd_macro, ((2.0 + 0.0) / 2.0 + diagonal) / 2.0, "macro HD95");
    assert_eq!(images, 2);
    close(
        run(MulticlassSurfaceMetric::nsd(1.0)).0,
        ((0.5 + 1.0) / 2.0 + 0.0) / 2.0,
        "macro NSD",
    );

    // The same as ClassSurfaceDistances of the same maps with the same options, computed
    // directly; the background only counts when asked for.
    let config = MulticlassSurfaceMetric::default_config();
    assert_eq!(config.one_empty, OneEmpty::Diagonal);
    assert_eq!(config.both_empty, BothEmpty::Nan);
    let distances = ClassSurfaceDistances::from_indices(
        class_map(&[C_PRED, D_PRED], &device),
        class_map(&[C_TARGET, D_TARGET], &device),
        CLASSES,
        None,
        &config,
    )
    .unwrap();
    let hd = distances.hausdorff(95.0, HausdorffMode::MaxOfDirected);
    let nsd = distances.nsd(1.0);
    assert_eq!(hd[0][1..], [2.0, 0.0]);
    assert_eq!(hd[1][1], diagonal);
    assert!(hd[1][2].is_nan());
    let nan_mean = |v: &[f64]| segloss::metrics::mean_over_images(v, true);
    let with_background = |table: &[Vec<f64>]| {
        nan_mean(
            &table
                .iter()
                .map(|image| nan_mean(image))
                .collect::<Vec<_>>(),
        )
    };
    close(
        run(MulticlassSurfaceMetric::hd95().with_include_background(true)).0,
        with_background(&hd),
        "macro HD95 with background",
    );
    close(
        run(MulticlassSurfaceMetric::nsd(1.0).with_include_background(true)).0,
        with_background(&nsd),
        "macro NSD with background",
    );
    assert_ne!(with_background(&hd), hd_macro);

    // MONAI's empty-mask values, asked for: the one-empty class makes the mean infinite.
    let monai = MulticlassSurfaceMetric::hd95()
        .with_class(1)
        .with_config(SurfaceConfig::new());
    assert_eq!(run(monai).0, f64::INFINITY);
}

#[test]
fn surface_metrics_take_3d_class_maps_and_ignore_index() {
    let device = f64_device();
    // [1, 1, 3, 4, 5]: class 1 a 2x2x2 cube, predicted one slice deeper; class 2 predicted
    // at one voxel alone, whose target is 255.
    let shape = [1, 1, 3, 4, 5];
    let mut target = vec![0i64; 60];
    let mut pred = vec![0i64; 60];
    let at = |z: usize, y: usize, x: usize| z * 20 + y * 5 + x;
    for (z, y, x) in voxels(0..2, 1..3, 1..3) {
        target[at(z, y, x)] = 1;
        pred[at(z + 1, y, x)] = 1;
    }
    target[at(2, 3, 4)] = 255;
    pred[at(2, 3, 4)] = 2;
    let map = |v: &[i64]| Tensor::<5, Int>::from_data(TensorData::new(v.to_vec(), shape), &device);
    let logits = {
        let mut values = Vec::new();
        for c in 0..CLASSES as i64 {
            values.extend(pred.iter().map(|&p| if p == c { 1.0 } else { 0.0 }));
        }
        Tensor::<5>::from_data(TensorData::new(values, [1, CLASSES, 3, 4, 5]), &device)
    };
    let output = MulticlassSegmentationOutput::new(logits.clone().sum(), logits, map(&target));
    assert_eq!(output.image_shape, vec![1, 3, 4, 5]);
    let input: MulticlassMetricInput = output.adapt();
    let config = MulticlassSurfaceMetric::default_config();
    let direct =
        ClassSurfaceDistances::from_indices(map(&pred), map(&target), CLASSES, Some(255), &config)
            .unwrap();
    let mut hd_1 = MulticlassSurfaceMetric::hd95()
        .with_class(1)
        .with_ignore_index(Some(255));
    hd_1.update(&input, &metadata()).unwrap();
    // Every voxel of both cubes is on its border; the cubes share their middle slice (distance
    // 0) and each has one slice 1 away from the other: HD95 = P95 of four 0s and four 1s = 1.
    assert_eq!(value(hd_1.value()), 1.0);
    assert_eq!(
        direct.hausdorff(95.0, HausdorffMode::MaxOfDirected)[0][1],
        1.0
    );
    // Class 2 is predicted only at the ignored voxel: left out, so class 2 is in neither map
    // and skipped, and the macro mean is class 1's value.
    let mut hd_macro = MulticlassSurfaceMetric::hd95().with_ignore_index(Some(255));
    hd_macro.update(&input, &metadata()).unwrap();
    assert_eq!((value(hd_macro.value()), count(hd_macro.value())), (1.0, 1));
    assert!(direct.hausdorff(95.0, HausdorffMode::MaxOfDirected)[0][2].is_nan());
}

fn voxels(
    z: std::ops::Range<usize>,
    y: std::ops::Range<usize>,
    x: std::ops::Range<usize>,
) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    for a in z {
        for b in y.clone() {
            for c in x.clone() {
                out.push((a, b, c));
            }
        }
    }
    out
}

#[test]
fn inputs_the_metrics_cannot_score_panic_with_the_error() {
    let device = f64_device();
    let (_, input) = step_output(&[A_PRED], &[A_TARGET], &device);
    let message = |f: &mut dyn FnMut()| -> String {
        let err = catch_unwind(AssertUnwindSafe(f)).expect_err("no panic");
        err.downcast_ref::<String>().cloned().unwrap_or_default()
    };
    let mut out_of_range = MulticlassSegmentationMetric::dice().with_class(3);
    let text = message(&mut || {
        let _ = out_of_range.update(&input, &metadata());
    });
    assert!(text.contains("class") && text.contains('3'), "{text}");
    let mut bad_percentile =
        MulticlassSurfaceMetric::new(segloss::metrics::train::SurfaceScore::Hausdorff {
            percentile: 150.0,
            mode: HausdorffMode::Pooled,
        });
    let text = message(&mut || {
        let _ = bad_percentile.update(&input, &metadata());
    });
    assert!(text.contains("percentile"), "{text}");
    // One class, background excluded: nothing to average.
    let one_class = MulticlassMetricInput::new(
        class_map(&[A_PRED], &device).zeros_like(),
        class_map(&[A_TARGET], &device).zeros_like(),
        1,
    );
    let mut no_class = MulticlassSurfaceMetric::nsd(1.0);
    let text = message(&mut || {
        let _ = no_class.update(&one_class, &metadata());
    });
    assert!(text.contains("include_background"), "{text}");
    // Maps of different grids with as many pixels.
    let transposed = MulticlassMetricInput::new(
        class_map(&[A_PRED], &device).reshape([1, 1, 2, 8]),
        class_map(&[A_TARGET], &device).reshape([1, 1, 8, 2]),
        CLASSES,
    );
    let mut dice = MulticlassSegmentationMetric::dice();
    let text = message(&mut || {
        let _ = dice.update(&transposed, &metadata());
    });
    assert!(text.contains("shape mismatch"), "{text}");
}
