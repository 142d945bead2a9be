//! Exact per-image confusion counts.

use burn::tensor::{Bool, Int, Tensor};

use crate::SegLossError;
use crate::check;
use crate::losses::rows;

/// True/false positives/negatives per image, exact (`u64`).
///
/// The counts are integer sums on the device (no float accumulation, so they stay exact far
/// beyond the 2^24 pixels where an f32 sum starts to drop units); only `3N` integers are read
/// back. burn's integer sums use the backend's int type (i64 on the CPU backends, i32 on
/// wgpu), so one image may hold up to 2^31 - 1 pixels on every backend.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Confusion {
    /// True positives per image: predicted and target foreground.
    pub tp: Vec<u64>,
    /// False positives per image: predicted foreground, target background.
    pub fp: Vec<u64>,
    /// False negatives per image: predicted background, target foreground.
    pub fn_: Vec<u64>,
    /// True negatives per image.
    pub tn: Vec<u64>,
}

impl Confusion {
    /// Counts per image for boolean masks `[N, ...]` (rank >= 2) of the same shape.
    ///
    /// # Errors
    /// Shape mismatch, rank < 2, a zero-sized dimension or different devices.
    pub fn from_masks<const D: usize>(
        pred: Tensor<D, Bool>,
        target: Tensor<D, Bool>,
    ) -> Result<Self, SegLossError> {
        check::same_shape_and_device(&pred, "pred", &target, "target")?;
        let (n, pixels) = check::batch_shape(&pred, "pred")?;
        let p = rows(pred.int());
        let y = rows(target.int());
        let sums = |t: Tensor<2, Int>| t.sum_dim(1).reshape([n]);
        let tp = sums(p.clone().mul(y.clone()));
        // One read of 3N integers: [tp..., |pred|..., |target|...].
        let counts = Tensor::cat(vec![tp, sums(p), sums(y)], 0)
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .expect("converted TensorData holds i64");
        let (tp, rest) = counts.split_at(n);
        let (predicted, target) = rest.split_at(n);
        let mut c = Confusion::default();
        for i in 0..n {
            let (t, p, y) = (tp[i] as u64, predicted[i] as u64, target[i] as u64);
            c.tp.push(t);
            c.fp.push(p - t);
            c.fn_.push(y - t);
            // |pred ∪ target| = p + y - t <= pixels; add t first so nothing underflows.
            c.tn.push(pixels as u64 + t - p - y);
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
            .sum()
            .into_scalar::<i64>();
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
