//! HD95 and NSD as burn-train metrics (feature `train`), fed by
//! [`SegmentationOutput`].

use std::sync::Arc;

use burn::tensor::{Bool, Tensor, TensorReadError};
use burn::train::metric::{
    Adaptor, Metric, MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes,
    NumericEntry, SerializedEntry,
};

use super::{SegmentationOutput, aggregated, serialized_entry};
use crate::error::SegLossError;
use crate::metrics::surface::{HausdorffMode, SurfaceConfig, SurfaceDistances};
use crate::metrics::{DEFAULT_LOGIT_THRESHOLD, threshold_logits};

/// The input of [`SurfaceMetric`]: logits and hard targets `[N, P]`, and the shape of one
/// image.
#[derive(Debug, Clone)]
pub struct SurfaceMetricInput {
    logits: Tensor<2>,
    targets: Tensor<2>,
    image_shape: Vec<usize>,
}

impl SurfaceMetricInput {
    /// Logits and hard targets of the same shape `[N, P]`, `P` the product of `image_shape`
    /// (`[S1, S2]`, `[S1, S2, S3]`, or either with a leading channel of 1).
    pub fn new(logits: Tensor<2>, targets: Tensor<2>, image_shape: Vec<usize>) -> Self {
        Self {
            logits,
            targets,
            image_shape,
        }
    }
}

impl Adaptor<SurfaceMetricInput> for SegmentationOutput {
    fn adapt(&self) -> SurfaceMetricInput {
        SurfaceMetricInput::new(
            self.logits.clone(),
            self.targets.clone(),
            self.image_shape.clone(),
        )
    }
}

/// Which surface metric a [`SurfaceMetric`] reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SurfaceScore {
    /// [`SurfaceDistances::hausdorff`] at this percentile and mode.
    Hausdorff {
        /// 0 to 100 (95 for HD95, 100 for the Hausdorff distance).
        percentile: f64,
        /// How the two directions are combined.
        mode: HausdorffMode,
    },
    /// [`SurfaceDistances::nsd`] at this tolerance (in the spacing's units).
    Nsd {
        /// The distance within which a border voxel counts as matched.
        tolerance: f64,
    },
}

/// A surface metric (HD95, NSD) of binary predictions as a burn-train numeric metric.
///
/// Each batch is thresholded (`logits > threshold`, default 0, and `targets > 0.5`), its masks
/// are read to the host and scored per image ([`SurfaceDistances::from_masks`] with the
/// metric's [`SurfaceConfig`]); the epoch value is the mean over the images whose value is not
/// NaN (with the default config, images where both masks are empty are skipped, and one empty
/// mask makes a Hausdorff mean `+inf`: choose [`OneEmpty::Diagonal`](crate::metrics::surface::OneEmpty)
/// for a finite worst case).
///
/// # Panics
/// `update` panics with the [`SegLossError`] message on input it cannot score (an image shape
/// that is not 2D or 3D, an invalid spacing), as [`SegmentationMetric`](super::SegmentationMetric) does.
#[derive(Debug, Clone)]
pub struct SurfaceMetric {
    score: SurfaceScore,
    config: SurfaceConfig,
    threshold: f64,
    name: MetricName,
    /// Batch value and the number of images it averages.
    current: (f64, usize),
    /// Sum of the epoch's (non-NaN) values and their count.
    sum: f64,
    count: usize,
}

impl SurfaceMetric {
    /// A metric reporting `score`, with MONAI's defaults ([`SurfaceConfig::new`]) and
    /// threshold 0 on logits.
    pub fn new(score: SurfaceScore) -> Self {
        let mut metric = Self {
            score,
            config: SurfaceConfig::new(),
            threshold: DEFAULT_LOGIT_THRESHOLD,
            name: Arc::new(String::new()),
            current: (f64::NAN, 0),
            sum: 0.0,
            count: 0,
        };
        metric.rename();
        metric
    }

    /// HD95 as MONAI computes it (`MaxOfDirected`).
    pub fn hd95() -> Self {
        Self::new(SurfaceScore::Hausdorff {
            percentile: 95.0,
            mode: HausdorffMode::MaxOfDirected,
        })
    }

    /// The normalized surface Dice at `tolerance`.
    pub fn nsd(tolerance: f64) -> Self {
        Self::new(SurfaceScore::Nsd { tolerance })
    }

    /// The spacing and empty-mask options.
    pub fn with_config(mut self, config: SurfaceConfig) -> Self {
        self.config = config;
        self
    }

    /// Threshold on the logits (default 0).
    pub fn with_threshold(mut self, threshold: f64) -> Self {
        self.threshold = threshold;
        self.rename();
        self
    }

    fn rename(&mut self) {
        let label = match self.score {
            SurfaceScore::Hausdorff { percentile, mode } => {
                format!("HD{percentile} ({mode:?}")
            }
            SurfaceScore::Nsd { tolerance } => format!("NSD ({tolerance}"),
        };
        self.name = Arc::new(format!("{label}, logit threshold {})", self.threshold));
    }

    /// The per-image values of a batch.
    fn score(&self, item: &SurfaceMetricInput) -> Result<Vec<f64>, SegLossError> {
        let pred = threshold_logits(item.logits.clone(), self.threshold);
        let target = item.targets.clone().greater_elem(0.5);
        let distances = surface_distances(pred, target, &item.image_shape, &self.config)?;
        Ok(match self.score {
            SurfaceScore::Hausdorff { percentile, mode } => distances.hausdorff(percentile, mode),
            SurfaceScore::Nsd { tolerance } => distances.nsd(tolerance),
        })
    }

    fn epoch_value(&self) -> f64 {
        self.sum / self.count as f64
    }

    fn entry(&self, final_entry: bool) -> SerializedEntry {
        serialized_entry(self.current, self.epoch_value(), final_entry)
    }
}

/// The surface distances of masks `[N, P]` whose images have `image_shape` (2D or 3D, with or
/// without a leading channel of 1).
fn surface_distances(
    pred: Tensor<2, Bool>,
    target: Tensor<2, Bool>,
    image_shape: &[usize],
    config: &SurfaceConfig,
) -> Result<SurfaceDistances, SegLossError> {
    let n = pred.dims()[0];
    match *spatial_axes(image_shape) {
        [a, b] => SurfaceDistances::from_masks(
            pred.reshape([n, 1, a, b]),
            target.reshape([n, 1, a, b]),
            config,
        ),
        [a, b, c] => SurfaceDistances::from_masks(
            pred.reshape([n, 1, a, b, c]),
            target.reshape([n, 1, a, b, c]),
            config,
        ),
        _ => Err(unsupported_image(image_shape)),
    }
}

/// The spatial axes of an image shape: `image_shape` without a leading channel of 1 (when
/// at least two axes follow it).
pub(super) fn spatial_axes(image_shape: &[usize]) -> &[usize] {
    match image_shape {
        [1, rest @ ..] if rest.len() >= 2 => rest,
        other => other,
    }
}

/// The error for an image shape the surface metrics cannot take (not 2D or 3D).
pub(super) fn unsupported_image(image_shape: &[usize]) -> SegLossError {
    SegLossError::UnsupportedShape {
        name: "image",
        shape: image_shape.to_vec(),
        expected: "2D or 3D images: [S1, S2], [S1, S2, S3], or either after a channel of 1",
    }
}

impl Metric for SurfaceMetric {
    type Input = SurfaceMetricInput;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn description(&self) -> Option<String> {
        Some("surface metric from segloss (exact distance transform)".into())
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
            .score(item)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        let kept: Vec<f64> = values.into_iter().filter(|v| !v.is_nan()).collect();
        let batch: f64 = kept.iter().sum();
        self.sum += batch;
        self.count += kept.len();
        // 0/0 is NaN: a batch with no scored image shows as NaN, as SegmentationMetric's does.
        self.current = (batch / kept.len() as f64, kept.len());
        Ok(self.entry(false))
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        Ok(self.entry(true))
    }

    fn clear(&mut self) {
        self.current = (f64::NAN, 0);
        self.sum = 0.0;
        self.count = 0;
    }
}

impl Numeric for SurfaceMetric {
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
