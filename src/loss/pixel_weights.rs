//! Per-pixel weights attached to the targets: a mask (an ignore region for the binary losses
//! and for soft targets) or a weight map (a border weighting, a confidence map), `[N, 1, ...]`,
//! `>= 0`. A pixel of weight `w` counts `w` times in every loss; what that means for each
//! family of losses, and the anchors, are in the [public docs](crate::losses#pixel-weights-and-masks)
//! (written once there). Here: the targets types, their conversions, the shape check, and the
//! one helper the device paths multiply with.

use burn::tensor::{Int, Tensor};

use crate::check;
use crate::error::SegLossError;
use crate::loss::classes::ClassTargets;

/// Targets with an optional per-pixel weight map `[N, 1, ...]` (see the
/// [module docs](crate::losses#pixel-weights-and-masks) for what a weight does to each loss).
/// A plain target converts into this with no weights, so every loss still takes a tensor.
#[derive(Clone, Debug)]
pub struct PixelWeighted<T, const D: usize> {
    /// The targets.
    pub targets: T,
    /// The weight of each pixel, `[N, 1, ...]`, `>= 0` (`None`: every pixel weighs 1).
    pub pixel_weights: Option<Tensor<D>>,
}

/// The targets of a binary loss: a tensor of the logits' shape with values in `[0, 1]`, and
/// optional pixel weights. `Tensor<D>` converts into it; `targets.with_pixel_weights(w)`
/// ([`WithPixelWeights`]) attaches weights.
pub type BinaryTargets<const D: usize> = PixelWeighted<Tensor<D>, D>;

/// The targets of a multiclass loss: [`ClassTargets`] (class indices or per-class values) and
/// optional pixel weights. Class indices, per-class values and [`ClassTargets`] convert into
/// it; [`ClassTargets::with_pixel_weights`] attaches weights.
pub type WeightedClassTargets<const D: usize> = PixelWeighted<ClassTargets<D>, D>;

impl<T, const D: usize> PixelWeighted<T, D> {
    /// `targets` without pixel weights (every pixel weighs 1); add them with
    /// [`with_pixel_weights`](Self::with_pixel_weights).
    pub fn new(targets: T) -> Self {
        PixelWeighted {
            targets,
            pixel_weights: None,
        }
    }

    /// The same targets with `weights` (`[N, 1, ...]`, `>= 0`) as their pixel weights,
    /// replacing any earlier ones.
    pub fn with_pixel_weights(self, weights: Tensor<D>) -> Self {
        PixelWeighted {
            targets: self.targets,
            pixel_weights: Some(weights),
        }
    }
}

impl<const D: usize> From<Tensor<D>> for BinaryTargets<D> {
    fn from(targets: Tensor<D>) -> Self {
        PixelWeighted::new(targets)
    }
}

impl<const D: usize> From<ClassTargets<D>> for WeightedClassTargets<D> {
    fn from(targets: ClassTargets<D>) -> Self {
        PixelWeighted::new(targets)
    }
}

impl<const D: usize> From<Tensor<D, Int>> for WeightedClassTargets<D> {
    fn from(indices: Tensor<D, Int>) -> Self {
        ClassTargets::Indices(indices).into()
    }
}

impl<const D: usize> From<Tensor<D>> for WeightedClassTargets<D> {
    fn from(per_class: Tensor<D>) -> Self {
        ClassTargets::PerClass(per_class).into()
    }
}

impl<const D: usize> ClassTargets<D> {
    /// These targets with per-pixel weights `[N, 1, ...]` (`>= 0`): see [`PixelWeighted`].
    pub fn with_pixel_weights(self, weights: Tensor<D>) -> WeightedClassTargets<D> {
        WeightedClassTargets::from(self).with_pixel_weights(weights)
    }
}

/// `.with_pixel_weights(w)` on a plain target tensor: binary targets (`Tensor<D>`) or class
/// indices (`Tensor<D, Int>`). Per-class float targets go through
/// [`ClassTargets::PerClass`]`(y).with_pixel_weights(w)`, since a float tensor alone reads as
/// binary targets.
pub trait WithPixelWeights<const D: usize> {
    /// The targets with their weights.
    type Weighted;
    /// These targets with per-pixel weights `[N, 1, ...]` (`>= 0`): see [`PixelWeighted`].
    fn with_pixel_weights(self, weights: Tensor<D>) -> Self::Weighted;
}

impl<const D: usize> WithPixelWeights<D> for Tensor<D> {
    type Weighted = BinaryTargets<D>;
    fn with_pixel_weights(self, weights: Tensor<D>) -> BinaryTargets<D> {
        BinaryTargets::from(self).with_pixel_weights(weights)
    }
}

impl<const D: usize> WithPixelWeights<D> for Tensor<D, Int> {
    type Weighted = WeightedClassTargets<D>;
    fn with_pixel_weights(self, weights: Tensor<D>) -> WeightedClassTargets<D> {
        ClassTargets::Indices(self).with_pixel_weights(weights)
    }
}

/// The pixel weights checked against `logits` (already widened): the logits' shape with one
/// channel (`[N, 1, ...]`; for a binary loss that is the logits' own shape, `[N, H, W]`
/// included, `per_pixel_of_logits`), the same device, cast to the logits' dtype and detached
/// (weights take no gradient). Their values are checked where a host kernel reads them
/// (finite, `>= 0`); on the device a NaN weight gives a NaN loss.
pub(crate) fn checked_weights<const D: usize>(
    logits: &Tensor<D>,
    weights: Option<Tensor<D>>,
    per_pixel_of_logits: bool,
) -> Result<Option<Tensor<D>>, SegLossError> {
    let Some(weights) = weights else {
        return Ok(None);
    };
    let mut expected = logits.dims();
    if !per_pixel_of_logits {
        expected[1] = 1;
    }
    if weights.dims() != expected {
        return Err(SegLossError::ShapeMismatch {
            left_name: "pixel weights (expected the logits' shape with one channel)",
            left: weights.dims().to_vec(),
            right_name: "logits",
            right: logits.dims().to_vec(),
        });
    }
    check::same_device(logits, "logits", &weights, "pixel weights")?;
    Ok(Some(check::in_dtype(weights, logits.dtype()).detach()))
}

impl<const D: usize> BinaryTargets<D> {
    /// The inputs of a binary loss checked ([`check::binary_inputs`]) with their weights
    /// ([`checked_weights`]): the logits (widened), the targets and the weights in the logits'
    /// dtype.
    #[allow(clippy::type_complexity)]
    pub(crate) fn checked(
        self,
        logits: Tensor<D>,
    ) -> Result<(Tensor<D>, Tensor<D>, Option<Tensor<D>>), SegLossError> {
        let (logits, targets) = check::binary_inputs(logits, self.targets)?;
        let weights = checked_weights(&logits, self.pixel_weights, true)?;
        Ok((logits, targets, weights))
    }
}

impl<const D: usize> WeightedClassTargets<D> {
    /// The inputs of a multiclass loss checked ([`ClassTargets::checked`]) with their weights
    /// `[N, 1, ...]` ([`checked_weights`]).
    #[allow(clippy::type_complexity)]
    pub(crate) fn checked(
        self,
        logits: Tensor<D>,
        ignore_index: Option<i64>,
    ) -> Result<(Tensor<D>, ClassTargets<D>, Option<Tensor<D>>), SegLossError> {
        let (logits, targets) = self.targets.checked(logits, ignore_index)?;
        let weights = checked_weights(&logits, self.pixel_weights, false)?;
        Ok((logits, targets, weights))
    }
}

/// `t * w` when there are weights (`w` expanded along its axes of size 1, the channels of
/// `[N, 1, P]` weights), `t` otherwise.
pub(crate) fn weighted<const K: usize>(t: Tensor<K>, w: Option<&Tensor<K>>) -> Tensor<K> {
    match w {
        Some(w) if w.dims() == t.dims() => t.mul(w.clone()),
        Some(w) => {
            let dims = t.dims();
            t.mul(w.clone().expand(dims))
        }
        None => t,
    }
}

/// Pixel weights `[N, 1, ...]` as `[N, 1, P]`, beside class rows `[N, C, P]`.
pub(crate) fn class_rows_of<const D: usize>(weights: Option<Tensor<D>>) -> Option<Tensor<3>> {
    weights.map(|w| {
        let n = w.dims()[0] as i64;
        w.reshape([n, 1, -1])
    })
}
