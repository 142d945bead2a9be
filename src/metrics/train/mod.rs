//! burn-train integration (feature `train`): Dice, Jaccard and Hamming ([`SegmentationMetric`])
//! and the surface metrics HD95 and NSD ([`SurfaceMetric`]) as burn-train [`Metric`]s that a
//! `Learner` displays, fed by [`SegmentationOutput`], the batch output of a binary
//! segmentation step; for multiclass steps, per-class and macro Dice, Jaccard (IoU), HD95 and
//! NSD ([`MulticlassSegmentationMetric`], [`MulticlassSurfaceMetric`]), fed by
//! [`MulticlassSegmentationOutput`] (logits `[N, C, ...]` and class-index targets
//! `[N, 1, ...]`, predictions by argmax).
//!
//! burn-train ships a `DiceMetric` already; these add what it lacks: the Jaccard index and
//! the Hamming similarity, per-image aggregation (the mean over images of per-image scores,
//! as in the paper and MONAI) besides the micro (batch) ratio, an explicit
//! [`EmptyPolicy`] instead of an epsilon, and exact integer counts. The epoch value is exact
//! too: per-image means are weighted by the number of scored images, and micro scores are
//! ratios of counts summed over the epoch (not a mean of batch ratios).
//!
//! ```ignore
//! // In a TrainStep / InferenceStep:
//! let loss = soft_dice(logits.clone(), targets.clone(), &SoftDiceConfig::new())?;
//! let output = SegmentationOutput::new(loss, logits, targets);
//! // When building the learner:
//! learner.metric_valid_numeric(SegmentationMetric::dice())
//!        .metric_valid_numeric(SegmentationMetric::jaccard())
//!        .metric_valid_numeric(SurfaceMetric::hd95())
//!        .metric_valid_numeric(SurfaceMetric::nsd(1.0));
//! ```
//!
//! Multiclass, with class-index targets `[N, 1, ...]` (as the multiclass losses take them):
//!
//! ```ignore
//! let loss = self.loss.forward(logits.clone(), labels.clone());
//! let output = MulticlassSegmentationOutput::new(loss, logits, labels);
//! learner.metric_valid_numeric(MulticlassSegmentationMetric::dice())             // macro
//!        .metric_valid_numeric(MulticlassSegmentationMetric::dice().with_class(1)) // class 1
//!        .metric_valid_numeric(MulticlassSegmentationMetric::jaccard())
//!        .metric_valid_numeric(MulticlassSurfaceMetric::hd95())
//!        .metric_valid_numeric(MulticlassSurfaceMetric::nsd(1.0));
//! ```
//!
//! A class absent from both maps of an image is skipped by the multiclass metrics (MONAI's
//! NaN and `nanmean`), a class in one map alone gets a finite worst case from the surface
//! metrics (the image diagonal), and a batch or epoch with nothing left to score shows the
//! perfect value: the multiclass metrics never show NaN (see each type for the details).

use std::sync::Arc;

use burn::tensor::{ExecutionError, Tensor, TensorReadError};
use burn::train::metric::{
    Adaptor, ItemLazy, LossInput, Metric, MetricAttributes, MetricMetadata, MetricName, Numeric,
    NumericAttributes, NumericEntry, SerializedEntry,
};

mod multiclass;
mod multiclass_output;
mod multiclass_surface;
mod surface;

pub use multiclass::MulticlassSegmentationMetric;
pub use multiclass_output::{MulticlassMetricInput, MulticlassSegmentationOutput};
pub use multiclass_surface::MulticlassSurfaceMetric;
pub use surface::{SurfaceMetric, SurfaceMetricInput, SurfaceScore};

use super::{Confusion, DEFAULT_LOGIT_THRESHOLD, mean_over_images};
use crate::options::{Aggregation, EmptyPolicy};
use crate::tensors::rows;

/// The output of a binary segmentation step: the loss, the logits and the targets, flattened
/// to `[N, P]` (one row per image), so one metric type serves every image rank, and the shape
/// of one image (for the surface metrics, which need the grid back).
#[derive(Debug, Clone)]
pub struct SegmentationOutput {
    /// The loss of the batch (`[1]`).
    pub loss: Tensor<1>,
    /// Logits `[N, P]`.
    pub logits: Tensor<2>,
    /// Hard targets (0/1) `[N, P]`.
    pub targets: Tensor<2>,
    /// The shape of one image: the logits' shape without `N` (`[1, H, W]`, `[H, W]`,
    /// `[1, D, H, W]`, ...).
    pub image_shape: Vec<usize>,
}

impl SegmentationOutput {
    /// Builds the output from a step's loss, logits `[N, ...]` and float targets of the same
    /// shape.
    pub fn new<const D: usize>(loss: Tensor<1>, logits: Tensor<D>, targets: Tensor<D>) -> Self {
        Self {
            loss,
            image_shape: logits.dims()[1..].to_vec(),
            logits: rows(logits),
            targets: rows(targets),
        }
    }
}

impl ItemLazy for SegmentationOutput {
    fn sync(self) -> Result<Self, ExecutionError> {
        // As burn's ClassificationOutput: no readback here, only a flush, and the tensors
        // leave the autodiff graph so the metric thread keeps no tape alive.
        self.loss.device().flush()?;
        Ok(Self {
            loss: self.loss.without_autodiff(),
            logits: self.logits.without_autodiff(),
            targets: self.targets.without_autodiff(),
            image_shape: self.image_shape,
        })
    }
}

impl Adaptor<LossInput> for SegmentationOutput {
    fn adapt(&self) -> LossInput {
        LossInput::new(self.loss.clone())
    }
}

/// The input of [`SegmentationMetric`]: logits and hard targets, `[N, P]`.
#[derive(Debug, Clone)]
pub struct SegmentationMetricInput {
    logits: Tensor<2>,
    targets: Tensor<2>,
}

impl SegmentationMetricInput {
    /// Logits and hard targets of the same shape `[N, P]`.
    pub fn new(logits: Tensor<2>, targets: Tensor<2>) -> Self {
        Self { logits, targets }
    }
}

impl Adaptor<SegmentationMetricInput> for SegmentationOutput {
    fn adapt(&self) -> SegmentationMetricInput {
        SegmentationMetricInput::new(self.logits.clone(), self.targets.clone())
    }
}

/// Which score a [`SegmentationMetric`] or a [`MulticlassSegmentationMetric`] reports (per
/// class, for the latter: class `c` against the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Score {
    /// `2TP / (2TP + FP + FN)`.
    Dice,
    /// `TP / (TP + FP + FN)`.
    Jaccard,
    /// `1 - (FP + FN) / d`.
    Hamming,
}

impl Score {
    fn per_image(self, c: &Confusion, empty: EmptyPolicy) -> Vec<f64> {
        match self {
            Score::Dice => c.dice(empty),
            Score::Jaccard => c.jaccard(empty),
            Score::Hamming => c.hamming(),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Score::Dice => "Dice",
            Score::Jaccard => "Jaccard",
            Score::Hamming => "Hamming",
        }
    }
}

/// A hard Dice, Jaccard or Hamming score as a burn-train numeric metric.
///
/// Each batch is thresholded (`logits > threshold`, default 0), counted exactly per image
/// ([`Confusion::from_logits`]) and scored; the epoch value is the mean over all images
/// ([`Aggregation::PerImage`], default, NaN images skipped) or the ratio of the epoch's summed
/// counts ([`Aggregation::Batch`]).
///
/// # Panics
/// `update` panics, with [`SegLossError`](crate::SegLossError)'s message, on input that cannot
/// be scored (mismatched shapes, targets other than 0/1): burn-train's `Metric::update` can
/// only report failed tensor reads, and a wrong score must not be logged silently.
#[derive(Debug, Clone)]
pub struct SegmentationMetric {
    score: Score,
    threshold: f64,
    aggregation: Aggregation,
    empty: EmptyPolicy,
    name: MetricName,
    /// Batch value and the number of images it averages.
    current: (f64, usize),
    /// Per-image aggregation: sum of the scores of the epoch.
    sum: f64,
    /// Images of the epoch that were scored (NaN-scored images excluded).
    count: usize,
    /// Batch aggregation: the epoch's counts, summed into one entry.
    totals: Confusion,
}

impl SegmentationMetric {
    /// A metric reporting `score`, with threshold 0 on logits, per-image aggregation and
    /// [`EmptyPolicy::One`].
    pub fn new(score: Score) -> Self {
        let mut metric = Self {
            score,
            threshold: DEFAULT_LOGIT_THRESHOLD,
            aggregation: Aggregation::PerImage,
            empty: EmptyPolicy::One,
            name: Arc::new(String::new()),
            current: (f64::NAN, 0),
            sum: 0.0,
            count: 0,
            totals: Confusion::default(),
        };
        metric.rename();
        metric
    }

    /// Hard Dice score.
    pub fn dice() -> Self {
        Self::new(Score::Dice)
    }

    /// Hard Jaccard index.
    pub fn jaccard() -> Self {
        Self::new(Score::Jaccard)
    }

    /// Hamming similarity (pixel accuracy).
    pub fn hamming() -> Self {
        Self::new(Score::Hamming)
    }

    /// Threshold on the logits (default 0).
    pub fn with_threshold(mut self, threshold: f64) -> Self {
        self.threshold = threshold;
        self.rename();
        self
    }

    /// Per-image mean (default) or micro ratio over the epoch.
    pub fn with_aggregation(mut self, aggregation: Aggregation) -> Self {
        self.aggregation = aggregation;
        self.rename();
        self
    }

    /// The value of a `0/0` score (default [`EmptyPolicy::One`]; `Nan` skips the image).
    pub fn with_empty_policy(mut self, empty: EmptyPolicy) -> Self {
        self.empty = empty;
        self.rename();
        self
    }

    fn rename(&mut self) {
        let aggregation = match self.aggregation {
            Aggregation::PerImage => "per image",
            Aggregation::Batch => "micro",
        };
        // burn-train names its metric log files after the metric: no character a file system
        // rejects (such as `>` on Windows), and only the options that change the score
        // (Hamming has no 0/0, so no empty policy).
        let empty = match self.score {
            Score::Hamming => String::new(),
            _ => format!(", empty {:?}", self.empty),
        };
        self.name = Arc::new(format!(
            "{} ({aggregation}{empty}, logit threshold {})",
            self.score.label(),
            self.threshold
        ));
    }

    fn epoch_value(&self) -> f64 {
        match self.aggregation {
            Aggregation::PerImage => self.sum / self.count as f64,
            Aggregation::Batch => self.score.per_image(&self.totals.micro(), self.empty)[0],
        }
    }

    fn entry(&self, final_entry: bool) -> SerializedEntry {
        serialized_entry(self.current, self.epoch_value(), final_entry)
    }
}

/// The entry burn-train logs for a metric: the batch's value (with the images it averages)
/// after a batch, the epoch's value at the end of the epoch (`final_entry`), both shown.
fn serialized_entry(batch: (f64, usize), epoch: f64, final_entry: bool) -> SerializedEntry {
    let (value, count) = batch;
    let serialized = if final_entry {
        NumericEntry::Final(epoch)
    } else {
        aggregated((value, count))
    };
    SerializedEntry::new(
        format!("epoch {epoch:.4} - batch {value:.4}"),
        serialized.serialize(),
    )
}

/// A value averaged over `count` images, as burn-train's `Numeric` reports it.
fn aggregated((value, count): (f64, usize)) -> NumericEntry {
    NumericEntry::Aggregated {
        aggregated_value: value,
        count,
    }
}

impl Metric for SegmentationMetric {
    type Input = SegmentationMetricInput;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn description(&self) -> Option<String> {
        Some(format!(
            "hard {} score from segloss (exact counts, explicit empty policy)",
            self.score.label()
        ))
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: None,
            higher_is_better: true,
        }
        .into()
    }

    fn update(
        &mut self,
        item: &Self::Input,
        _metadata: &MetricMetadata,
    ) -> Result<SerializedEntry, TensorReadError> {
        // burn-train's error type only covers failed reads; inputs that cannot be scored
        // (mismatched shapes, non-binary targets) are a bug in the training step, so they
        // panic with our error message rather than being dropped silently.
        let counts =
            Confusion::from_logits(item.logits.clone(), item.targets.clone(), self.threshold)
                .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        match self.aggregation {
            Aggregation::PerImage => {
                let scores = self.score.per_image(&counts, self.empty);
                let kept: Vec<f64> = scores.into_iter().filter(|s| !s.is_nan()).collect();
                self.sum += kept.iter().sum::<f64>();
                self.count += kept.len();
                self.current = (mean_over_images(&kept, true), kept.len());
            }
            Aggregation::Batch => {
                self.current = (
                    self.score.per_image(&counts.micro(), self.empty)[0],
                    counts.len(),
                );
                self.count += counts.len();
                self.totals.extend(&counts);
                self.totals = self.totals.micro();
            }
        }
        Ok(self.entry(false))
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        Ok(self.entry(true))
    }

    fn clear(&mut self) {
        self.current = (f64::NAN, 0);
        self.sum = 0.0;
        self.count = 0;
        self.totals = Confusion::default();
    }
}

impl Numeric for SegmentationMetric {
    fn value(&self) -> Option<NumericEntry> {
        Some(aggregated(self.current))
    }

    fn running_value(&self) -> Option<NumericEntry> {
        Some(aggregated((self.epoch_value(), self.count)))
    }

    fn final_value(&self) -> NumericEntry {
        NumericEntry::Final(self.epoch_value())
    }
}
