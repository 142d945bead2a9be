//! What the multiclass losses share: class targets (indices or per class), the class
//! probabilities, the one-hot targets built on the device, and the average over classes.

use burn::tensor::{Int, Tensor};

use crate::check;
use crate::engine::softmax::softmax;
use crate::engine::{HostTargets, Plan};
use crate::error::SegLossError;
use crate::kernels::multiclass::ClassKernel;
use crate::kernels::multiclass::heads::HeadKind;
use crate::loss::sigmoid_keeping_nan;
use crate::options::{Aggregation, Reduction};
pub(crate) use crate::options::{ClassAverage, ClassMode};
use crate::tensors::one_hot;

/// The targets of a multiclass loss.
#[derive(Clone, Debug)]
pub enum ClassTargets<const D: usize> {
    /// Class indices, shape `[N, 1, ...]` (MONAI's convention: the logits' shape with one
    /// channel), each in `0..C` or equal to `ignore_index`. An index outside `0..C` that is
    /// not `ignore_index` belongs to no class; check with
    /// [`validate_class_indices`](crate::validate_class_indices).
    Indices(Tensor<D, Int>),
    /// One-hot or soft per-class targets, the logits' shape `[N, C, ...]`, values in `[0, 1]`.
    PerClass(Tensor<D>),
}

impl<const D: usize> From<Tensor<D, Int>> for ClassTargets<D> {
    fn from(indices: Tensor<D, Int>) -> Self {
        ClassTargets::Indices(indices)
    }
}

impl<const D: usize> From<Tensor<D>> for ClassTargets<D> {
    fn from(per_class: Tensor<D>) -> Self {
        ClassTargets::PerClass(per_class)
    }
}

impl<const D: usize> ClassTargets<D> {
    /// The logits, widened to f32 when they are half precision ([`check::widened`]), and the
    /// targets checked against them: indices of shape `[N, 1, ...]`, or per-class values of the
    /// logits' shape (cast to their dtype), on the logits' device; `ignore_index` only with
    /// indices.
    pub(crate) fn checked(
        self,
        logits: Tensor<D>,
        ignore_index: Option<i64>,
    ) -> Result<(Tensor<D>, Self), SegLossError> {
        let logits = check::widened(logits);
        let targets = self.checked_against(&logits, ignore_index)?;
        Ok((logits, targets))
    }

    /// [`ClassTargets::checked`] against logits already widened.
    fn checked_against(
        self,
        logits: &Tensor<D>,
        ignore_index: Option<i64>,
    ) -> Result<Self, SegLossError> {
        match self {
            ClassTargets::PerClass(y) => {
                if ignore_index.is_some() {
                    return Err(SegLossError::InvalidOption {
                        name: "ignore_index",
                        value: format!("{ignore_index:?}"),
                        allowed: "ignore_index needs class-index targets (Tensor<D, Int>)",
                    });
                }
                Ok(ClassTargets::PerClass(check::binary_pair(logits, y)?))
            }
            ClassTargets::Indices(indices) => {
                let dims = logits.dims();
                let mut expected = dims;
                expected[1] = 1;
                if indices.dims() != expected {
                    return Err(SegLossError::ShapeMismatch {
                        left_name: "class-index targets (expected [N, 1, ...] of the logits)",
                        left: indices.dims().to_vec(),
                        right_name: "logits",
                        right: dims.to_vec(),
                    });
                }
                check::same_device(logits, "logits", &indices, "targets")?;
                Ok(ClassTargets::Indices(indices))
            }
        }
    }

    /// Whether the targets take part in autodiff (per-class values only can).
    pub(crate) fn is_tracked(&self) -> bool {
        match self {
            ClassTargets::PerClass(y) => y.is_tracked(),
            ClassTargets::Indices(_) => false,
        }
    }

    /// The targets as a host kernel reads them.
    pub(crate) fn into_host(self) -> HostTargets<D> {
        match self {
            ClassTargets::PerClass(y) => HostTargets::Values(y),
            ClassTargets::Indices(indices) => HostTargets::Indices(indices),
        }
    }
}

/// The host plan of one multiclass loss: `head`, with the class mode, input kind, ignored
/// index and reduction of its config, on targets with their pixel weights, as a [`ClassKernel`] (which a compound loss can merge
/// with the kernels of its other terms: one pass for all of them). The kernel reduces its
/// values itself.
pub(crate) fn class_host_plan<const D: usize>(
    logits: Tensor<D>,
    (targets, weights): (ClassTargets<D>, Option<Tensor<D>>),
    mode: ClassMode,
    from_logits: bool,
    ignore_index: Option<i64>,
    head: HeadKind,
    reduction: Reduction,
) -> Plan<D> {
    let classes = logits.dims()[1];
    let kernel = ClassKernel::single(classes, mode, from_logits, ignore_index, head, reduction);
    Plan::host(
        logits,
        targets.into_host(),
        weights,
        Reduction::None,
        kernel,
    )
}

/// The targets as per-class values `[N, C, P]` in the logits' dtype, and the mask `[N, 1, P]`
/// of pixels that count (`None`: all of them), from targets checked against `logits`.
fn per_class_targets<const D: usize>(
    logits: &Tensor<D>,
    targets: ClassTargets<D>,
    ignore_index: Option<i64>,
) -> Result<(Tensor<3>, Option<Tensor<3>>), SegLossError> {
    let dims = logits.dims();
    let (n, classes) = (dims[0] as i64, dims[1]);
    let dtype = logits.dtype();
    match targets {
        ClassTargets::PerClass(y) => Ok((y.reshape([n, classes as i64, -1]), None)),
        ClassTargets::Indices(indices) => {
            let (one_hot, kept) = one_hot(indices.reshape([n, 1, -1]), classes, ignore_index);
            let valid = kept.map(|kept| kept.float().cast(dtype));
            Ok((one_hot.float().cast(dtype), valid))
        }
    }
}

/// The class probabilities and the per-class targets, both `[N, C, P]` in the logits' dtype,
/// with the pixels of `ignore_index` set to 0 in both (so they drop out of every sum and,
/// for Lovász, sort last with zero error and no label). `logits` and `targets` come from
/// [`ClassTargets::checked`], which every loss calls once.
pub(crate) fn probabilities_and_targets<const D: usize>(
    logits: Tensor<D>,
    targets: ClassTargets<D>,
    mode: ClassMode,
    from_logits: bool,
    ignore_index: Option<i64>,
) -> Result<(Tensor<3>, Tensor<3>), SegLossError> {
    let (x, y, valid) = class_rows(logits, targets, ignore_index)?;
    let p = class_probabilities(x, mode, from_logits);
    Ok(match valid {
        Some(valid) => {
            let valid = valid.expand(p.dims());
            (p.mul(valid.clone()), y.mul(valid))
        }
        None => (p, y),
    })
}

/// The logits `[N, C, P]`, the per-class targets `[N, C, P]` in the logits' dtype and the
/// mask `[N, 1, P]` of the pixels that count (`None`: all), from logits and targets that
/// [`ClassTargets::checked`] returned (not checked again here).
pub(crate) fn class_rows<const D: usize>(
    logits: Tensor<D>,
    targets: ClassTargets<D>,
    ignore_index: Option<i64>,
) -> Result<(Tensor<3>, Tensor<3>, Option<Tensor<3>>), SegLossError> {
    let (y, valid) = per_class_targets(&logits, targets, ignore_index)?;
    let dims = logits.dims();
    let x = logits.reshape([dims[0] as i64, dims[1] as i64, -1]);
    Ok((x, y, valid))
}

/// The class probabilities of logits `[N, C, P]`: a softmax over the channels or a sigmoid
/// per channel, or the input itself when it already holds probabilities.
fn class_probabilities(x: Tensor<3>, mode: ClassMode, from_logits: bool) -> Tensor<3> {
    match (from_logits, mode) {
        (true, ClassMode::Softmax) => softmax(x, 1),
        (true, ClassMode::Multilabel) => sigmoid_keeping_nan(x),
        (false, _) => x,
    }
}

/// Sums over the pixels of `[N, C, P]`, per image and class `[N, C]`, or over the batch too
/// (`[1, C]`) for [`Aggregation::Batch`].
pub(crate) fn class_sums(t: Tensor<3>, aggregation: Aggregation) -> Tensor<2> {
    let [n, classes, _] = t.dims();
    let per_image = t.sum_dim(2).reshape([n, classes]);
    match aggregation {
        Aggregation::PerImage => per_image,
        Aggregation::Batch => per_image.sum_dim(0),
    }
}

/// `sum_c m_c l_rc / sum_c m_c` per row of `losses` `[R, C]`, with `mask` `[1, C]` or `[R, C]`
/// (constants): a weighted mean over classes, or over pixels; 0 with zero gradient for a row
/// whose mask is all zero (nothing to score).
pub(crate) fn weighted_mean(losses: Tensor<2>, mask: Tensor<2>) -> Tensor<1> {
    let mask = mask.expand(losses.dims());
    let total = mask.clone().sum_dim(1);
    let weighted = losses.mul(mask).sum_dim(1);
    let none = total.clone().lower_equal_elem(0.0);
    let average = weighted
        .mask_fill(none.clone(), 0.0)
        .div(total.mask_fill(none, 1.0));
    let rows = average.dims()[0];
    average.reshape([rows])
}

/// 1 where a class occurs in the targets of a row of `target_sums` `[R, C]`, else 0
/// (detached: presence is a constant of the loss). A NaN sum (a NaN target or pixel weight)
/// counts as present, so that the NaN reaches the loss instead of dropping the class: `1 -
/// (sum <= 0)`, not `sum > 0`.
pub(crate) fn present(target_sums: &Tensor<2>) -> Tensor<2> {
    let dtype = target_sums.dtype();
    target_sums
        .clone()
        .detach()
        .lower_equal_elem(0.0)
        .float()
        .cast(dtype)
        .neg()
        .add_scalar(1.0)
}

/// The class weights `m_c` (1 by default; one non-negative weight per class), with the
/// background's set to 0 when it is excluded.
pub(crate) fn class_weights(
    weights: Option<&[f64]>,
    include_background: bool,
    classes: usize,
) -> Result<Vec<f64>, SegLossError> {
    check_background(include_background, classes)?;
    let mut weights = match weights {
        Some(w) if w.len() != classes => {
            return Err(SegLossError::InvalidParameter {
                name: "class_weights",
                value: w.len() as f64,
                allowed: "one weight per class: a length equal to the logits' channel count C",
            });
        }
        Some(w) => {
            check_class_weights(Some(w))?;
            w.to_vec()
        }
        None => vec![1.0; classes],
    };
    if !include_background {
        weights[0] = 0.0;
    }
    Ok(weights)
}

/// Every class weight `>= 0` and finite in f32.
pub(crate) fn check_class_weights(weights: Option<&[f64]>) -> Result<(), SegLossError> {
    for &v in weights.unwrap_or_default() {
        check::non_negative("class_weights", v)?;
    }
    Ok(())
}

/// `include_background = false` needs a class besides the background.
pub(crate) fn check_background(
    include_background: bool,
    classes: usize,
) -> Result<(), SegLossError> {
    if !include_background && classes <= 1 {
        return Err(SegLossError::InvalidOption {
            name: "include_background",
            value: "false".into(),
            allowed: "true when the logits have a single channel (nothing else to score)",
        });
    }
    Ok(())
}
