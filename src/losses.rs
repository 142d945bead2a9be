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
//! | [`boundary_loss`], [`multiclass_boundary_loss`] | [`BoundaryConfig`], [`MulticlassBoundaryConfig`] | beyond the paper: Kervadec et al. 2019 |
//! | [`hausdorff_dt_loss`], [`multiclass_hausdorff_dt_loss`] | [`HausdorffDtConfig`], [`MulticlassHausdorffDtConfig`] | beyond the paper: Karimi & Salcudean 2019 (MONAI `HausdorffDTLoss`) |
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

pub use crate::api::catalog::*;
pub use crate::api::compound::{
    CompoundConfig, CompoundLoss, CompoundTerm, MulticlassCompoundConfig, MulticlassCompoundLoss,
    MulticlassCompoundTerm, compound, compound_shared, multiclass_compound,
    multiclass_compound_shared,
};
pub use crate::api::modules::SegmentationLoss;
pub use crate::loss::boundary::boundary_loss_with_map;
pub use crate::loss::classes::{ClassAverage, ClassMode, ClassTargets};
pub use crate::loss::cross_entropy::Prior;
pub use crate::loss::distance_maps::signed_distance_map;
pub use crate::loss::generalized_dice::GeneralizedDiceWeight;
pub use crate::loss::lovasz::lovasz_grad;
pub use crate::loss::lovasz_softmax::LovaszClasses;
pub use crate::loss::multiclass::OverlapScore;
