//! Differentiable segmentation losses over burn tensors: the paper's binary losses, and
//! binary and multiclass losses beyond it.
//!
//! Every loss comes in three forms with one naming rule: its options `XConfig` (burn
//! `Config`, every field defaulted), its module `XLoss` (`XConfig::init()`, a burn `Module`
//! whose `forward` computes the loss) and its function `x(logits, targets, &XConfig)`. All three
//! run on the device of their inputs (any burn backend, with or without autodiff) and give the
//! same numbers:
//!
//! | function | config | module | paper |
//! |---|---|---|---|
//! | [`binary_cross_entropy`] | [`BinaryCrossEntropyConfig`] | [`BinaryCrossEntropyLoss`] | CE, Sect. 2 |
//! | [`weighted_cross_entropy`] | [`WeightedCrossEntropyConfig`] | [`WeightedCrossEntropyLoss`] | wCE, Sect. 2 and Eq. 3 |
//! | [`soft_dice`] | [`SoftDiceConfig`] | [`SoftDiceLoss`] | soft Dice, Eq. 1 relaxed |
//! | [`soft_jaccard`] | [`SoftJaccardConfig`] | [`SoftJaccardLoss`] | soft Jaccard, Eq. 1 relaxed |
//! | [`lovasz_sigmoid`] | [`LovaszSigmoidConfig`] | [`LovaszSigmoidLoss`] | Lovász-sigmoid, Sect. 2 |
//! | [`lovasz_hinge`] | [`LovaszHingeConfig`] | [`LovaszHingeLoss`] | Lovász hinge (Berman et al. 2018) |
//! | [`tversky`] | [`TverskyConfig`] | [`TverskyLoss`] | beyond the paper: Tversky index (Salehi et al. 2017) |
//! | [`focal`] | [`FocalConfig`] | [`FocalLoss`] | beyond the paper: focal loss (Lin et al. 2017) |
//! | [`boundary_loss`] | [`BoundaryConfig`] | [`BoundaryLoss`] | beyond the paper: Kervadec et al. 2019 |
//! | [`hausdorff_dt_loss`] | [`HausdorffDtConfig`] | [`HausdorffDtLoss`] | beyond the paper: Karimi & Salcudean 2019 (MONAI `HausdorffDTLoss`) |
//! | [`mcc`] | [`MccConfig`] | [`MccLoss`] | beyond the paper: Matthews correlation (smp `MCCLoss`) |
//! | [`cl_dice`] | [`ClDiceConfig`] | [`ClDiceLoss`] | beyond the paper: clDice, skeleton Dice (Shit et al. 2021) |
//! | [`compound`] | [`CompoundConfig`] | [`CompoundLoss`] | beyond the paper: weighted sums, e.g. Dice + CE |
//! | [`multiclass_overlap`] | [`MulticlassOverlapConfig`] | [`MulticlassOverlapLoss`] | beyond the paper: softmax / multilabel Dice, Jaccard, Tversky |
//! | [`generalized_dice`] | [`GeneralizedDiceConfig`] | [`GeneralizedDiceLoss`] | beyond the paper: Sudre et al. 2017 |
//! | [`lovasz_softmax`] | [`LovaszSoftmaxConfig`] | [`LovaszSoftmaxLoss`] | beyond the paper: Berman et al. 2018, multiclass |
//! | [`multiclass_focal`] | [`MulticlassFocalConfig`] | [`MulticlassFocalLoss`] | beyond the paper: softmax / multilabel focal |
//! | [`multiclass_boundary_loss`] | [`MulticlassBoundaryConfig`] | [`MulticlassBoundaryLoss`] | beyond the paper: Kervadec et al. 2019 |
//! | [`multiclass_hausdorff_dt_loss`] | [`MulticlassHausdorffDtConfig`] | [`MulticlassHausdorffDtLoss`] | beyond the paper: MONAI `HausdorffDTLoss(softmax=True)` |
//! | [`multiclass_cl_dice`] | [`MulticlassClDiceConfig`] | [`MulticlassClDiceLoss`] | beyond the paper: clDice per class (MONAI `SoftclDiceLoss(softmax=True)`) |
//! | [`wasserstein_dice`] | [`WassersteinDiceConfig`] | [`WassersteinDiceLoss`] | beyond the paper: generalized Wasserstein Dice (Fidon et al. 2017) |
//! | [`dice_ce`] | [`DiceCeConfig`] | [`DiceCeLoss`] | beyond the paper: MONAI's `DiceCELoss` preset |
//! | [`dice_focal`] | [`DiceFocalConfig`] | [`DiceFocalLoss`] | beyond the paper: MONAI's `DiceFocalLoss` preset |
//! | [`deep_supervision`] | [`DeepSupervisionConfig`] | [`DeepSupervisionLoss`] | beyond the paper: MONAI's `DeepSupervisionLoss` over any multiclass loss |
//! | [`multiclass_compound`] | [`MulticlassCompoundConfig`] | [`MulticlassCompoundLoss`] | beyond the paper: e.g. nnU-Net's Dice + CE |
//!
//! A loss chosen at run time (from a config file) is a value of [`Loss`] or [`MulticlassLoss`]
//! (one variant per loss above, serializable); [`Loss::compute`] computes it, and its module is
//! the compound of that one term, `CompoundConfig::from(loss).init()?`. Under data-parallel
//! training, a module's `with_shared` and the `*_shared` functions sum the batch statistics
//! over the workers ([`crate::distributed`]).
//!
//! Conventions shared by all of them: inputs `[N, ...]` of rank >= 2 (N images), binary
//! targets of the same shape with values in `[0, 1]` (multiclass: logits `[N, C, ...]`,
//! targets as [`ClassTargets`]), optional [pixel weights](#pixel-weights-and-masks), `from_logits` (default `true`) telling whether the inputs are
//! raw scores or probabilities, per-image losses combined by a [`Reduction`](crate::Reduction).
//!
//! # Pixel weights and masks
//!
//! Every loss takes a per-pixel weight map `w` `[N, 1, ...]` (`>= 0`) attached to its targets:
//! `targets.with_pixel_weights(w)` on binary targets (`Tensor<D>`, through
//! [`WithPixelWeights`]) and on class indices, [`ClassTargets::with_pixel_weights`] on any
//! class targets. A plain tensor still converts into targets without weights
//! ([`BinaryTargets`], [`WeightedClassTargets`]). A pixel of weight `w` counts `w` times: with
//! integer weights every loss equals the loss of the batch with each pixel repeated `w` times
//! (tested), so a 0/1 mask is an ignore region for every loss, binary and soft targets
//! included.
//!
//! | family | with weights | anchor (tested) |
//! |---|---|---|
//! | overlap: Dice, Jaccard, Tversky (focal), multiclass overlap, generalized Dice, MCC, clDice, Wasserstein Dice, the presets' Dice | every sum over pixels weighted: `sum(w p y)`, `sum(w p)`, `sum(w y)` (`sum(w p^2)`, `sum(w |p - y|)`); MCC's pixel count `sum(w)`; generalized Dice's and Wasserstein's class volumes `sum(w y_c)` | a 0/1 mask: MONAI `MaskedDiceLoss`, `GeneralizedDiceLoss` of `p m` and `y m` |
//! | cross-entropy type: BCE, wCE, focal, multiclass focal and cross-entropy | `mean_i(w_i l_i)`: the denominator stays the pixel count (counted pixels with `ignore_index`; the class weights' sum with [`PixelAverage::TorchWeighted`]); wCE's batch prior is `sum(w y) / sum(w)` | torch `binary_cross_entropy_with_logits(weight=w)`, `cross_entropy(reduction="none") * w`, MONAI `FocalLoss` times `w` |
//! | Lovász: sigmoid, hinge, softmax | the Lovász extension of the Jaccard loss of weighted counts (`lovasz_grad` of the running sums of `w y` and `w (1 - y)`); a class is present when `sum(w y_c) > 0` | a 0/1 mask: Berman's code with the masked pixels ignored |
//! | boundary, Hausdorff-DT | `mean_i(w_i t_i)` of the per-pixel term; the distance maps come from the targets as given | the boundary loss of the map times `w`; MONAI's `HausdorffDTLoss` fields |
//!
//! MONAI's `MaskedDiceLoss` multiplies `p` and `y` by the mask, which squares a weight in
//! `sum(p y)`: for a 0/1 mask (its use) the two agree; for other weights the counts above
//! keep one meaning across the losses. (Given class indices, `MaskedDiceLoss` masks them before
//! `to_onehot_y`, which turns masked pixels into class-0 targets; a mask here drops them, as
//! `ignore_index` does: tested equal for the overlap, generalized Dice, Wasserstein and
//! Lovász-softmax losses.)
//!
//! The weights take no gradient. Their shape is checked; their values where a host kernel reads
//! them (a negative weight is [`SegLossError::InvalidTargets`](crate::SegLossError)); a NaN
//! weight gives a NaN loss (a class whose weighted count is NaN counts as present). Any weight
//! `>= 0` is a weight: a 0/255 PNG mask weighs its pixels 255 times, which leaves the overlap
//! and Lovász ratios as they are (up to the smoothing) but multiplies a cross-entropy by 255;
//! divide it by 255 for a 0/1 mask. Every host kernel reads the map in place (no copy); the device path
//! multiplies it into its sums. Two costs of weights: Lovász-softmax's host kernel solves each
//! weighted class problem on its comparison sort (its labelled radix sort reads nothing by
//! pixel, and a weight would be), and the device sort has no weights, so a weighted Lovász
//! loss on a cube device sorts on the host. [`deep_supervision`] resizes the weights with the
//! targets.
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
//!
//! # Modules
//!
//! A loss module holds its config as constant state (no parameter, nothing saved in a record),
//! so it can be a field of a `#[derive(Module)]` model and is `Clone`, `Debug` and `Display`.
//! `forward` panics with the error's message on inputs the loss cannot take, as burn-nn's
//! losses do (a `TrainStep` cannot return an error); `try_forward` returns the error.
//!
//! # Device path
//!
//! On a GPU backend (or with [`Execution::Device`](crate::Execution)) a loss is burn operations
//! that burn's fusion fuses; no loss reads a tensor back to the host there, and the Lovász
//! losses sort on the device with the CubeCL kernels of `segloss::cube` (feature `cube`). One
//! forward and backward pass on wgpu runs these numbers of fused kernels ("over the batch": the
//! blocks that read or write a tensor of the batch's size; "all": every block). Counted with
//! burn's fusion observer (burn 0.22.1) on `[4, 1, 64, 64]` (binary) and `[4, 4, 64, 64]` with
//! class indices (multiclass), and checked by `tests/device_fusion.rs`; the counts can move by a
//! few with what ran before (burn's fusion cache).
//!
//! | loss | kernels over the batch | all | uploads |
//! |---|---|---|---|
//! | [`binary_cross_entropy`], [`focal`] | 4 | 8 | none |
//! | [`weighted_cross_entropy`] | 6 | 12 | none |
//! | [`soft_dice`], [`soft_jaccard`], [`tversky`] | 6 | 11 | none |
//! | [`lovasz_sigmoid`], [`lovasz_hinge`] | 6 + the sort | 9 + the sort | none |
//! | [`compound`] (soft Dice + BCE) | 10 | 20 | none |
//! | [`multiclass_overlap`] | 13 | 25 | class weights other than 1: C values |
//! | [`generalized_dice`] | 12 | 53 | none |
//! | [`lovasz_softmax`] | 25 + the sort | 42 + the sort | `LovaszClasses::List`: C values |
//! | [`multiclass_focal`] (`gamma = 0`) | 15 (14) | 21 (20) | class weights other than 1: C values |
//! | [`multiclass_compound`] (Dice + CE) | 28 | 44 | none |
//! | [`tversky`] with `gamma = 0.75` | 6 | 11 | none |
//! | [`mcc`] | 6 | 15 | none |
//! | [`cl_dice`] | 84 | 110 | none |
//! | [`multiclass_cl_dice`] | 93 | 121 | none |
//! | [`wasserstein_dice`] | 21 | 31 | the distances (`C^2` values) and the class weights (`C`) |
//! | [`dice_ce`] | 27 | 44 | class weights: C values |
//! | [`dice_focal`] | 21 | 39 | class weights: C values |
//!
//! The sort (`segloss::cube::lovasz_weights`) is 8 radix passes of 5 kernels and 3 kernels for
//! the weights, over every row at once.

pub use crate::api::catalog::*;
pub use crate::api::compound::{
    CompoundConfig, CompoundLoss, CompoundTerm, MulticlassCompoundConfig, MulticlassCompoundLoss,
    MulticlassCompoundTerm, compound, compound_shared, multiclass_compound,
    multiclass_compound_shared,
};
pub use crate::api::deep_supervision::{
    DeepSupervisionConfig, DeepSupervisionLoss, DeepSupervisionWeights, deep_supervision,
};
pub use crate::api::modules::SegmentationLoss;
pub use crate::loss::boundary::boundary_loss_with_map;
pub use crate::loss::classes::ClassTargets;
pub use crate::loss::cross_entropy::Prior;
pub use crate::loss::distance_maps::signed_distance_map;
pub use crate::loss::generalized_dice::GeneralizedDiceWeight;
pub use crate::loss::lovasz::lovasz_grad;
pub use crate::loss::lovasz_softmax::LovaszClasses;
pub use crate::loss::multiclass::OverlapScore;
pub use crate::loss::multiclass_focal::PixelAverage;
pub use crate::loss::pixel_weights::{
    BinaryTargets, PixelWeighted, WeightedClassTargets, WithPixelWeights,
};
pub use crate::loss::wasserstein_dice::WassersteinWeighting;
pub use crate::options::{ClassAverage, ClassMode};
