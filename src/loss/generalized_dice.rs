//! The generalized Dice loss (Sudre et al. 2017).

use burn::config::Config;
use burn::tensor::Tensor;

use crate::check;
use crate::engine::{Plan, runs_on_host};
use crate::error::SegLossError;
use crate::kernels::multiclass::heads::{HeadKind, VolumeWeight};
use crate::loss::classes::{
    ClassMode, check_background, class_host_plan, class_sums, probabilities_and_targets,
};
use crate::loss::description::{LossDescription, compute};
use crate::loss::overlap::{SoftStatistics, loss_of_ratio, soft_statistics, statistics_plan};
use crate::loss::pixel_weights::{WeightedClassTargets, class_rows_of, weighted};
use crate::options::{Aggregation, Execution, Reduction};
use crate::tensors::row_sums;

/// The class weights of [`generalized_dice`], from the target volume `Y_c = sum(y_c)`.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum GeneralizedDiceWeight {
    /// `w_c = 1 / Y_c^2` (Sudre et al.; MONAI's default `w_type="square"`): each class counts
    /// about equally whatever its size.
    Square,
    /// `w_c = 1 / Y_c`.
    Simple,
    /// `w_c = 1`: the Dice of all classes pooled.
    Uniform,
}

/// Options of [`generalized_dice`]. Defaults follow MONAI's `GeneralizedDiceLoss`.
#[derive(Config, Debug)]
pub struct GeneralizedDiceConfig {
    /// How the class weights are computed (default [`GeneralizedDiceWeight::Square`]).
    #[config(default = "GeneralizedDiceWeight::Square")]
    pub weight: GeneralizedDiceWeight,
    /// Softmax over the channels (default) or a sigmoid per channel.
    #[config(default = "ClassMode::Softmax")]
    pub mode: ClassMode,
    /// `true` (default): inputs are logits; `false`: per-class probabilities.
    #[config(default = true)]
    pub from_logits: bool,
    /// `true` (default): class 0 takes part; `false`: it is left out (after the softmax).
    #[config(default = true)]
    pub include_background: bool,
    /// A class index whose pixels are left out of every sum (default `None`; index targets
    /// only).
    #[config(default = "None")]
    pub ignore_index: Option<i64>,
    /// Added to the numerator (default `1e-5`). Must be >= 0.
    #[config(default = 1e-5)]
    pub smooth_nr: f64,
    /// Added to the denominator (default `1e-5`). Must be >= 0.
    #[config(default = 1e-5)]
    pub smooth_dr: f64,
    /// Statistics per image (default) or over the whole batch.
    #[config(default = "Aggregation::PerImage")]
    pub aggregation: Aggregation,
    /// How the per-image losses are combined (default [`Reduction::Mean`]).
    #[config(default = "Reduction::Mean")]
    pub reduction: Reduction,
    /// Host kernel or burn operations (default [`Execution::Auto`], as for
    /// [`multiclass_overlap`](crate::losses::multiclass_overlap)).
    #[config(default = "Execution::Auto")]
    pub execution: Execution,
}

/// Generalized Dice loss (Sudre et al. 2017; beyond the paper). Per image (or over the batch
/// with [`Aggregation::Batch`]), with `I_c = sum(p_c y_c)`, `P_c = sum(p_c)`,
/// `Y_c = sum(y_c)` over the pixels and `c` over the classes taken:
///
/// `loss = 1 - (2 sum_c w_c I_c + smooth_nr) / (sum_c w_c (P_c + Y_c) + smooth_dr)`
///
/// with `w_c` from [`GeneralizedDiceWeight`]. A class absent from the target (`Y_c = 0`)
/// would get an infinite weight; as in MONAI it gets the largest finite weight of the image
/// instead (0 when every class is absent), so the loss stays finite without any clamp. The
/// weights are constants (they depend on the targets only). Matches MONAI
/// `GeneralizedDiceLoss(softmax=True, to_onehot_y=True, w_type, include_background, batch)`.
/// Targets are class indices `[N, 1, ...]` or per-class values `[N, C, ...]`, as for
/// [`multiclass_overlap`](crate::losses::multiclass_overlap), and runs as it does: one fused
/// host kernel on flex and ndarray, burn operations (no read to the host) elsewhere.
///
/// # Device path
/// On wgpu: burn operations that burn's fusion fuses, no read to the host, no upload; the
/// kernel counts are in the [device-path table](crate::losses#device-path).
///
/// # Errors
/// Rank < 2, a zero-sized dimension, mismatched target shape or device, negative or
/// non-finite smoothing, `ignore_index` with per-class targets, `include_background = false`
/// with one class.
///
/// ```
/// # #[cfg(feature = "flex")] {
/// use burn::tensor::{Device, Int, Tensor};
/// use segloss::losses::{generalized_dice, GeneralizedDiceConfig};
/// let device = Device::flex();
/// let logits = Tensor::<3>::from_floats([[[5.0, -5.0, -5.0], [-5.0, 5.0, 5.0]]], &device);
/// let classes = Tensor::<3, Int>::from_ints([[[0, 1, 1]]], &device);
/// let loss = generalized_dice(logits, classes, &GeneralizedDiceConfig::new()).unwrap();
/// assert!(loss.into_scalar::<f32>() < 0.01);
/// # }
/// ```
pub fn generalized_dice<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<WeightedClassTargets<D>>,
    config: &GeneralizedDiceConfig,
) -> Result<Tensor<1>, SegLossError> {
    compute(config, logits, targets.into())
}

/// `w_c` per row of the target volumes `[R, C]`, detached; an absent class (`Y_c = 0`, or a
/// weight beyond the f32 range) gets the row's largest weight among the other classes, 0 if
/// there is none.
fn class_weights(target: &Tensor<2>, weight: GeneralizedDiceWeight) -> Tensor<2> {
    let volume = target.clone().detach();
    if weight == GeneralizedDiceWeight::Uniform {
        return volume.ones_like();
    }
    let empty = volume.clone().lower_equal_elem(0.0);
    // 1 in place of the empty volumes: no division by zero.
    let safe = volume.mask_fill(empty.clone(), 1.0);
    let raw = match weight {
        GeneralizedDiceWeight::Square => safe.square().recip(),
        _ => safe.recip(),
    };
    // A tiny soft volume can still overflow (1 / 1e-20^2 in f32): treated as absent too, as
    // MONAI treats every infinite weight.
    let absent = empty.bool_or(raw.clone().greater_elem(f64::from(f32::MAX)));
    let finite = raw.mask_fill(absent.clone(), 0.0);
    let largest = finite.clone().max_dim(1).expand(finite.dims());
    finite.mask_where(absent, largest)
}

impl LossDescription for GeneralizedDiceConfig {
    type Targets<const D: usize> = WeightedClassTargets<D>;

    /// The checks of the options alone: smoothing `>= 0` and finite.
    fn validate(&self) -> Result<(), SegLossError> {
        check::non_negative("smooth_nr", self.smooth_nr)?;
        check::non_negative("smooth_dr", self.smooth_dr)
    }

    fn plan<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: WeightedClassTargets<D>,
        share: bool,
    ) -> Result<Plan<D>, SegLossError> {
        self.validate()?;
        check::batch_shape(&logits, "logits")?;
        let classes = logits.dims()[1];
        check_background(self.include_background, classes)?;
        let (logits, targets, pixel_weights) = targets.checked(logits, self.ignore_index)?;
        let share = share && self.aggregation == Aggregation::Batch;
        if !share && runs_on_host(self.execution, &logits, targets.is_tracked())? {
            let head = HeadKind::GeneralizedDice {
                weight: match self.weight {
                    GeneralizedDiceWeight::Square => VolumeWeight::Square,
                    GeneralizedDiceWeight::Simple => VolumeWeight::Simple,
                    GeneralizedDiceWeight::Uniform => VolumeWeight::Uniform,
                },
                first_class: usize::from(!self.include_background),
                smooth_nr: self.smooth_nr,
                smooth_dr: self.smooth_dr,
                batch: self.aggregation == Aggregation::Batch,
            };
            return Ok(class_host_plan(
                logits,
                (targets, pixel_weights),
                self.mode,
                self.from_logits,
                self.ignore_index,
                head,
                self.reduction,
            ));
        }
        let (p, y) = probabilities_and_targets(
            logits,
            targets,
            self.mode,
            self.from_logits,
            self.ignore_index,
        )?;
        let (p, y) = if self.include_background {
            (p, y)
        } else {
            let rest = |t: Tensor<3>| t.narrow(1, 1, classes - 1);
            (rest(p), rest(y))
        };
        let w = class_rows_of(pixel_weights);
        let statistics = soft_statistics(p, y, false, false, |t| {
            class_sums(weighted(t, w.as_ref()), self.aggregation)
        });
        let (weight, smooth_nr, smooth_dr) = (self.weight, self.smooth_nr, self.smooth_dr);
        let reduction = self.reduction;
        let finish = move |s: SoftStatistics<2>| {
            let w = class_weights(&s.target, weight);
            let numerator = row_sums(w.clone().mul(s.intersection))
                .mul_scalar(2.0)
                .add_scalar(smooth_nr);
            let denominator = row_sums(w.mul(s.predicted + s.target)).add_scalar(smooth_dr);
            // With batch statistics there is one problem: any reduction of it is the value itself.
            reduction.apply(loss_of_ratio(numerator, denominator, false))
        };
        Ok(statistics_plan(statistics, share, finish))
    }

    fn shared_widths(&self, classes: usize) -> Vec<usize> {
        match self.aggregation {
            Aggregation::Batch => {
                vec![classes.saturating_sub(usize::from(!self.include_background))]
            }
            Aggregation::PerImage => Vec::new(),
        }
    }
}
