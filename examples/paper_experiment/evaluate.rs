//! Test-set evaluation with the crate's hard metrics, and the paired bootstrap test.

use burn::tensor::Device;
use segloss::metrics::surface::{HausdorffMode, OneEmpty, SurfaceConfig, SurfaceDistances};
use segloss::metrics::{Confusion, DEFAULT_LOGIT_THRESHOLD, threshold_logits};
use segloss::{EmptyPolicy, SegLossError};

use crate::data::{Rng, Sample};
use crate::model::UNet;
use crate::train::batch;

/// The tolerance of the normalized surface Dice, in pixels.
pub const NSD_TOLERANCE: f64 = 1.0;

/// Per-image hard Dice and Jaccard, HD95 (MONAI's, in pixels) and NSD at [`NSD_TOLERANCE`] of a
/// model on a data set (logits > 0).
pub struct Scores {
    pub dice: Vec<f64>,
    pub jaccard: Vec<f64>,
    pub hd95: Vec<f64>,
    pub nsd: Vec<f64>,
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
    let (mut hd95, mut nsd) = (Vec::new(), Vec::new());
    // Every image has an object; a network that predicts nothing gets the image diagonal as
    // its distance (MONAI's +inf would make every mean infinite) and NSD 0.
    let surface = SurfaceConfig::new().with_one_empty(OneEmpty::Diagonal);
    for chunk in indices.chunks(batch_size) {
        let (x, y) = batch(set, chunk, size, device);
        let logits = model.forward(x).detach();
        let d = SurfaceDistances::from_masks(
            threshold_logits(logits.clone(), DEFAULT_LOGIT_THRESHOLD),
            y.clone().greater_elem(0.5),
            &surface,
        )?;
        hd95.extend(d.hausdorff(95.0, HausdorffMode::MaxOfDirected));
        nsd.extend(d.nsd(NSD_TOLERANCE));
        let c = Confusion::from_logits(logits, y, DEFAULT_LOGIT_THRESHOLD)?;
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
        hd95,
        nsd,
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
