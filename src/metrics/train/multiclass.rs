//! Multiclass Dice, Jaccard (IoU) and Hamming as burn-train metrics, per class or macro
//! ([`MulticlassSegmentationMetric`]), and the epoch mean the multiclass metrics share.

use std::ops::Range;
use std::sync::Arc;

use burn::tensor::TensorReadError;
use burn::train::metric::{
    Metric, MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes, NumericEntry,
    SerializedEntry,
};

use super::{MulticlassMetricInput, Score, aggregated, serialized_entry};
use crate::error::SegLossError;
use crate::metrics::{ClassConfusion, mean_over_images};
use crate::options::EmptyPolicy;

/// A hard multiclass Dice, Jaccard (IoU) or Hamming score as a burn-train numeric metric: the
/// score of one class, or the macro average over the classes.
///
/// Each batch's predicted class map (the argmax of the logits) is counted exactly against the
/// targets per image and class ([`ClassConfusion::from_indices`], one-vs-rest: class `c`
/// against every other class), and scored per image:
///
/// - **one class** ([`with_class`](Self::with_class)`(c)`): `Dice[n][c] = 2TP / (2TP + FP + FN)`,
///   `Jaccard[n][c] = TP / (TP + FP + FN)`, `Hamming[n][c] = 1 - (FP + FN) / d` of class `c`
///   in image `n` ([`ClassConfusion::dice`], [`ClassConfusion::jaccard`]);
/// - **macro** (the default): the mean over the classes counted of those per-class scores, per
///   image ([`ClassConfusion::macro_dice`], [`ClassConfusion::macro_jaccard`]), MONAI's
///   `DiceMetric` / `MeanIoU` with `reduction="mean"`.
///
/// The epoch value is the mean of the per-image values over every image of the epoch (each
/// batch weighted by its images), as MONAI aggregates.
///
/// # Options
///
/// - `include_background` (default `true`, as MONAI's `DiceMetric` and `MeanIoU`): whether
///   class 0 is one of the classes the macro average counts. A per-class metric scores its
///   class whatever this says.
/// - `ignore_index` (default none): target pixels of this index are left out of the counts of
///   every class, in the prediction and the target alike (`d` is the image's other pixels).
/// - **empty classes**: a class absent from both the prediction and the target of an image has
///   no score (`0/0`). The default, [`EmptyPolicy::Nan`], *skips* it: it is left out of that
///   image's macro mean, and that image out of the class's epoch mean (MONAI's NaN and
///   `nanmean`). Skipping is the default because such a class was predicted exactly right
///   (nothing to find, nothing found): counting it as 1 would lift the score by the classes an
///   image does not have, and counting it as 0 would punish a correct answer. A class
///   predicted where the target has none still scores 0 (its false positives count, unlike
///   MONAI's `ignore_empty=True`, which skips every image whose target lacks the class).
///   [`EmptyPolicy::One`] or [`EmptyPolicy::Zero`] count it as 1 or 0 instead.
/// - **nothing scored**: when every value of a batch (or of the epoch) was skipped (the class
///   appears in no image of the batch, in neither map), the metric shows `1` (what
///   [`EmptyPolicy::One`] gives a class absent from both maps), never NaN (MONAI shows 0
///   there).
///
/// Dice and Jaccard of the multiclass path match MONAI's on the same maps wherever the class
/// is in the target (anchored through [`ClassConfusion`], which `tests/class_metrics.rs`
/// checks against torchmetrics' `multiclass_stat_scores`).
///
/// # Panics
/// `update` panics with the [`SegLossError`] message on input it cannot score: mismatched
/// shapes, a prediction or target (other than `ignore_index`) outside `0..C`, a class
/// ([`with_class`](Self::with_class)) not below `C`, or a macro average left with no class
/// (`C = 1` without the background), as [`SegmentationMetric`](super::SegmentationMetric)
/// does.
#[derive(Debug, Clone)]
pub struct MulticlassSegmentationMetric {
    score: Score,
    class: Option<usize>,
    include_background: bool,
    ignore_index: Option<i64>,
    empty: EmptyPolicy,
    name: MetricName,
    epoch: EpochMean,
}

impl MulticlassSegmentationMetric {
    /// The macro average of `score`, background included, empty classes skipped, no
    /// `ignore_index`.
    pub fn new(score: Score) -> Self {
        let mut metric = Self {
            score,
            class: None,
            include_background: true,
            ignore_index: None,
            empty: EmptyPolicy::Nan,
            name: Arc::new(String::new()),
            epoch: EpochMean::new(1.0),
        };
        metric.rename();
        metric
    }

    /// The macro Dice score.
    pub fn dice() -> Self {
        Self::new(Score::Dice)
    }

    /// The macro Jaccard index (IoU).
    pub fn jaccard() -> Self {
        Self::new(Score::Jaccard)
    }

    /// The macro Hamming similarity (the mean over classes of each class's one-vs-rest pixel
    /// accuracy; never `0/0`, so the empty-class options do not apply).
    pub fn hamming() -> Self {
        Self::new(Score::Hamming)
    }

    /// The score of class `class` alone, instead of the macro average (one metric per class
    /// to show: `(1..C).map(|c| MulticlassSegmentationMetric::dice().with_class(c))`).
    pub fn with_class(mut self, class: usize) -> Self {
        self.class = Some(class);
        self.rename();
        self
    }

    /// Whether the macro average counts class 0 (default `true`, MONAI's `DiceMetric`).
    pub fn with_include_background(mut self, include_background: bool) -> Self {
        self.include_background = include_background;
        self.rename();
        self
    }

    /// Target pixels of this index count for no class, in either map (default none).
    pub fn with_ignore_index(mut self, ignore_index: Option<i64>) -> Self {
        self.ignore_index = ignore_index;
        self.rename();
        self
    }

    /// The value of a class absent from both maps of an image (default [`EmptyPolicy::Nan`]:
    /// skipped; see the type's docs).
    pub fn with_empty_policy(mut self, empty: EmptyPolicy) -> Self {
        self.empty = empty;
        self.rename();
        self
    }

    fn rename(&mut self) {
        // Only the options that change the score, and no character a file system rejects
        // (burn-train names its metric files after the metric).
        let mut options = Vec::new();
        if self.class.is_none() {
            options.push(background(self.include_background));
        }
        if self.score != Score::Hamming {
            options.push(empty_label(self.empty));
        }
        if let Some(index) = self.ignore_index {
            options.push(format!("ignore_index {index}"));
        }
        self.name = Arc::new(format!(
            "{} {} ({})",
            self.score.label(),
            selection(self.class),
            options.join(", ")
        ));
    }

    /// The per-image values of a batch (NaN: skipped).
    fn values(&self, confusion: &ClassConfusion, classes: Range<usize>) -> Vec<f64> {
        // [class][image]
        let per_class: Vec<Vec<f64>> = confusion
            .classes()
            .iter()
            .map(|counts| self.score.per_image(counts, self.empty))
            .collect();
        macro_or_class(&per_class, classes)
    }
}

/// `class 2`, or `macro`.
pub(super) fn selection(class: Option<usize>) -> String {
    class.map_or_else(|| "macro".to_string(), |c| format!("class {c}"))
}

pub(super) fn background(include_background: bool) -> String {
    if include_background {
        "background included".into()
    } else {
        "background excluded".into()
    }
}

fn empty_label(empty: EmptyPolicy) -> String {
    match empty {
        EmptyPolicy::Nan => "empty skipped".into(),
        other => format!("empty {other:?}"),
    }
}

/// The classes a metric reads out of `classes`: its own class, or those of the macro average.
///
/// # Errors
/// [`SegLossError::InvalidOption`] for a class not below `classes`, or a macro average with
/// no class left.
pub(super) fn checked_classes(
    classes: usize,
    class: Option<usize>,
    include_background: bool,
) -> Result<Range<usize>, SegLossError> {
    match class {
        Some(c) if c < classes => Ok(c..c + 1),
        Some(c) => Err(SegLossError::InvalidOption {
            name: "class",
            value: format!("{c} (of {classes} classes)"),
            allowed: "a class index below the number of classes (the logits' channels)",
        }),
        None => {
            let first = usize::from(!include_background);
            if first >= classes {
                return Err(SegLossError::InvalidOption {
                    name: "include_background",
                    value: format!("false with {classes} class"),
                    allowed: "a macro average needs a class besides the background",
                });
            }
            Ok(first..classes)
        }
    }
}

/// Per image, the NaN-skipping mean over `classes` of `per_class` (`[class][image]`); a single
/// class's values as they are. NaN where every class of an image is NaN.
pub(super) fn macro_or_class(per_class: &[Vec<f64>], classes: Range<usize>) -> Vec<f64> {
    let images = per_class.first().map_or(0, Vec::len);
    (0..images)
        .map(|n| {
            let values: Vec<f64> = per_class[classes.clone()].iter().map(|v| v[n]).collect();
            mean_over_images(&values, true)
        })
        .collect()
}

impl Metric for MulticlassSegmentationMetric {
    type Input = MulticlassMetricInput;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn description(&self) -> Option<String> {
        Some(format!(
            "hard multiclass {} score from segloss (exact counts per class, {})",
            self.score.label(),
            selection(self.class)
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
        // As SegmentationMetric: inputs that cannot be scored are a bug in the step, so they
        // panic with the error's message rather than being dropped silently.
        let values = checked_classes(item.classes(), self.class, self.include_background)
            .and_then(|classes| {
                let confusion = item.confusion(self.ignore_index)?;
                Ok(self.values(&confusion, classes))
            })
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        self.epoch.push(&values);
        Ok(self.epoch.entry(false))
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        Ok(self.epoch.entry(true))
    }

    fn clear(&mut self) {
        self.epoch.clear();
    }
}

impl Numeric for MulticlassSegmentationMetric {
    fn value(&self) -> Option<NumericEntry> {
        Some(self.epoch.value())
    }

    fn running_value(&self) -> Option<NumericEntry> {
        Some(self.epoch.running_value())
    }

    fn final_value(&self) -> NumericEntry {
        self.epoch.final_value()
    }
}

/// The mean of a metric's per-image values over an epoch, NaN values (skipped images or
/// classes) left out, and `nothing_scored` shown for a batch or an epoch in which every value
/// was skipped: never NaN.
#[derive(Debug, Clone)]
pub(super) struct EpochMean {
    nothing_scored: f64,
    /// The batch's value and the number of values it averages.
    batch: (f64, usize),
    sum: f64,
    count: usize,
}

impl EpochMean {
    pub(super) fn new(nothing_scored: f64) -> Self {
        Self {
            nothing_scored,
            batch: (nothing_scored, 0),
            sum: 0.0,
            count: 0,
        }
    }

    /// Adds a batch's values.
    pub(super) fn push(&mut self, values: &[f64]) {
        let kept: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        let sum: f64 = kept.iter().sum();
        self.sum += sum;
        self.count += kept.len();
        self.batch = (self.mean(sum, kept.len()), kept.len());
    }

    fn mean(&self, sum: f64, count: usize) -> f64 {
        if count == 0 {
            self.nothing_scored
        } else {
            sum / count as f64
        }
    }

    /// The mean of the epoch's values so far.
    pub(super) fn epoch(&self) -> f64 {
        self.mean(self.sum, self.count)
    }

    pub(super) fn entry(&self, final_entry: bool) -> SerializedEntry {
        serialized_entry(self.batch, self.epoch(), final_entry)
    }

    pub(super) fn clear(&mut self) {
        *self = Self::new(self.nothing_scored);
    }

    pub(super) fn value(&self) -> NumericEntry {
        aggregated(self.batch)
    }

    pub(super) fn running_value(&self) -> NumericEntry {
        aggregated((self.epoch(), self.count))
    }

    pub(super) fn final_value(&self) -> NumericEntry {
        NumericEntry::Final(self.epoch())
    }
}
