//! Test-set evaluation with the crate's hard metrics, and the paired bootstrap test.

use burn::tensor::Device;
use segloss::metrics::{Confusion, DEFAULT_LOGIT_THRESHOLD};
use segloss::{EmptyPolicy, SegLossError};

use crate::data::{Rng, Sample};
use crate::model::UNet;
use crate::train::batch;

/// Per-image hard Dice and Jaccard of a model on a data set (logits > 0).
pub struct Scores {
    pub dice: Vec<f64>,
    pub jaccard: Vec<f64>,
}

pub fn score(
    model: &UNet,
    set: &[Sample],
    size: usize,
    batch_size: usize,
    device: &Device,
) -> Result<Scores, SegLossError> {
    let indices: Vec<usize> = (0..set.len()).collect();
    let mut counts: Option<Confusion> = None;
    for chunk in indices.chunks(batch_size) {
        let (x, y) = batch(set, chunk, size, device);
        let c = Confusion::from_logits(model.forward(x).detach(), y, DEFAULT_LOGIT_THRESHOLD)?;
        match counts.as_mut() {
            Some(all) => all.extend(&c),
            None => counts = Some(c),
        }
    }
    let counts = counts.expect("a non-empty test set");
    // Every generated image has an object, so no score is 0/0; One is the convention anyway.
    Ok(Scores {
        dice: counts.dice(EmptyPolicy::One),
        jaccard: counts.jaccard(EmptyPolicy::One),
    })
}

pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

pub fn std_dev(values: &[f64]) -> f64 {
    let m = mean(values);
    (values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (values.len() as f64 - 1.0).max(1.0))
        .sqrt()
}

/// Two-sided paired bootstrap p-value for "mean(a - b) = 0": the per-image differences are
/// resampled with replacement `resamples` times; p = 2 min(P(mean* <= 0), P(mean* >= 0)).
pub fn paired_bootstrap(a: &[f64], b: &[f64], resamples: usize, rng: &mut Rng) -> f64 {
    let diff: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let n = diff.len();
    let (mut below, mut above) = (0usize, 0usize);
    for _ in 0..resamples {
        let total: f64 = (0..n)
            .map(|_| diff[(rng.next_u64() % n as u64) as usize])
            .sum();
        if total <= 0.0 {
            below += 1;
        }
        if total >= 0.0 {
            above += 1;
        }
    }
    (2.0 * below.min(above) as f64 / resamples as f64).min(1.0)
}
