//! Multiclass HD95 and NSD as burn-train metrics, per class or macro
//! ([`MulticlassSurfaceMetric`]).

use std::ops::Range;
use std::sync::Arc;

use burn::tensor::TensorReadError;
use burn::train::metric::{
    Metric, MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes, NumericEntry,
    SerializedEntry,
};

use super::multiclass::{EpochMean, background, checked_classes, macro_or_class, selection};
use super::{MulticlassMetricInput, SurfaceScore};
use crate::error::SegLossError;
use crate::metrics::surface::{
    BothEmpty, ClassSurfaceDistances, HausdorffMode, OneEmpty, SurfaceConfig,
};

/// A surface metric (HD95, NSD) of multiclass predictions as a burn-train numeric metric: the
/// value of one class, or the macro average over the classes.
///
/// Each batch's predicted class map (the argmax of the logits) and target map are read to the
/// host, and the surface distances of every class (the masks `pred == c` and `target == c`)
/// are computed per image ([`ClassSurfaceDistances::from_indices`], exact Euclidean distances
/// in the units of [`SurfaceConfig::spacing`]):
///
/// - **one class** ([`with_class`](Self::with_class)`(c)`): [`ClassSurfaceDistances::hausdorff`]
///   (HD95: `max(P95(d_pt), P95(d_tp))`, MONAI's `compute_hausdorff_distance(percentile=95)`)
///   or [`ClassSurfaceDistances::nsd`] (`(#{d_pt <= t} + #{d_tp <= t}) / (|d_pt| + |d_tp|)`,
///   MONAI's `compute_surface_dice`) of class `c` in each image;
/// - **macro** (the default): the mean over the classes counted of those values, per image
///   (MONAI's `reduction="mean"`).
///
/// The epoch value is the mean of the per-image values over every image of the epoch.
///
/// # Options
///
/// - `include_background` (default `false`, as MONAI's `HausdorffDistanceMetric` and
///   `SurfaceDiceMetric`): whether class 0 is one of the classes the macro average counts.
/// - `ignore_index` (default none): target pixels of this index belong to no class's mask, in
///   the prediction and the target alike (see [`ClassSurfaceDistances`]).
/// - [`SurfaceConfig`] ([`with_config`](Self::with_config)): spacing and empty masks. The
///   default here is [`OneEmpty::Diagonal`] and [`BothEmpty::Nan`]:
///   - a class present in only one of an image's two maps has no border to measure to; it
///     gets the image diagonal `sqrt(sum_a (spacing_a (S_a - 1))^2)` as its distances (the
///     largest any two voxels of the image can have: a finite worst case, where MONAI gives
///     `+inf`, or NaN for HD95) and NSD 0;
///   - a class absent from both maps of an image is *skipped* (left out of the image's macro
///     mean, and the image out of the class's epoch mean; MONAI's NaN and `nanmean`): it was
///     predicted exactly right, and neither 0 nor the diagonal would say so.
/// - **nothing scored**: when every value of a batch (or of the epoch) was skipped, the metric
///   shows the value of a perfect result (HD95 0, NSD 1), never NaN.
///
/// With [`OneEmpty::Infinite`] (MONAI's values) a mean over images can be `+inf`; with a
/// [`OneEmpty::Nan`] configuration those images are skipped too.
///
/// # Panics
/// `update` panics with the [`SegLossError`] message on input it cannot score: mismatched
/// shapes, images that are not 2D or 3D (`[N, 1, S1, S2]` or `[N, 1, S1, S2, S3]` class
/// maps), an index out of range, a class not below `C`, a macro average left with no class,
/// an invalid spacing, a percentile outside `[0, 100]` or a negative tolerance.
#[derive(Debug, Clone)]
pub struct MulticlassSurfaceMetric {
    score: SurfaceScore,
    config: SurfaceConfig,
    class: Option<usize>,
    include_background: bool,
    ignore_index: Option<i64>,
    name: MetricName,
    epoch: EpochMean,
}

impl MulticlassSurfaceMetric {
    /// The macro average of `score`, background excluded, no `ignore_index`, with
    /// [`MulticlassSurfaceMetric::default_config`].
    pub fn new(score: SurfaceScore) -> Self {
        let perfect = match score {
            SurfaceScore::Hausdorff { .. } => 0.0,
            SurfaceScore::Nsd { .. } => 1.0,
        };
        let mut metric = Self {
            score,
            config: Self::default_config(),
            class: None,
            include_background: false,
            ignore_index: None,
            name: Arc::new(String::new()),
            epoch: EpochMean::new(perfect),
        };
        metric.rename();
        metric
    }

    /// The surface options these metrics start with: spacing 1, [`OneEmpty::Diagonal`] (a
    /// finite worst case) and [`BothEmpty::Nan`] (skipped).
    pub fn default_config() -> SurfaceConfig {
        SurfaceConfig::new()
            .with_one_empty(OneEmpty::Diagonal)
            .with_both_empty(BothEmpty::Nan)
    }

    /// The macro HD95 as MONAI computes it (`MaxOfDirected`).
    pub fn hd95() -> Self {
        Self::new(SurfaceScore::Hausdorff {
            percentile: 95.0,
            mode: HausdorffMode::MaxOfDirected,
        })
    }

    /// The macro normalized surface Dice at `tolerance` (in the spacing's units).
    pub fn nsd(tolerance: f64) -> Self {
        Self::new(SurfaceScore::Nsd { tolerance })
    }

    /// The value of class `class` alone, instead of the macro average.
    pub fn with_class(mut self, class: usize) -> Self {
        self.class = Some(class);
        self.rename();
        self
    }

    /// Whether the macro average counts class 0 (default `false`, MONAI's
    /// `HausdorffDistanceMetric`).
    pub fn with_include_background(mut self, include_background: bool) -> Self {
        self.include_background = include_background;
        self.rename();
        self
    }

    /// Target pixels of this index belong to no class, in either map (default none).
    pub fn with_ignore_index(mut self, ignore_index: Option<i64>) -> Self {
        self.ignore_index = ignore_index;
        self.rename();
        self
    }

    /// The spacing and empty-mask options (default
    /// [`MulticlassSurfaceMetric::default_config`]).
    pub fn with_config(mut self, config: SurfaceConfig) -> Self {
        self.config = config;
        self
    }

    fn rename(&mut self) {
        let mut options = vec![match self.score {
            SurfaceScore::Hausdorff { mode, .. } => format!("{mode:?}"),
            SurfaceScore::Nsd { tolerance } => format!("tolerance {tolerance}"),
        }];
        if self.class.is_none() {
            options.push(background(self.include_background));
        }
        if let Some(index) = self.ignore_index {
            options.push(format!("ignore_index {index}"));
        }
        let label = match self.score {
            SurfaceScore::Hausdorff { percentile, .. } => format!("HD{percentile}"),
            SurfaceScore::Nsd { .. } => "NSD".to_string(),
        };
        self.name = Arc::new(format!(
            "{label} {} ({})",
            selection(self.class),
            options.join(", ")
        ));
    }

    /// The per-image values of a batch (NaN: skipped).
    fn values(&self, distances: &ClassSurfaceDistances, classes: Range<usize>) -> Vec<f64> {
        // [class][image]
        let per_class: Vec<Vec<f64>> = distances
            .classes()
            .iter()
            .map(|d| match self.score {
                SurfaceScore::Hausdorff { percentile, mode } => d.hausdorff(percentile, mode),
                SurfaceScore::Nsd { tolerance } => d.nsd(tolerance),
            })
            .collect();
        macro_or_class(&per_class, classes)
    }

    /// A percentile outside `[0, 100]` or a negative tolerance gives NaN everywhere, which
    /// this metric would show as a perfect score: an error instead.
    fn check_score(&self) -> Result<(), SegLossError> {
        match self.score {
            SurfaceScore::Hausdorff { percentile, .. } if !(0.0..=100.0).contains(&percentile) => {
                Err(SegLossError::InvalidParameter {
                    name: "percentile",
                    value: percentile,
                    allowed: "[0, 100]",
                })
            }
            SurfaceScore::Nsd { tolerance } if tolerance.is_nan() || tolerance < 0.0 => {
                Err(SegLossError::InvalidParameter {
                    name: "tolerance",
                    value: tolerance,
                    allowed: ">= 0",
                })
            }
            _ => Ok(()),
        }
    }
}

impl Metric for MulticlassSurfaceMetric {
    type Input = MulticlassMetricInput;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn description(&self) -> Option<String> {
        Some(format!(
            "multiclass surface metric from segloss (exact distance transform, {})",
            selection(self.class)
        ))
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: None,
            higher_is_better: matches!(self.score, SurfaceScore::Nsd { .. }),
        }
        .into()
    }

    fn update(
        &mut self,
        item: &Self::Input,
        _metadata: &MetricMetadata,
    ) -> Result<SerializedEntry, TensorReadError> {
        let values = self
            .check_score()
            .and_then(|()| checked_classes(item.classes(), self.class, self.include_background))
            .and_then(|classes| {
                let distances = item.surface_distances(self.ignore_index, &self.config)?;
                Ok(self.values(&distances, classes))
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

impl Numeric for MulticlassSurfaceMetric {
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
