//! The output of a multiclass segmentation step ([`MulticlassSegmentationOutput`]) and the
//! input of the multiclass metrics ([`MulticlassMetricInput`]), with the per-batch counts and
//! distances those metrics share.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use burn::tensor::{ExecutionError, Int, Tensor};
use burn::train::metric::{Adaptor, ItemLazy, LossInput};

use super::surface::{spatial_axes, unsupported_image};
use crate::error::SegLossError;
use crate::metrics::ClassConfusion;
use crate::metrics::surface::{ClassSurfaceDistances, SurfaceConfig};
use crate::tensors::rows;

/// The output of a multiclass segmentation step: the loss, the logits `[N, C, ...]` and the
/// target class indices `[N, 1, ...]` (MONAI's index layout, the targets of the multiclass
/// losses), with the predicted class of every pixel, the argmax over the `C` channels.
///
/// The spatial axes are flattened (one row of `P` pixels per image), so one type serves 2D
/// and 3D images; `image_shape` keeps the grid for the surface metrics.
///
/// Every metric adapted from one output shares its work: the per-class counts
/// ([`ClassConfusion`]) and surface distances ([`ClassSurfaceDistances`]) are computed once per
/// batch for each `ignore_index` (and surface configuration), however many per-class and
/// macro metrics read them.
#[derive(Debug, Clone)]
pub struct MulticlassSegmentationOutput {
    /// The loss of the batch (`[1]`).
    pub loss: Tensor<1>,
    /// Logits `[N, C, P]`.
    pub logits: Tensor<3>,
    /// Predicted class indices `[N, P]`: the argmax of the logits over the channels (the
    /// first channel on ties, as burn's `argmax`).
    pub predictions: Tensor<2, Int>,
    /// Target class indices `[N, P]`.
    pub targets: Tensor<2, Int>,
    /// The shape of one image's class map: the targets' shape without `N` (`[1, H, W]`,
    /// `[1, D, H, W]`).
    pub image_shape: Vec<usize>,
    /// The predictions' shape without `N`: `image_shape` when the targets fit the logits.
    prediction_shape: Vec<usize>,
    shared: Arc<SharedResults>,
}

impl MulticlassSegmentationOutput {
    /// Builds the output from a step's loss, its logits `[N, C, ...]` and its target class
    /// indices `[N, 1, ...]` (each in `0..C`, or an `ignore_index` the metrics are told
    /// about). The predictions are `logits.argmax(1)`.
    ///
    /// Nothing is checked here (a step cannot return an error): the metrics check the shapes
    /// and the indices, and panic with the error's message on inputs they cannot score.
    pub fn new<const D: usize>(
        loss: Tensor<1>,
        logits: Tensor<D>,
        targets: Tensor<D, Int>,
    ) -> Self {
        let dims = logits.dims();
        let (n, classes) = (dims[0], dims[1]);
        let predictions = logits.clone().argmax(1);
        Self {
            loss,
            logits: logits.reshape([n as i64, classes as i64, -1]),
            image_shape: targets.dims()[1..].to_vec(),
            prediction_shape: predictions.dims()[1..].to_vec(),
            predictions: rows(predictions),
            targets: rows(targets),
            shared: Arc::default(),
        }
    }

    /// The number of classes `C`: the logits' channels.
    pub fn classes(&self) -> usize {
        self.logits.dims()[1]
    }
}

impl ItemLazy for MulticlassSegmentationOutput {
    fn sync(self) -> Result<Self, ExecutionError> {
        // As SegmentationOutput: a flush, no readback, and nothing left on the autodiff tape.
        self.loss.device().flush()?;
        Ok(Self {
            loss: self.loss.without_autodiff(),
            logits: self.logits.without_autodiff(),
            predictions: self.predictions.without_autodiff(),
            targets: self.targets.without_autodiff(),
            image_shape: self.image_shape,
            prediction_shape: self.prediction_shape,
            shared: self.shared,
        })
    }
}

impl Adaptor<LossInput> for MulticlassSegmentationOutput {
    fn adapt(&self) -> LossInput {
        LossInput::new(self.loss.clone())
    }
}

impl Adaptor<MulticlassMetricInput> for MulticlassSegmentationOutput {
    fn adapt(&self) -> MulticlassMetricInput {
        MulticlassMetricInput {
            predictions: self.predictions.clone(),
            targets: self.targets.clone(),
            prediction_shape: self.prediction_shape.clone(),
            target_shape: self.image_shape.clone(),
            classes: self.classes(),
            shared: self.shared.clone(),
        }
    }
}

/// The input of [`MulticlassSegmentationMetric`](super::MulticlassSegmentationMetric) and
/// [`MulticlassSurfaceMetric`](super::MulticlassSurfaceMetric): predicted and target class
/// indices and the number of classes.
///
/// Inputs adapted from one [`MulticlassSegmentationOutput`] share its per-batch results;
/// an input built with [`MulticlassMetricInput::new`] shares them with its clones.
#[derive(Debug, Clone)]
pub struct MulticlassMetricInput {
    /// `[N, P]`.
    predictions: Tensor<2, Int>,
    /// `[N, P]`.
    targets: Tensor<2, Int>,
    /// The shapes of one image's maps before flattening (checked equal when scored).
    prediction_shape: Vec<usize>,
    target_shape: Vec<usize>,
    classes: usize,
    shared: Arc<SharedResults>,
}

impl MulticlassMetricInput {
    /// Predicted and target class indices of the same shape `[N, ...]` (`[N, 1, S1, S2]` or
    /// `[N, 1, S1, S2, S3]` for the surface metrics), with `classes` classes: the indices lie
    /// in `0..classes`, targets may also be an `ignore_index`.
    pub fn new<const D: usize>(
        predictions: Tensor<D, Int>,
        targets: Tensor<D, Int>,
        classes: usize,
    ) -> Self {
        Self {
            prediction_shape: predictions.dims()[1..].to_vec(),
            target_shape: targets.dims()[1..].to_vec(),
            predictions: rows(predictions),
            targets: rows(targets),
            classes,
            shared: Arc::default(),
        }
    }

    /// The number of classes `C`.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The per-image, per-class counts of the batch with `ignore_index` (computed once per
    /// batch and `ignore_index`).
    pub(super) fn confusion(
        &self,
        ignore_index: Option<i64>,
    ) -> Result<Arc<ClassConfusion>, SegLossError> {
        shared(&self.shared.confusion, ignore_index, || {
            self.check_shapes()?;
            ClassConfusion::from_indices(
                self.predictions.clone(),
                self.targets.clone(),
                self.classes,
                ignore_index,
            )
        })
    }

    /// The per-image, per-class surface distances of the batch (computed once per batch,
    /// `ignore_index` and `config`).
    pub(super) fn surface_distances(
        &self,
        ignore_index: Option<i64>,
        config: &SurfaceConfig,
    ) -> Result<Arc<ClassSurfaceDistances>, SegLossError> {
        shared(&self.shared.surface, (ignore_index, config.clone()), || {
            self.check_shapes()?;
            let (pred, target) = (self.predictions.clone(), self.targets.clone());
            let n = pred.dims()[0];
            let classes = self.classes;
            match *spatial_axes(&self.prediction_shape) {
                [a, b] => ClassSurfaceDistances::from_indices(
                    pred.reshape([n, 1, a, b]),
                    target.reshape([n, 1, a, b]),
                    classes,
                    ignore_index,
                    config,
                ),
                [a, b, c] => ClassSurfaceDistances::from_indices(
                    pred.reshape([n, 1, a, b, c]),
                    target.reshape([n, 1, a, b, c]),
                    classes,
                    ignore_index,
                    config,
                ),
                _ => Err(unsupported_image(&self.prediction_shape)),
            }
        })
    }

    /// The two maps have the same shape (their rows alone could match for different grids).
    fn check_shapes(&self) -> Result<(), SegLossError> {
        let dims = |t: &Tensor<2, Int>, shape: &[usize]| {
            std::iter::once(t.dims()[0])
                .chain(shape.iter().copied())
                .collect::<Vec<_>>()
        };
        let (pred, target) = (
            dims(&self.predictions, &self.prediction_shape),
            dims(&self.targets, &self.target_shape),
        );
        if pred != target {
            return Err(SegLossError::ShapeMismatch {
                left_name: "predicted class indices",
                left: pred,
                right_name: "target class indices",
                right: target,
            });
        }
        Ok(())
    }
}

/// A batch's results keyed by the options they depend on: the counts by `ignore_index`, the
/// surface distances by `ignore_index` and configuration. Each list holds one entry per
/// distinct key the batch's metrics asked for (a few).
#[derive(Default)]
struct SharedResults {
    confusion: Entries<Option<i64>, ClassConfusion>,
    surface: Entries<(Option<i64>, SurfaceConfig), ClassSurfaceDistances>,
}

/// Results by key, in the order they were first asked for.
type Entries<K, V> = Mutex<Vec<(K, Arc<V>)>>;

impl fmt::Debug for SharedResults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedResults").finish_non_exhaustive()
    }
}

/// The entry of `key` in `results`, computed by `compute` (and kept) the first time it is
/// asked for; an error is returned and not kept.
fn shared<K: PartialEq, V>(
    results: &Entries<K, V>,
    key: K,
    compute: impl FnOnce() -> Result<V, SegLossError>,
) -> Result<Arc<V>, SegLossError> {
    // A panic while the lock was held cannot leave a half-written entry: entries are pushed
    // whole.
    let mut results = results.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, value)) = results.iter().find(|(k, _)| *k == key) {
        return Ok(value.clone());
    }
    let value = Arc::new(compute()?);
    results.push((key, value.clone()));
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::sync::Mutex;

    use super::shared;
    use crate::error::SegLossError;

    #[test]
    fn shared_results_are_computed_once_per_key_and_errors_are_not_kept() {
        let results = Mutex::new(Vec::new());
        let calls = Cell::new(0);
        let get = |key: Option<i64>, fail: bool| {
            shared(&results, key, || {
                calls.set(calls.get() + 1);
                if fail {
                    Err(SegLossError::InvalidOption {
                        name: "test",
                        value: String::new(),
                        allowed: "",
                    })
                } else {
                    Ok(key.unwrap_or(-1) * 10)
                }
            })
        };
        assert!(get(Some(1), true).is_err());
        assert_eq!(*get(Some(1), false).unwrap(), 10);
        assert_eq!(*get(Some(1), true).unwrap(), 10);
        assert_eq!(*get(None, false).unwrap(), -10);
        assert_eq!(*get(Some(1), false).unwrap(), 10);
        // The failed call, then one computation per key.
        assert_eq!(calls.get(), 3);
    }
}
