//! Surface distances of binary mask pairs, per image, and the metrics made from them.

use burn::tensor::{Bool, Tensor};

use super::border::{Crop, border};
use super::config::{BothEmpty, OneEmpty, SurfaceConfig};
use crate::check;
use crate::cpu::banded_edt::squared_distances_to_queries;
use crate::cpu::parallel;
use crate::engine::host::read_mask_bytes;
use crate::error::SegLossError;

/// How [`SurfaceDistances::hausdorff`] combines the two directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HausdorffMode {
    /// The larger of the two directed percentiles, `max(q(d_pt), q(d_tp))`: MONAI's
    /// `compute_hausdorff_distance`, Metrics Reloaded, `surface-distance` (DeepMind).
    MaxOfDirected,
    /// The percentile of both directions' distances pooled, `q(d_pt ∪ d_tp)`: MedPy's `hd95`
    /// (and `hd` at 100), seg-metrics. At percentile 100 both modes give the Hausdorff
    /// distance; below it, `Pooled` is at most `MaxOfDirected`.
    Pooled,
}

/// One direction of the surface distances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From every border voxel of the prediction to the target's border: `d_pt` (MONAI's
    /// directed metrics with `(y_pred, y)`, MedPy's `asd(result, reference)`).
    PredToTarget,
    /// From every border voxel of the target to the prediction's border: `d_tp`.
    TargetToPred,
}

/// The surface distances of a batch of binary mask pairs: for every image, the distance from
/// each border voxel of the prediction to the nearest border voxel of the target (`d_pt`), and
/// from each border voxel of the target to the nearest of the prediction (`d_tp`).
///
/// A border voxel is a voxel of the mask with a face neighbour (4-connectivity in 2D, 6 in 3D)
/// outside the mask, the image's edges counting as outside (`mask XOR erosion(mask)`, as
/// MONAI, MedPy and Metrics Reloaded define it). Distances are exact Euclidean distances
/// between voxel centres in the units of [`SurfaceConfig::spacing`], equal to an exact distance
/// transform (no approximation, no sub-voxel surface). Every metric is per image:
///
/// | method | formula | matches |
/// |---|---|---|
/// | [`hausdorff`](Self::hausdorff)`(q, MaxOfDirected)` | `max(P_q(d_pt), P_q(d_tp))` | MONAI `compute_hausdorff_distance(percentile=q)` |
/// | [`hausdorff`](Self::hausdorff)`(q, Pooled)` | `P_q(d_pt ∪ d_tp)` | MedPy `hd95` (q = 95), `hd` (q = 100) |
/// | [`directed_hausdorff`](Self::directed_hausdorff)`(q, dir)` | `P_q(d_dir)` | MONAI `directed=True` |
/// | [`assd`](Self::assd) | `mean(d_pt ∪ d_tp)` | MONAI `compute_average_surface_distance(symmetric=True)`, MedPy `assd` |
/// | [`masd`](Self::masd) | `(mean(d_pt) + mean(d_tp)) / 2` | Metrics Reloaded MASD |
/// | [`directed_asd`](Self::directed_asd)`(dir)` | `mean(d_dir)` | MONAI `symmetric=False`, MedPy `asd` |
/// | [`nsd`](Self::nsd)`(t)` | `(#{d_pt <= t} + #{d_tp <= t}) / (|d_pt| + |d_tp|)` | MONAI `compute_surface_dice` |
///
/// `P_q` is the `q`-th percentile with linear interpolation between the sorted values (numpy's
/// and torch's default): at `h = (n - 1) q / 100`, `v[floor h] + (h - floor h) (v[floor h + 1]
/// - v[floor h])`. `q = 100` is the maximum, the classic Hausdorff distance. An image with an
/// empty mask gets the values of [`SurfaceConfig::one_empty`] and
/// [`SurfaceConfig::both_empty`], in every method.
///
/// The methods return one value per image and never fail: a percentile outside `[0, 100]`
/// or a negative or NaN tolerance gives NaN.
#[derive(Clone, Debug, PartialEq)]
pub struct SurfaceDistances {
    images: Vec<ImageDistances>,
    one_empty: OneEmpty,
    both_empty: BothEmpty,
}

/// The two directed distance lists of one image, each sorted ascending.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ImageDistances {
    pred_to_target: Vec<f64>,
    target_to_pred: Vec<f64>,
    /// The image diagonal, for [`OneEmpty::Diagonal`].
    diagonal: f64,
}

impl SurfaceDistances {
    /// The surface distances of every image of `pred` and `target`, boolean masks of shape
    /// `[N, 1, S1, S2]` or `[N, 1, S1, S2, S3]` (the binary losses' layout).
    ///
    /// Reads both masks to the host once (on flex and ndarray it borrows their buffers: no
    /// copy); the rest is host work on the thread pool: each image pair is cropped to the box
    /// holding both masks, and the distances from each border to the other are computed at
    /// the border voxels only, exact: windowed minima within a growing radius, the few far
    /// voxels site by site, borders far apart by the full distance transform.
    ///
    /// # Errors
    /// Shape mismatch, different devices, a shape other than `[N, 1, S1, S2]` or
    /// `[N, 1, S1, S2, S3]`, a zero-sized dimension, a spacing of the wrong length or not
    /// finite and positive, a negative `OneEmpty::Distance`, or a failed read.
    pub fn from_masks<const D: usize>(
        pred: Tensor<D, Bool>,
        target: Tensor<D, Bool>,
        config: &SurfaceConfig,
    ) -> Result<Self, SegLossError> {
        check::same_shape_and_device(&pred, "pred", &target, "target")?;
        let (images, spatial) = image_shape(&pred.dims(), "pred")?;
        let spacing = config.spacing_for(spatial.len())?;
        config.check()?;
        let pred = read_mask_bytes(pred, "the predicted masks")?;
        let target = read_mask_bytes(target, "the target masks")?;
        let (pred, target) = (pred.as_slice(), target.as_slice());
        let size: usize = spatial.iter().product();
        let images = (0..images)
            .map(|n| {
                let range = n * size..(n + 1) * size;
                ImageDistances::new(&pred[range.clone()], &target[range], &spatial, &spacing)
            })
            .collect();
        Ok(Self::from_images(images, config))
    }

    pub(crate) fn from_images(images: Vec<ImageDistances>, config: &SurfaceConfig) -> Self {
        SurfaceDistances {
            images,
            one_empty: config.one_empty,
            both_empty: config.both_empty,
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether there is no image.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The distances of image `image` in `direction`, sorted ascending: one per border voxel
    /// of the source mask (`+inf` each when the other mask is empty; none when the source
    /// mask is empty). `None` past the last image.
    pub fn distances(&self, image: usize, direction: Direction) -> Option<&[f64]> {
        self.images.get(image).map(|i| i.directed(direction))
    }

    /// The `percentile`-th percentile Hausdorff distance per image, both directions combined
    /// by `mode` (see the table above). `hausdorff(95.0, HausdorffMode::MaxOfDirected)` is
    /// MONAI's HD95, `hausdorff(95.0, HausdorffMode::Pooled)` MedPy's, `hausdorff(100.0, _)`
    /// the Hausdorff distance.
    pub fn hausdorff(&self, percentile: f64, mode: HausdorffMode) -> Vec<f64> {
        self.distance_metric(|i| {
            let (pt, tp) = (&i.pred_to_target, &i.target_to_pred);
            match mode {
                HausdorffMode::MaxOfDirected => {
                    percentile_of(pt, percentile).max(percentile_of(tp, percentile))
                }
                HausdorffMode::Pooled => percentile_of(&merge(pt, tp), percentile),
            }
        })
    }

    /// The `percentile`-th percentile of the distances in one `direction` per image.
    pub fn directed_hausdorff(&self, percentile: f64, direction: Direction) -> Vec<f64> {
        self.distance_metric(|i| percentile_of(i.directed(direction), percentile))
    }

    /// The average symmetric surface distance per image: the mean of both directions'
    /// distances pooled, `(sum d_pt + sum d_tp) / (|d_pt| + |d_tp|)`.
    pub fn assd(&self) -> Vec<f64> {
        self.distance_metric(|i| {
            let count = i.pred_to_target.len() + i.target_to_pred.len();
            (sum(&i.pred_to_target) + sum(&i.target_to_pred)) / count as f64
        })
    }

    /// The mean average surface distance per image: the mean of the two directed means,
    /// `(mean d_pt + mean d_tp) / 2` (Metrics Reloaded's MASD; it weighs both borders equally,
    /// where [`assd`](Self::assd) weighs every border voxel equally).
    pub fn masd(&self) -> Vec<f64> {
        self.distance_metric(|i| (mean(&i.pred_to_target) + mean(&i.target_to_pred)) / 2.0)
    }

    /// The mean of the distances in one `direction` per image (the directed average surface
    /// distance).
    pub fn directed_asd(&self, direction: Direction) -> Vec<f64> {
        self.distance_metric(|i| mean(i.directed(direction)))
    }

    /// The normalized surface Dice per image at `tolerance` (in the spacing's units): the
    /// fraction of both borders' voxels that lie within `tolerance` of the other border,
    /// `(#{d_pt <= t} + #{d_tp <= t}) / (|d_pt| + |d_tp|)`, in `[0, 1]`.
    pub fn nsd(&self, tolerance: f64) -> Vec<f64> {
        self.images
            .iter()
            .map(|i| {
                if tolerance.is_nan() || tolerance < 0.0 {
                    return f64::NAN;
                }
                match i.emptiness() {
                    Emptiness::Both => match self.both_empty {
                        BothEmpty::Nan => f64::NAN,
                        BothEmpty::Perfect => 1.0,
                    },
                    Emptiness::One => match self.one_empty {
                        OneEmpty::Nan => f64::NAN,
                        OneEmpty::Infinite | OneEmpty::Diagonal | OneEmpty::Distance(_) => 0.0,
                    },
                    Emptiness::Neither => {
                        let (pt, tp) = (&i.pred_to_target, &i.target_to_pred);
                        let within = pt.partition_point(|&d| d <= tolerance)
                            + tp.partition_point(|&d| d <= tolerance);
                        within as f64 / (pt.len() + tp.len()) as f64
                    }
                }
            })
            .collect()
    }

    /// A distance metric per image: `value` where both masks are non-empty, the empty-mask
    /// options elsewhere; NaN for a NaN result of `value` (a percentile out of range).
    fn distance_metric(&self, value: impl Fn(&ImageDistances) -> f64) -> Vec<f64> {
        self.images
            .iter()
            .map(|i| match i.emptiness() {
                Emptiness::Both => match self.both_empty {
                    BothEmpty::Nan => f64::NAN,
                    BothEmpty::Perfect => 0.0,
                },
                Emptiness::One => match self.one_empty {
                    OneEmpty::Infinite => f64::INFINITY,
                    OneEmpty::Nan => f64::NAN,
                    OneEmpty::Diagonal => i.diagonal,
                    OneEmpty::Distance(d) => d,
                },
                Emptiness::Neither => value(i),
            })
            .collect()
    }
}

/// Which masks of an image are empty.
enum Emptiness {
    Neither,
    One,
    Both,
}

impl ImageDistances {
    /// The distances of one image pair, masks of `shape` (spatial, row-major) as bytes, nonzero
    /// where set.
    pub(crate) fn new(pred: &[u8], target: &[u8], shape: &[usize], spacing: &[f64]) -> Self {
        let diagonal = shape
            .iter()
            .zip(spacing)
            .map(|(&s, &w)| (w * (s - 1) as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        let Some(crop) = Crop::union_of(pred, target, shape) else {
            return ImageDistances {
                pred_to_target: Vec::new(),
                target_to_pred: Vec::new(),
                diagonal,
            };
        };
        // The two masks, then the two directions, side by side on the crate's pool (the distance
        // transforms inside are parallel too; the rest of each direction is not).
        let (pred_border, target_border) = parallel::join(
            || border(&crop.cut(pred, shape), &crop.shape),
            || border(&crop.cut(target, shape), &crop.shape),
        );
        let (pred_to_target, target_to_pred) = parallel::join(
            || directed(&pred_border, &target_border, &crop.shape, spacing),
            || directed(&target_border, &pred_border, &crop.shape, spacing),
        );
        ImageDistances {
            pred_to_target,
            target_to_pred,
            diagonal,
        }
    }

    fn directed(&self, direction: Direction) -> &[f64] {
        match direction {
            Direction::PredToTarget => &self.pred_to_target,
            Direction::TargetToPred => &self.target_to_pred,
        }
    }

    fn emptiness(&self) -> Emptiness {
        match (
            self.pred_to_target.is_empty(),
            self.target_to_pred.is_empty(),
        ) {
            (false, false) => Emptiness::Neither,
            (true, true) => Emptiness::Both,
            _ => Emptiness::One,
        }
    }
}

/// The distance from every `from` border voxel to the nearest `to` border voxel (both flat
/// indices, ascending), sorted ascending (`+inf` each when `to` is empty).
fn directed(from: &[usize], to: &[usize], shape: &[usize], spacing: &[f64]) -> Vec<f64> {
    if to.is_empty() {
        return vec![f64::INFINITY; from.len()];
    }
    let mut distances: Vec<f64> = squared_distances_to_queries(to, shape, spacing, from)
        .into_iter()
        .map(f64::sqrt)
        .collect();
    distances.sort_unstable_by(f64::total_cmp);
    distances
}

/// `(N, [S1, S2(, S3)])` of a mask shape `[N, 1, S1, S2]` or `[N, 1, S1, S2, S3]`.
pub(crate) fn image_shape(
    dims: &[usize],
    name: &'static str,
) -> Result<(usize, Vec<usize>), SegLossError> {
    if !(dims.len() == 4 || dims.len() == 5) || dims[1] != 1 {
        return Err(SegLossError::UnsupportedShape {
            name,
            shape: dims.to_vec(),
            expected: "[N, 1, S1, S2] or [N, 1, S1, S2, S3]",
        });
    }
    if dims.contains(&0) {
        return Err(SegLossError::EmptyTensor {
            name,
            shape: dims.to_vec(),
        });
    }
    Ok((dims[0], dims[2..].to_vec()))
}

/// The `percentile`-th percentile of ascending `values` with linear interpolation, as
/// `numpy.percentile` computes it (its `lerp`, exact at both ends); NaN for a percentile
/// outside `[0, 100]` or no value.
fn percentile_of(values: &[f64], percentile: f64) -> f64 {
    if values.is_empty() || !(0.0..=100.0).contains(&percentile) {
        return f64::NAN;
    }
    let h = (values.len() - 1) as f64 * percentile / 100.0;
    let low = h.floor() as usize;
    let high = (low + 1).min(values.len() - 1);
    let (a, b, t) = (values[low], values[high], h - low as f64);
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

/// Two ascending lists merged into one.
fn merge(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] <= b[j] {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

fn sum(values: &[f64]) -> f64 {
    values.iter().sum()
}

fn mean(values: &[f64]) -> f64 {
    sum(values) / values.len() as f64
}
