//! The losses layer: one file per loss (its config, its device computation, its host-kernel
//! hookup, its docs), the helpers that several losses share (`overlap`, `classes`), and the
//! [`description::LossDescription`] every loss config implements. Nothing here imports the
//! public assembly above it (`crate::api`); the public names are gathered in `crate::losses`.

pub(crate) mod boundary;
pub(crate) mod cl_dice;
pub(crate) mod classes;
pub(crate) mod cross_entropy;
pub(crate) mod description;
pub(crate) mod dice;
pub(crate) mod distance_maps;
pub(crate) mod focal;
pub(crate) mod generalized_dice;
pub(crate) mod hausdorff_dt;
pub(crate) mod jaccard;
pub(crate) mod lovasz;
pub(crate) mod lovasz_softmax;
pub(crate) mod mcc;
pub(crate) mod multiclass;
pub(crate) mod multiclass_focal;
pub(crate) mod overlap;
pub(crate) mod pixel_weights;
pub(crate) mod presets;
pub(crate) mod skeleton;
pub(crate) mod sum;
pub(crate) mod tversky;
pub(crate) mod wasserstein_dice;

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
