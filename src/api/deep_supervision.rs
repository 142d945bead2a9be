//! Deep supervision (MONAI's `DeepSupervisionLoss`): one multiclass loss over the outputs of
//! several decoder levels, the targets resized to each level, the losses summed with weights.

use burn::config::Config;
use burn::tensor::Tensor;

use crate::api::catalog::MulticlassLoss;
use crate::check;
use crate::error::SegLossError;
use crate::loss::classes::ClassTargets;
use crate::loss::description::{LossDescription, compute};
use crate::loss::pixel_weights::{PixelWeighted, WeightedClassTargets};
use crate::loss::presets::DiceCeConfig;
use crate::tensors::nearest_exact;

/// The weight of each level's loss (level 0: the full-resolution output).
#[derive(Config, Debug, PartialEq)]
pub enum DeepSupervisionWeights {
    /// `max(2^-l, 1/16)`: 1, 1/2, 1/4, 1/8, 1/16, 1/16, ... (MONAI's `"exp"`).
    Exp,
    /// 1 for every level (MONAI's `"same"`).
    Same,
    /// 1 for level 0, 1/2 for the others (MONAI's `"two"`).
    Two,
    /// One weight per level, each >= 0 and finite (MONAI's `weights`). Fewer weights than
    /// outputs is an error here, where MONAI falls back to its `weight_mode`.
    Explicit(Vec<f64>),
}

impl DeepSupervisionWeights {
    /// The weights of `levels` outputs.
    fn of(&self, levels: usize) -> Result<Vec<f64>, SegLossError> {
        Ok(match self {
            DeepSupervisionWeights::Exp => (0..levels)
                .map(|l| 0.5f64.powi(l as i32).max(0.0625))
                .collect(),
            DeepSupervisionWeights::Same => vec![1.0; levels],
            DeepSupervisionWeights::Two => (0..levels)
                .map(|l| if l == 0 { 1.0 } else { 0.5 })
                .collect(),
            DeepSupervisionWeights::Explicit(w) if w.len() >= levels => w[..levels].to_vec(),
            DeepSupervisionWeights::Explicit(w) => {
                return Err(SegLossError::InvalidOption {
                    name: "weights",
                    value: format!("{} weights for {levels} outputs", w.len()),
                    allowed: "at least one weight per output",
                });
            }
        })
    }
}

/// Options of [`deep_supervision`]: the loss of every level and the levels' weights.
#[derive(Config, Debug)]
pub struct DeepSupervisionConfig {
    /// The loss of each level (default: [`DiceCeConfig`]'s defaults, nnU-Net's deep
    /// supervision loss; any [`MulticlassLoss`], presets included).
    #[config(default = "MulticlassLoss::DiceCe(DiceCeConfig::new())")]
    pub loss: MulticlassLoss,
    /// The levels' weights (default [`DeepSupervisionWeights::Exp`], MONAI's).
    #[config(default = "DeepSupervisionWeights::Exp")]
    pub weights: DeepSupervisionWeights,
}

impl DeepSupervisionConfig {
    /// Checks the options and returns the [`DeepSupervisionLoss`].
    ///
    /// # Errors
    /// An option of the loss out of range, a negative or non-finite explicit weight.
    pub fn init(&self) -> Result<DeepSupervisionLoss, SegLossError> {
        self.validate()?;
        Ok(DeepSupervisionLoss {
            config: self.clone(),
        })
    }

    fn validate(&self) -> Result<(), SegLossError> {
        if let DeepSupervisionWeights::Explicit(w) = &self.weights {
            w.iter()
                .try_for_each(|&w| check::non_negative("weights", w))?;
        }
        self.loss.validate()
    }
}

/// Deep supervision (MONAI's `DeepSupervisionLoss`): `sum_l w_l loss(heads[l], targets_l)`,
/// `heads[0]` the full-resolution logits and the others those of coarser decoder levels, each
/// `[N, C, ...]` of its own spatial size, `targets_l` the targets resized to it by torch's
/// `interpolate(mode="nearest-exact")` (a selection of pixels: class indices stay indices, as
/// MONAI's float targets do), `w_l` the [`DeepSupervisionWeights`]. Each level's loss is
/// `config.loss` with its own reduction, so the sum has that reduction's shape. Matches MONAI
/// 1.6 `DeepSupervisionLoss(loss, weight_mode, weights)` with the same loss (tested with
/// `DiceCELoss`, values and the gradients of every head).
///
/// # Errors
/// No heads, fewer explicit weights than heads, heads of another rank than the targets, and
/// the errors of the loss at each level.
///
/// ```
/// # #[cfg(feature = "flex")] {
/// use burn::tensor::{Device, Distribution, Int, Tensor};
/// use segloss::losses::{deep_supervision, DeepSupervisionConfig};
/// let device = Device::flex();
/// let classes = Tensor::<4, Int>::zeros([2, 1, 16, 16], &device);
/// let heads = vec![
///     Tensor::<4>::random([2, 3, 16, 16], Distribution::Default, &device),
///     Tensor::<4>::random([2, 3, 8, 8], Distribution::Default, &device),
/// ];
/// let loss = deep_supervision(heads, classes, &DeepSupervisionConfig::new()).unwrap();
/// assert_eq!(loss.dims(), [1]);
/// # }
/// ```
pub fn deep_supervision<const D: usize>(
    heads: Vec<Tensor<D>>,
    targets: impl Into<WeightedClassTargets<D>>,
    config: &DeepSupervisionConfig,
) -> Result<Tensor<1>, SegLossError> {
    config.validate()?;
    if heads.is_empty() {
        return Err(SegLossError::InvalidOption {
            name: "heads",
            value: "[]".into(),
            allowed: "at least one output",
        });
    }
    let weights = config.weights.of(heads.len())?;
    let targets = targets.into();
    let mut total: Option<Tensor<1>> = None;
    for (head, weight) in heads.into_iter().zip(weights) {
        check::batch_shape(&head, "heads")?;
        let size = head.dims()[2..].to_vec();
        // The pixel weights are resized as the targets are: each head's pixel takes the weight
        // of the pixel its target comes from.
        let level = PixelWeighted {
            targets: match &targets.targets {
                ClassTargets::Indices(t) => ClassTargets::Indices(nearest_exact(t.clone(), &size)),
                ClassTargets::PerClass(t) => {
                    ClassTargets::PerClass(nearest_exact(t.clone(), &size))
                }
            },
            pixel_weights: targets
                .pixel_weights
                .as_ref()
                .map(|w| nearest_exact(w.clone(), &size)),
        };
        let loss = compute(&config.loss, head, level)?.mul_scalar(weight);
        total = Some(match total {
            Some(sum) => sum + loss,
            None => loss,
        });
    }
    total.ok_or(SegLossError::InvalidOption {
        name: "heads",
        value: "[]".into(),
        allowed: "at least one output",
    })
}

/// [`deep_supervision`] as a module (MONAI's `DeepSupervisionLoss`): `forward(heads, targets)`.
///
/// A burn [`Module`](burn::module::Module) without parameters: its options are constant state
/// (see the [module docs](crate::losses#modules)).
#[derive(burn::module::Module, Debug)]
pub struct DeepSupervisionLoss {
    #[module(skip)]
    config: DeepSupervisionConfig,
}

impl DeepSupervisionLoss {
    /// The options this module runs with.
    pub fn config(&self) -> &DeepSupervisionConfig {
        &self.config
    }

    /// [`deep_supervision`] with this module's options.
    ///
    /// # Panics
    /// With the error's message where [`try_forward`](Self::try_forward) returns one.
    pub fn forward<const D: usize>(
        &self,
        heads: Vec<Tensor<D>>,
        targets: impl Into<WeightedClassTargets<D>>,
    ) -> Tensor<1> {
        self.try_forward(heads, targets)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`deep_supervision`] with this module's options.
    ///
    /// # Errors
    /// Those of [`deep_supervision`] for these inputs.
    pub fn try_forward<const D: usize>(
        &self,
        heads: Vec<Tensor<D>>,
        targets: impl Into<WeightedClassTargets<D>>,
    ) -> Result<Tensor<1>, SegLossError> {
        deep_supervision(heads, targets, &self.config)
    }
}
