//! Exact per-image confusion counts.

use burn::tensor::{Bool, Int, Tensor};

use crate::check;
use crate::engine::host::read_counts;
use crate::error::SegLossError;
use crate::tensors::rows;

/// True/false positives/negatives per image, exact (`u64`).
///
/// The counts are integer sums on the device (no float accumulation, so they stay exact far
/// beyond the 2^24 pixels where an f32 sum starts to drop units); only `3N` integers are read
/// back. burn's integer sums use the backend's int type (i64 on ndarray, i32 on flex and
/// wgpu, measured with burn 0.22.1): an image of more than 2^31 - 1 pixels on a backend with
/// 32-bit integers is an error ([`SegLossError::TooLarge`]), never a wrapped count.
///
/// The four vectors always have one entry per image: the fields are private, and
/// [`Confusion::new`] checks the lengths of counts built by hand.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Confusion {
    tp: Vec<u64>,
    fp: Vec<u64>,
    fn_: Vec<u64>,
    tn: Vec<u64>,
}

impl Confusion {
    /// Counts given per image (one entry per image in each vector), e.g. accumulated
    /// elsewhere or read from a file.
    ///
    /// # Errors
    /// [`SegLossError::ShapeMismatch`] when the vectors differ in length;
    /// [`SegLossError::TooLarge`] when an image's `TP + FP + FN + TN` overflows `u64`.
    pub fn new(
        tp: Vec<u64>,
        fp: Vec<u64>,
        fn_: Vec<u64>,
        tn: Vec<u64>,
    ) -> Result<Self, SegLossError> {
        for (name, v) in [("fp", &fp), ("fn_", &fn_), ("tn", &tn)] {
            if v.len() != tp.len() {
                return Err(SegLossError::ShapeMismatch {
                    left_name: "tp",
                    left: vec![tp.len()],
                    right_name: name,
                    right: vec![v.len()],
                });
            }
        }
        let overflows = (0..tp.len()).any(|i| {
            tp[i]
                .checked_add(fp[i])
                .and_then(|s| s.checked_add(fn_[i]))
                .and_then(|s| s.checked_add(tn[i]))
                .is_none()
        });
        if overflows {
            return Err(SegLossError::TooLarge {
                what: "the pixels of an image (TP + FP + FN + TN)",
                count: u64::MAX,
                limit: u64::MAX,
            });
        }
        Ok(Confusion { tp, fp, fn_, tn })
    }

    /// True positives per image: predicted and target foreground.
    pub fn tp(&self) -> &[u64] {
        &self.tp
    }

    /// False positives per image: predicted foreground, target background.
    pub fn fp(&self) -> &[u64] {
        &self.fp
    }

    /// False negatives per image: predicted background, target foreground.
    pub fn fn_(&self) -> &[u64] {
        &self.fn_
    }

    /// True negatives per image.
    pub fn tn(&self) -> &[u64] {
        &self.tn
    }

    /// Pushes one image's counts (the constructors' own use: their counts are consistent).
    pub(crate) fn push(&mut self, tp: u64, fp: u64, fn_: u64, tn: u64) {
        self.tp.push(tp);
        self.fp.push(fp);
        self.fn_.push(fn_);
        self.tn.push(tn);
    }

    /// Counts per image for boolean masks `[N, ...]` (rank >= 2) of the same shape.
    ///
    /// # Errors
    /// Shape mismatch, rank < 2, a zero-sized dimension or different devices;
    /// [`SegLossError::TooLarge`] for more pixels per image than the backend's integers count.
    pub fn from_masks<const D: usize>(
        pred: Tensor<D, Bool>,
        target: Tensor<D, Bool>,
    ) -> Result<Self, SegLossError> {
        check::same_shape_and_device(&pred, "pred", &target, "target")?;
        let (n, pixels) = check::batch_shape(&pred, "pred")?;
        let p = rows(pred.int());
        check::countable(pixels, p.dtype())?;
        let y = rows(target.int());
        let sums = |t: Tensor<2, Int>| t.sum_dim(1).reshape([n]);
        let tp = sums(p.clone().mul(y.clone()));
        // One read of 3N integers: [tp..., |pred|..., |target|...].
        let counts = read_counts(Tensor::cat(vec![tp, sums(p), sums(y)], 0), "the counts")?;
        let (tp, rest) = counts.split_at(n);
        let (predicted, target) = rest.split_at(n);
        let mut c = Confusion::default();
        for i in 0..n {
            let (t, p, y) = (tp[i] as u64, predicted[i] as u64, target[i] as u64);
            // |pred ∪ target| = p + y - t <= pixels; add t first so nothing underflows.
            c.push(t, p - t, y - t, pixels as u64 + t - p - y);
        }
        Ok(c)
    }

    /// Counts per image for float logits and hard float targets: the prediction is
    /// `logits > threshold` ([`DEFAULT_LOGIT_THRESHOLD`](super::DEFAULT_LOGIT_THRESHOLD) is
    /// 0), the target `targets > 0.5`.
    ///
    /// # Errors
    /// As [`Confusion::from_masks`], plus [`SegLossError::InvalidTargets`] when a target is
    /// neither 0 nor 1 (counted on the device; one extra read of a single integer).
    pub fn from_logits<const D: usize>(
        logits: Tensor<D>,
        targets: Tensor<D>,
        threshold: f64,
    ) -> Result<Self, SegLossError> {
        let targets = check::binary_pair(&logits, targets)?;
        let not_binary = targets
            .clone()
            .not_equal_elem(0.0)
            .bool_and(targets.clone().not_equal_elem(1.0))
            .int()
            .sum();
        let not_binary = read_counts(not_binary, "the count of non-binary targets")?[0];
        if not_binary > 0 {
            return Err(SegLossError::InvalidTargets {
                reason: format!("{not_binary} target values are neither 0 nor 1"),
            });
        }
        Self::from_masks(
            super::threshold_logits(logits, threshold),
            targets.greater_elem(0.5),
        )
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.tp.len()
    }

    /// `true` when there is no image.
    pub fn is_empty(&self) -> bool {
        self.tp.is_empty()
    }

    /// Pixels of image `i`, `d = TP + FP + FN + TN`.
    pub fn pixels(&self, i: usize) -> u64 {
        self.tp[i] + self.fp[i] + self.fn_[i] + self.tn[i]
    }

    /// The counts summed over all images, as a single-image `Confusion`: scores of it are
    /// the *micro* (batch, global) averages, e.g. `c.micro().dice(policy)[0]`.
    pub fn micro(&self) -> Confusion {
        let total = |v: &[u64]| vec![v.iter().sum()];
        Confusion {
            tp: total(&self.tp),
            fp: total(&self.fp),
            fn_: total(&self.fn_),
            tn: total(&self.tn),
        }
    }

    /// Appends the images of `other` (e.g. to accumulate a whole data set batch by batch).
    pub fn extend(&mut self, other: &Confusion) {
        self.tp.extend_from_slice(&other.tp);
        self.fp.extend_from_slice(&other.fp);
        self.fn_.extend_from_slice(&other.fn_);
        self.tn.extend_from_slice(&other.tn);
    }
}
