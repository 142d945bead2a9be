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

#[test]
fn surface_metrics_average_the_per_image_values_over_the_epoch() {
    use burn::tensor::{Bool, Tensor, TensorData};
    use segloss::metrics::surface::{HausdorffMode, OneEmpty, SurfaceConfig, SurfaceDistances};
    use segloss::metrics::train::{SurfaceMetric, SurfaceMetricInput};

    let device = f64_device();
    let mut rng = TestRng::new(21);
    let shape = [3, 1, 9, 11];
    let len = shape.iter().product();
    let config = SurfaceConfig::new()
        .with_spacing(Some(vec![1.5, 0.5]))
        .with_one_empty(OneEmpty::Diagonal);
    let mut hd95 = SurfaceMetric::hd95().with_config(config.clone());
    let mut nsd = SurfaceMetric::nsd(1.0).with_config(config.clone());
    let (mut hd_values, mut nsd_values) = (Vec::new(), Vec::new());
    for batch in 0..2 {
        let (x, mut y) = rng.logits_and_mask(len, 3.0, 0.4);
        if batch == 1 {
            // Image 0: empty target (one empty mask, diagonal); image 1: both empty (NaN,
            // skipped) when its logits are negative too.
            y[..99].fill(0.0);
            y[99..198].fill(0.0);
        }
        let mut x = x;
        if batch == 1 {
            x[99..198].iter_mut().for_each(|v| *v = -1.0);
        }
        let logits = tensor(&x, shape, &device, DType::F64);
        let targets = tensor(&y, shape, &device, DType::F64);
        let mask = |v: &[f64], pred: bool| {
            let m: Vec<bool> = v
                .iter()
                .map(|&v| if pred { v > 0.0 } else { v > 0.5 })
                .collect();
            Tensor::<4, Bool>::from_data(TensorData::new(m, shape), &device)
        };
        let d = SurfaceDistances::from_masks(mask(&x, true), mask(&y, false), &config).unwrap();
        hd_values.extend(d.hausdorff(95.0, HausdorffMode::MaxOfDirected));
        nsd_values.extend(d.nsd(1.0));
        let output = SegmentationOutput::new(logits.clone().mean(), logits, targets);
        let input: SurfaceMetricInput = output.adapt();
        hd95.update(&input, &metadata()).unwrap();
        nsd.update(&input, &metadata()).unwrap();
    }
    let nan_mean = |v: &[f64]| {
        let kept: Vec<f64> = v.iter().copied().filter(|v| !v.is_nan()).collect();
        kept.iter().sum::<f64>() / kept.len() as f64
    };
    assert!(
        hd_values[3].is_finite() && hd_values[4].is_nan(),
        "{hd_values:?}"
    );
    assert!((value(hd95.running_value()) - nan_mean(&hd_values)).abs() < 1e-12);
    assert!((value(nsd.running_value()) - nan_mean(&nsd_values)).abs() < 1e-12);
    assert!(hd95.name().contains("HD95") && nsd.name().contains("NSD"));
    nsd.clear();
    assert!(value(nsd.running_value()).is_nan());
}
