//! Options shared by several losses and metrics: how per-image losses are reduced, whether
//! statistics are aggregated per image or over the batch, and what an undefined `0/0` score is.

use burn::config::Config;
use burn::tensor::Tensor;

/// How the per-image losses are combined into the returned tensor.
///
/// Applied once, after the loss has been computed per image (see [`Aggregation`]).
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// The mean of the per-image losses, shape `[1]` (the default everywhere).
    Mean,
    /// The sum of the per-image losses, shape `[1]`.
    Sum,
    /// No reduction: one loss per image, shape `[N]` (shape `[1]` when the loss is computed
    /// over the whole batch at once, e.g. [`Aggregation::Batch`]).
    None,
}

impl Reduction {
    /// Reduces a vector of per-image losses `[N]`.
    pub(crate) fn apply(self, per_image: Tensor<1>) -> Tensor<1> {
        match self {
            Reduction::Mean => per_image.mean(),
            Reduction::Sum => per_image.sum(),
            Reduction::None => per_image,
        }
    }
}

/// Where the soft statistics of an overlap loss (intersection, sums) are accumulated.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// Statistics per image, one loss per image, then [`Reduction`] (the default; as in
    /// Bertels et al. and MONAI's `batch=False`). Every image counts equally, whatever the
    /// size of its object.
    PerImage,
    /// Statistics summed over the whole batch first, then one loss (nnU-Net's `batch_dice`,
    /// smp's Dice/Jaccard). Large objects dominate; empty images cost nothing on their own.
    Batch,
}

/// What a score is when it is `0/0` (both masks empty, or a term with no pixel to count).
///
/// Used by the hard metrics; see MONAI's `ignore_empty`, torchmetrics' `zero_division`.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum EmptyPolicy {
    /// `0/0` is a perfect score, `1` (the default where a default is needed): predicting
    /// nothing where there is nothing is right.
    One,
    /// `0/0` is `0`.
    Zero,
    /// `0/0` is `NaN`, marking the image to be skipped by aggregation (MONAI's
    /// `ignore_empty=True`).
    Nan,
}

impl EmptyPolicy {
    /// The value this policy gives to an undefined score.
    pub fn value(self) -> f64 {
        match self {
            EmptyPolicy::One => 1.0,
            EmptyPolicy::Zero => 0.0,
            EmptyPolicy::Nan => f64::NAN,
        }
    }
}

/// Which implementation of a loss runs: burn tensor operations on the inputs' device, or the
/// fused multi-threaded host kernels of the crate (both described in the crate docs).
///
/// Both compute the same value and gradient (tested to 1e-5); they differ in speed. The choice
/// is made once per call.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Execution {
    /// The default: the host kernels on the CPU backends (flex, ndarray) for f32 and f64
    /// inputs whose targets take no gradient; burn operations everywhere else (wgpu and other
    /// GPU backends, other dtypes, tracked targets).
    Auto,
    /// Always burn tensor operations on the inputs' device (fusable on wgpu).
    Device,
    /// Always the host kernels, on any device (on flex and ndarray they read the backend's
    /// buffers in place; elsewhere the inputs are read to the host and the gradient uploaded
    /// back). f32 and f64 inputs only; targets get no gradient, so tracked targets are an
    /// error.
    Host,
}

/// How the logits of the `C` channels of a multiclass loss become probabilities (the host
/// kernels read it too).
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum ClassMode {
    /// Exclusive classes: `p = softmax(x)` over the channels (MONAI `softmax=True`, smp
    /// `"multiclass"`).
    Softmax,
    /// Independent labels: `p = sigmoid(x)` per channel (MONAI `sigmoid=True`, smp
    /// `"multilabel"`).
    Multilabel,
}

/// Which classes the per-image loss of a multiclass overlap loss averages over, `m_c` being
/// the class's weight (0 for a background left out).
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum ClassAverage {
    /// Every class (MONAI): `sum_c m_c l_c / sum_c m_c`; a class absent from the target still
    /// counts, and scores a loss of about 1 unless it is also predicted absent.
    All,
    /// The classes present in the image's target (or the batch's, with
    /// [`Aggregation::Batch`]): `m_c` is 0 for the others, so they leave the mean; an image
    /// with none of them scores 0 (JDTLosses' `PRESENT`, Berman's `classes='present'`).
    Present,
    /// Every class counts in the mean, but a class absent from the target scores loss 0:
    /// `sum_c m_c [Y_c > 0] l_c / sum_c m_c` (smp's `DiceLoss`, `JaccardLoss` and
    /// `TverskyLoss`, which zero an absent class's loss and then take the mean over all
    /// classes).
    ZeroAbsent,
}
