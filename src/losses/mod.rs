//! Differentiable segmentation losses over burn tensors: the paper's binary losses, and
//! binary and multiclass losses beyond it.
//!
//! Every loss is a free function `loss(logits, targets, &Config) -> Result<Tensor<1>, _>`
//! that runs on the device of its inputs (any burn backend, with or without autodiff):
//!
//! | function | config | paper |
//! |---|---|---|
//! | [`binary_cross_entropy`] | [`BinaryCrossEntropyConfig`] | CE, Sect. 2 |
//! | [`weighted_cross_entropy`] | [`WeightedCrossEntropyConfig`] | wCE, Sect. 2 and Eq. 3 |
//! | [`soft_dice`] | [`SoftDiceConfig`] | soft Dice, Eq. 1 relaxed |
//! | [`soft_jaccard`] | [`SoftJaccardConfig`] | soft Jaccard, Eq. 1 relaxed |
//! | [`lovasz_sigmoid`] | [`LovaszConfig`] | Lovász-sigmoid, Sect. 2 |
//! | [`lovasz_hinge`] | [`LovaszConfig`] | Lovász hinge (Berman et al. 2018) |
//! | [`tversky`] | [`TverskyConfig`] | beyond the paper: Tversky index (Salehi et al. 2017) |
//! | [`focal`] | [`FocalConfig`] | beyond the paper: focal loss (Lin et al. 2017) |
//! | [`compound`] | [`CompoundConfig`] | beyond the paper: weighted sums, e.g. Dice + CE |
//! | [`multiclass_overlap`] | [`MulticlassOverlapConfig`] | beyond the paper: softmax / multilabel Dice, Jaccard, Tversky |
//! | [`generalized_dice`] | [`GeneralizedDiceConfig`] | beyond the paper: Sudre et al. 2017 |
//! | [`lovasz_softmax`] | [`LovaszSoftmaxConfig`] | beyond the paper: Berman et al. 2018, multiclass |
//! | [`multiclass_focal`] | [`MulticlassFocalConfig`] | beyond the paper: softmax / multilabel focal |
//! | [`multiclass_compound`] | [`MulticlassCompoundConfig`] | beyond the paper: e.g. nnU-Net's Dice + CE |
//! | [`boundary_loss`], [`multiclass_boundary_loss`] | [`BoundaryLossConfig`], [`MulticlassBoundaryLossConfig`] | beyond the paper: Kervadec et al. 2019 |
//! | [`hausdorff_dt_loss`], [`multiclass_hausdorff_dt_loss`] | [`HausdorffDtLossConfig`], [`MulticlassHausdorffDtLossConfig`] | beyond the paper: Karimi & Salcudean 2019 (MONAI `HausdorffDTLoss`) |
//!
//! Conventions shared by all of them: inputs `[N, ...]` of rank >= 2 (N images), binary
//! targets of the same shape with values in `[0, 1]` (multiclass: logits `[N, C, ...]`,
//! targets as [`ClassTargets`]), `from_logits` (default `true`) telling whether the inputs are
//! raw scores or probabilities, per-image losses combined by a [`Reduction`](crate::Reduction).
//!
//! # Inputs every loss refuses or widens
//!
//! Written once here; each loss's `# Errors` section links to it.
//!
//! - **Channels handed to a binary loss**: logits of rank >= 4 with more than one channel
//!   (`[N, C, ...]`, `C > 1`) are [`SegLossError::UnsupportedShape`](crate::SegLossError),
//!   never one score pooled over the channels. Rank 3 (`[N, H, W]`) is a 2D image without a
//!   channel axis. Several labels or classes go to [`multiclass_overlap`] (with
//!   [`ClassMode::Multilabel`] or [`ClassMode::Softmax`]) and the other multiclass losses.
//! - **Binary targets outside `[0, 1]`** (a PNG mask read as 0/255): on the host path (the
//!   default on flex and ndarray) the kernels find them in the pass that reads the targets and
//!   return [`SegLossError::InvalidTargets`](crate::SegLossError); the Lovász losses, which
//!   read their targets on every path of the CPU backends, also refuse non-binary ones, and
//!   so does [`hausdorff_dt_loss`], which reads its targets' masks. The device path (and the
//!   batch statistics of the `*_shared` losses) reads nothing back (no sync): check a batch
//!   there once with [`validate_targets`](crate::validate_targets), the opt-in form of the same
//!   check. A NaN target is not an error: it gives a NaN loss, as a NaN logit does.
//! - **Class indices of any value** (`-7`, `i64::MAX`, `i64::MIN`, in any integer dtype):
//!   an index outside `0..C` that is not `ignore_index` belongs to no class (every class
//!   target 0 at that pixel), on every path; check them with
//!   [`validate_class_indices`](crate::validate_class_indices).
//! - **Half precision** (f16, bf16 logits): computed in f32 (the cast is part of the autodiff
//!   graph, so the gradient reaches the logits in their dtype), as PyTorch's autocast computes
//!   losses; the loss is f32. f16 cannot hold the probability clamps (`f32::MIN_POSITIVE` is 0
//!   there) nor sum an image.

mod boundary;
pub(crate) mod classes;
mod compound;
mod cross_entropy;
mod dice;
mod distance_maps;
mod focal;
mod generalized_dice;
mod hausdorff_dt;
mod jaccard;
mod lovasz;
mod lovasz_softmax;
pub mod modules;
mod multiclass;
mod multiclass_focal;
pub(crate) mod overlap;
mod tversky;

pub use boundary::{
    BoundaryLossConfig, MulticlassBoundaryLossConfig, boundary_loss, boundary_loss_with_map,
    multiclass_boundary_loss,
};
pub use classes::{ClassAverage, ClassMode, ClassTargets};
pub use compound::{
    CompoundConfig, CompoundTerm, Loss, MulticlassCompoundConfig, MulticlassCompoundTerm,
    MulticlassLoss, compound, compound_shared, multiclass_compound, multiclass_compound_shared,
};
pub use cross_entropy::{
    BinaryCrossEntropyConfig, Prior, WeightedCrossEntropyConfig, binary_cross_entropy,
    weighted_cross_entropy,
};
pub use dice::{SoftDiceConfig, soft_dice};
pub use distance_maps::signed_distance_map;
pub use focal::{FocalConfig, focal};
pub use generalized_dice::{GeneralizedDiceConfig, GeneralizedDiceWeight, generalized_dice};
pub use hausdorff_dt::{
    HausdorffDtLossConfig, MulticlassHausdorffDtLossConfig, hausdorff_dt_loss,
    multiclass_hausdorff_dt_loss,
};
pub use jaccard::{SoftJaccardConfig, soft_jaccard};
pub use lovasz::{LovaszConfig, lovasz_grad, lovasz_hinge, lovasz_sigmoid};
pub use lovasz_softmax::{LovaszClasses, LovaszSoftmaxConfig, lovasz_softmax};
pub use modules::{
    BinaryCrossEntropyLoss, BoundaryLoss, CompoundLoss, FocalLoss, GeneralizedDiceLoss,
    HausdorffDtLoss, LovaszHingeLoss, LovaszSigmoidLoss, LovaszSoftmaxLoss, MulticlassBoundaryLoss,
    MulticlassCompoundLoss, MulticlassFocalLoss, MulticlassHausdorffDtLoss, MulticlassOverlapLoss,
    SegmentationLoss, SoftDiceLoss, SoftJaccardLoss, TverskyLoss, WeightedCrossEntropyLoss,
};
pub use multiclass::{MulticlassOverlapConfig, OverlapScore, multiclass_overlap};
pub use multiclass_focal::{MulticlassFocalConfig, multiclass_focal};
pub use tversky::{TverskyConfig, tversky};

use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;

/// `p = sigmoid(x)` for logits (NaN kept: [`sigmoid_keeping_nan`]), the input itself for
/// probabilities.
pub(crate) fn probabilities<const D: usize>(input: Tensor<D>, from_logits: bool) -> Tensor<D> {
    if from_logits {
        sigmoid_keeping_nan(input)
    } else {
        input
    }
}

/// `sigmoid(x)`, NaN where `x` is NaN on every backend.
///
/// burn 0.22's wgpu `sigmoid` turns a NaN logit into a number (measured on Mesa's lavapipe:
/// soft Dice of a batch with one NaN logit came out finite), so a diverged run would go on
/// unnoticed. Adding `x` where it is NaN and 0 elsewhere (`mask_fill`, so an infinite logit
/// adds 0, not `inf * 0`) restores the NaN; the term is exactly 0 at every other pixel, and so
/// is its gradient. The mask is `x == x` (false only for NaN) rather than `!is_nan(x)`:
/// burn 0.22's fusion fuses a float comparison into the sigmoid's kernel, but runs `is_nan` and
/// the boolean `not` as two kernels of their own over the whole batch.
pub(crate) fn sigmoid_keeping_nan<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let not_nan = x.clone().equal(x.clone());
    sigmoid(x.clone()) + x.mask_fill(not_nan, 0.0)
}
