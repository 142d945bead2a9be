//! Exact per-image, per-class confusion counts of class-index maps, and the multiclass
//! averages of the scores computed from them.

use burn::tensor::{Int, Tensor};

use super::{Confusion, mean_over_images};
use crate::check;
use crate::engine::host::read_counts;
use crate::error::SegLossError;
use crate::options::EmptyPolicy;
use crate::tensors::one_hot;

/// One-vs-rest confusion counts of every class, per image: `classes()[c]` holds the binary
/// [`Confusion`] of "class `c`" against "any other class" for each image, so every binary
/// score (Dice, Jaccard, Hamming, weighted Hamming) is available per class, and
/// [`ClassConfusion::micro`] and the `macro_*` methods average over classes.
///
/// Every per-class result is indexed `[image][class]`, as in
/// [`ClassSurfaceDistances`](super::surface::ClassSurfaceDistances): with `TP[n][c]`,
/// `FP[n][c]` and `FN[n][c]` the one-vs-rest counts of class `c` in image `n`,
/// `dice(empty)[n][c] = 2 TP[n][c] / (2 TP[n][c] + FP[n][c] + FN[n][c])` and
/// `jaccard(empty)[n][c] = TP[n][c] / (TP[n][c] + FP[n][c] + FN[n][c])`, `empty` deciding
/// `0/0` (class `c` absent from both maps of image `n`). Only [`ClassConfusion::classes`] is
/// indexed by class first: it is the list of the classes' counts, not a table of results.
///
/// Pixels whose target is `ignore_index` count nowhere (`d` = the image's other pixels).
/// Counted on the device with integer sums (exact, as [`Confusion`]); `3NC + N` integers are
/// read back.
///
/// ```
/// # #[cfg(feature = "flex")] {
/// use burn::tensor::{Device, Int, Tensor};
/// use segloss::EmptyPolicy;
/// use segloss::metrics::ClassConfusion;
/// let device = Device::flex();
/// let pred = Tensor::<3, Int>::from_ints([[[0, 1, 1, 2]]], &device);
/// let target = Tensor::<3, Int>::from_ints([[[0, 1, 2, 2]]], &device);
/// let c = ClassConfusion::from_indices(pred, target, 3, None)?;
/// // One image, [image][class]: class 0 TP 1 -> Dice 1; class 1: TP 1, FP 1, FN 0 -> Dice
/// // 2/3; class 2: TP 1, FP 0, FN 1 -> Dice 2/3.
/// assert_eq!(c.dice(EmptyPolicy::Nan), vec![vec![1.0, 2.0 / 3.0, 2.0 / 3.0]]);
/// assert_eq!(c.jaccard(EmptyPolicy::Nan)[0][1], 0.5);
/// assert_eq!(c.macro_dice(EmptyPolicy::Nan, true), vec![(1.0 + 2.0 / 3.0 + 2.0 / 3.0) / 3.0]);
/// // Micro: 3 of 4 pixels right, Dice = accuracy = 0.75.
/// assert_eq!(c.micro().dice(EmptyPolicy::Nan), vec![0.75]);
/// # }
/// # Ok::<(), segloss::SegLossError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClassConfusion {
    classes: Vec<Confusion>,
}

impl ClassConfusion {
    /// The per-class counts given by hand: `classes[c]` is the one-vs-rest [`Confusion`] of
    /// class `c`, all over the same images.
    ///
    /// # Errors
    /// [`SegLossError::ShapeMismatch`] when the classes count different numbers of images.
    pub fn new(classes: Vec<Confusion>) -> Result<Self, SegLossError> {
        if let Some(first) = classes.first()
            && let Some(other) = classes.iter().find(|c| c.len() != first.len())
        {
            return Err(SegLossError::ShapeMismatch {
                left_name: "images of class 0",
                left: vec![first.len()],
                right_name: "images of another class",
                right: vec![other.len()],
            });
        }
        Ok(ClassConfusion { classes })
    }

    /// `classes()[c]`: the per-image counts of class `c` against the rest. This list of classes
    /// is indexed by class; the per-class results ([`ClassConfusion::dice`],
    /// [`ClassConfusion::jaccard`]) are `[image][class]`.
    pub fn classes(&self) -> &[Confusion] {
        &self.classes
    }

    /// Counts per image and class for a predicted and a target class-index map of the same
    /// shape `[N, ...]` (rank >= 2), with `classes` classes (`C >= 1`). A target pixel equal to
    /// `ignore_index` is left out of every count.
    ///
    /// # Errors
    /// Shape mismatch, rank < 2, a zero-sized dimension, different devices, `classes = 0`,
    /// [`SegLossError::TooLarge`] for more pixels per image than the backend's integers count,
    /// [`SegLossError::TooLarge`] for `classes` past `i32::MAX` or when `N x classes x pixels`
    /// (the one-hot masks) overflows,
    /// and [`SegLossError::InvalidTargets`] when a target (not `ignore_index`) or a prediction
    /// of any value lies outside `0..classes` (found from the counts, no extra read).
    pub fn from_indices<const D: usize>(
        pred: Tensor<D, Int>,
        target: Tensor<D, Int>,
        classes: usize,
        ignore_index: Option<i64>,
    ) -> Result<Self, SegLossError> {
        check::same_shape_and_device(&pred, "pred", &target, "target")?;
        let (n, pixels) = (pred.dims()[0], pred.dims()[1..].iter().product());
        if classes == 0 {
            return Err(SegLossError::InvalidParameter {
                name: "classes",
                value: 0.0,
                allowed: "at least 1",
            });
        }
        check::class_count(classes)?;
        check::element_count(&[n, classes, pixels], "class count times pixels")?;
        let full = [n, classes, pixels];
        let (pred, _) = one_hot(pred.reshape([n as i64, 1, -1]), classes, None);
        let device = target.device();
        let (target, kept) = one_hot(target.reshape([n as i64, 1, -1]), classes, ignore_index);
        let valid = match kept {
            Some(kept) => kept.int(),
            None => Tensor::<3, Int>::ones([n, 1, pixels], &device),
        };
        let p = pred.int().mul(valid.clone().expand(full));
        let y = target.int().mul(valid.clone().expand(full));
        check::countable(pixels, p.dtype())?;
        let sums = |t: Tensor<3, Int>| t.sum_dim(2).reshape([n * classes]);
        let counts = read_counts(
            Tensor::cat(
                vec![
                    sums(p.clone().mul(y.clone())),
                    sums(p),
                    sums(y),
                    valid.sum_dim(2).reshape([n]),
                ],
                0,
            ),
            "the class confusion counts",
        )?;
        let at = |block: usize, image: usize, class: usize| {
            counts[block * n * classes + image * classes + class] as u64
        };
        let valid_pixels = |image: usize| counts[3 * n * classes + image] as u64;
        // Every counted pixel is in exactly one class of each map, unless an index is out of
        // range.
        for image in 0..n {
            for (block, what) in [(1, "a prediction"), (2, "a target")] {
                let total: u64 = (0..classes).map(|c| at(block, image, c)).sum();
                if total != valid_pixels(image) {
                    return Err(SegLossError::InvalidTargets {
                        reason: format!(
                            "{} pixels of image {image} have {what} outside 0..{classes}{}",
                            valid_pixels(image) - total,
                            if block == 2 && ignore_index.is_some() {
                                " that is not the ignore_index"
                            } else {
                                ""
                            }
                        ),
                    });
                }
            }
        }
        let per_class = (0..classes)
            .map(|c| {
                let mut confusion = Confusion::default();
                for image in 0..n {
                    let (tp, predicted, actual) =
                        (at(0, image, c), at(1, image, c), at(2, image, c));
                    confusion.push(
                        tp,
                        predicted - tp,
                        actual - tp,
                        valid_pixels(image) + tp - predicted - actual,
                    );
                }
                confusion
            })
            .collect();
        Ok(ClassConfusion { classes: per_class })
    }

    /// The counts summed over classes per image, as a binary [`Confusion`]: its scores are the
    /// *micro* averages over classes (every wrong pixel is one FP and one FN, so the micro
    /// Dice is the pixel accuracy over the counted pixels).
    pub fn micro(&self) -> Confusion {
        let mut total = Confusion::default();
        let images = self.classes.first().map_or(0, Confusion::len);
        for image in 0..images {
            let sum = |f: fn(&Confusion) -> &[u64]| -> u64 {
                self.classes.iter().map(|c| f(c)[image]).sum()
            };
            total.push(
                sum(Confusion::tp),
                sum(Confusion::fp),
                sum(Confusion::fn_),
                sum(Confusion::tn),
            );
        }
        total
    }

    /// Dice per image and class, `[image][class]`: `2TP / (2TP + FP + FN)` of class `c`
    /// against the rest in image `n` at `[n][c]` (Eq. 1 of each one-vs-rest problem), `0/0` by
    /// `empty`.
    pub fn dice(&self, empty: EmptyPolicy) -> Vec<Vec<f64>> {
        self.per_class(|c| c.dice(empty))
    }

    /// Jaccard per image and class, `[image][class]`: `TP / (TP + FP + FN)` of class `c`
    /// against the rest in image `n` at `[n][c]`, `0/0` by `empty`.
    pub fn jaccard(&self, empty: EmptyPolicy) -> Vec<Vec<f64>> {
        self.per_class(|c| c.jaccard(empty))
    }

    /// The macro Dice per image: the mean over classes (class 0 left out unless
    /// `include_background`) of the per-class Dice, classes scored NaN (by
    /// [`EmptyPolicy::Nan`]: absent from both maps) skipped; NaN when none is left.
    pub fn macro_dice(&self, empty: EmptyPolicy, include_background: bool) -> Vec<f64> {
        macro_average(&self.dice(empty), include_background)
    }

    /// The macro Jaccard per image, as [`ClassConfusion::macro_dice`].
    pub fn macro_jaccard(&self, empty: EmptyPolicy, include_background: bool) -> Vec<f64> {
        macro_average(&self.jaccard(empty), include_background)
    }

    /// A per-class score (one value per image each) transposed to `[image][class]`.
    fn per_class(&self, score: impl Fn(&Confusion) -> Vec<f64>) -> Vec<Vec<f64>> {
        let per_class: Vec<Vec<f64>> = self.classes.iter().map(score).collect();
        let images = self.classes.first().map_or(0, Confusion::len);
        (0..images)
            .map(|n| per_class.iter().map(|values| values[n]).collect())
            .collect()
    }
}

/// Per image, the NaN-skipping mean over the classes of `scores` `[image][class]` (class 0
/// left out unless `include_background`).
fn macro_average(scores: &[Vec<f64>], include_background: bool) -> Vec<f64> {
    let first = usize::from(!include_background);
    scores
        .iter()
        .map(|classes| mean_over_images(&classes[first.min(classes.len())..], true))
        .collect()
}
