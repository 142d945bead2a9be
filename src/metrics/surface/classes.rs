//! Surface distances per class of class-index maps.

use burn::tensor::{Int, Tensor};

use super::config::SurfaceConfig;
use super::distances::{Direction, HausdorffMode, ImageDistances, SurfaceDistances, image_shape};
use crate::check;
use crate::engine::host::read_indices;
use crate::error::SegLossError;

/// The surface distances of every class of a batch of class-index maps: for class `c`, the
/// [`SurfaceDistances`] of the masks `pred == c` and `target == c`, image by image.
///
/// Every per-class metric is that of [`SurfaceDistances`], returned as `[image][class]`.
/// A target pixel equal to `ignore_index` belongs to neither mask of any class (in the
/// prediction too), so it counts as outside both masks: a mask voxel next to an ignored
/// region is a border voxel. (MONAI and MedPy have no `ignore_index`; crop or mask the maps
/// yourself if you need another convention.) A class absent from both maps of an image is the
/// both-empty case of [`SurfaceConfig::both_empty`] (NaN by default, so `nanmean` skips it).
#[derive(Clone, Debug, PartialEq)]
pub struct ClassSurfaceDistances {
    classes: Vec<SurfaceDistances>,
}

impl ClassSurfaceDistances {
    /// The surface distances per class for a predicted and a target class-index map of shape
    /// `[N, 1, S1, S2]` or `[N, 1, S1, S2, S3]` (MONAI's index layout), with `classes`
    /// classes (`C >= 1`). Reads both maps once.
    ///
    /// # Errors
    /// As [`SurfaceDistances::from_masks`], plus `classes = 0`, [`SegLossError::TooLarge`] for
    /// `classes` past `i32::MAX` or a class count times voxels that overflows, and
    /// [`SegLossError::InvalidTargets`] when a prediction, or a target other than
    /// `ignore_index`, lies outside `0..classes`.
    pub fn from_indices<const D: usize>(
        pred: Tensor<D, Int>,
        target: Tensor<D, Int>,
        classes: usize,
        ignore_index: Option<i64>,
        config: &SurfaceConfig,
    ) -> Result<Self, SegLossError> {
        check::same_shape_and_device(&pred, "pred", &target, "target")?;
        let (images, spatial) = image_shape(&pred.dims(), "pred")?;
        if classes == 0 {
            return Err(SegLossError::InvalidParameter {
                name: "classes",
                value: 0.0,
                allowed: "at least 1",
            });
        }
        check::class_count(classes)?;
        check::element_count(
            &[images, classes, spatial.iter().product()],
            "class count times voxels",
        )?;
        let spacing = config.spacing_for(spatial.len())?;
        config.check()?;
        let pred = read_indices(pred, "the predicted class map")?;
        let target = read_indices(target, "the target class map")?;
        let in_range = |v: i64| (0..classes as i64).contains(&v);
        let ignored = |y: i64| ignore_index == Some(y);
        if let Some(bad) = target.iter().find(|&&y| !in_range(y) && !ignored(y)) {
            return Err(SegLossError::InvalidTargets {
                reason: format!("a target class index {bad} is outside 0..{classes}"),
            });
        }
        if let Some(bad) = pred.iter().find(|&&p| !in_range(p)) {
            return Err(SegLossError::InvalidTargets {
                reason: format!("a predicted class index {bad} is outside 0..{classes}"),
            });
        }
        let size: usize = spatial.iter().product();
        let classes = (0..classes as i64)
            .map(|c| {
                let images = (0..images)
                    .map(|n| {
                        let range = n * size..(n + 1) * size;
                        let (p, y) = (&pred[range.clone()], &target[range]);
                        let pred_mask: Vec<u8> = p
                            .iter()
                            .zip(y)
                            .map(|(&p, &y)| u8::from(p == c && !ignored(y)))
                            .collect();
                        let target_mask: Vec<u8> =
                            y.iter().map(|&y| u8::from(y == c && !ignored(y))).collect();
                        ImageDistances::new(&pred_mask, &target_mask, &spatial, &spacing)
                    })
                    .collect();
                SurfaceDistances::from_images(images, config)
            })
            .collect();
        Ok(ClassSurfaceDistances { classes })
    }

    /// `classes()[c]`: the surface distances of class `c` against the rest.
    pub fn classes(&self) -> &[SurfaceDistances] {
        &self.classes
    }

    /// [`SurfaceDistances::hausdorff`] per image and class, `[image][class]`.
    pub fn hausdorff(&self, percentile: f64, mode: HausdorffMode) -> Vec<Vec<f64>> {
        self.per_class(|d| d.hausdorff(percentile, mode))
    }

    /// [`SurfaceDistances::directed_hausdorff`] per image and class.
    pub fn directed_hausdorff(&self, percentile: f64, direction: Direction) -> Vec<Vec<f64>> {
        self.per_class(|d| d.directed_hausdorff(percentile, direction))
    }

    /// [`SurfaceDistances::assd`] per image and class.
    pub fn assd(&self) -> Vec<Vec<f64>> {
        self.per_class(SurfaceDistances::assd)
    }

    /// [`SurfaceDistances::masd`] per image and class.
    pub fn masd(&self) -> Vec<Vec<f64>> {
        self.per_class(SurfaceDistances::masd)
    }

    /// [`SurfaceDistances::directed_asd`] per image and class.
    pub fn directed_asd(&self, direction: Direction) -> Vec<Vec<f64>> {
        self.per_class(|d| d.directed_asd(direction))
    }

    /// [`SurfaceDistances::nsd`] per image and class.
    pub fn nsd(&self, tolerance: f64) -> Vec<Vec<f64>> {
        self.per_class(|d| d.nsd(tolerance))
    }

    /// A per-class metric (one value per image each) transposed to `[image][class]`.
    fn per_class(&self, metric: impl Fn(&SurfaceDistances) -> Vec<f64>) -> Vec<Vec<f64>> {
        let per_class: Vec<Vec<f64>> = self.classes.iter().map(metric).collect();
        let images = self.classes.first().map_or(0, SurfaceDistances::len);
        (0..images)
            .map(|n| per_class.iter().map(|values| values[n]).collect())
            .collect()
    }
}
