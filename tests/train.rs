//! burn-train integration: the metrics driven through burn-train's `Metric`, `Numeric`,
//! `Adaptor` and `ItemLazy` API, as a `Learner` would.
#![cfg(feature = "train")]

mod common;

use burn::data::dataloader::Progress;
use burn::tensor::DType;
use burn::train::metric::{
    Adaptor, ItemLazy, LossInput, Metric, MetricMetadata, Numeric, NumericEntry,
};
use common::*;
use segloss::metrics::Confusion;
use segloss::metrics::train::{SegmentationMetric, SegmentationMetricInput, SegmentationOutput};
use segloss::{Aggregation, EmptyPolicy};

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
    match entry.unwrap() {
        NumericEntry::Aggregated {
            aggregated_value, ..
        } => aggregated_value,
        NumericEntry::Value(v) | NumericEntry::Final(v) => v,
    }
}

#[test]
fn metrics_follow_burn_train_conventions() {
    let device = f64_device().autodiff();
    // Two batches of [2, 1, 2, 3] images.
    let batches = [
        (
            vec![
                3.0, -1.0, 2.0, -2.0, -3.0, 1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0,
            ],
            vec![1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        ),
        (
            vec![
                1.0, 1.0, 1.0, -1.0, -1.0, -1.0, 2.0, -2.0, 2.0, -2.0, 2.0, -2.0,
            ],
            vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0],
        ),
    ];
    let shape = [2, 1, 2, 3];
    let mut dice = SegmentationMetric::dice();
    let mut jaccard_micro = SegmentationMetric::jaccard().with_aggregation(Aggregation::Batch);
    let mut dice_nan = SegmentationMetric::dice().with_empty_policy(EmptyPolicy::Nan);
    let mut all = Confusion::default();
    for (x, y) in &batches {
        let logits = tensor(x, shape, &device, DType::F32).require_grad();
        let targets = tensor(y, shape, &device, DType::F32);
        all.extend(&Confusion::from_logits(logits.clone(), targets.clone(), 0.0).unwrap());
        let loss = logits.clone().mean();
        // What a TrainStep returns, synced as the learner does before updating metrics.
        let output = SegmentationOutput::new(loss, logits, targets)
            .sync()
            .unwrap();
        let _loss: LossInput = output.adapt();
        let input: SegmentationMetricInput = output.adapt();
        let entry = dice.update(&input, &metadata()).unwrap();
        assert!(entry.formatted.contains("epoch"), "{}", entry.formatted);
        jaccard_micro.update(&input, &metadata()).unwrap();
        dice_nan.update(&input, &metadata()).unwrap();
    }
    // Epoch values equal the crate's own functions on all images.
    let per_image = mean_over(&all.dice(EmptyPolicy::One));
    assert!((value(dice.running_value()) - per_image).abs() < 1e-12);
    let micro = all.micro().jaccard(EmptyPolicy::One)[0];
    assert!((value(jaccard_micro.running_value()) - micro).abs() < 1e-12);
    // Image 1 of batch 0 has empty prediction and target: One counts it as 1, Nan skips it.
    let skipped = segloss::metrics::mean_over_images(&all.dice(EmptyPolicy::Nan), true);
    assert!((value(dice_nan.running_value()) - skipped).abs() < 1e-12);
    assert!(skipped < per_image);
    // compute() gives the final entry; clear() resets.
    let final_entry = dice.compute().unwrap();
    assert!(
        final_entry
            .formatted
            .contains(&format!("epoch {per_image:.4}")),
        "{}",
        final_entry.formatted
    );
    assert!(matches!(dice.final_value(), NumericEntry::Final(v) if (v - per_image).abs() < 1e-12));
    dice.clear();
    assert!(value(dice.running_value()).is_nan());
    assert!(dice.name().contains("Dice"));
}

fn mean_over(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}
