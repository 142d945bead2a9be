//! Weighted sums of losses (nnU-Net's Dice + CE, MONAI's `DiceCELoss` and `DiceFocalLoss`).

use burn::config::Config;
use burn::tensor::Tensor;

use crate::SegLossError;
use crate::losses::{
    BinaryCrossEntropyConfig, ClassTargets, FocalConfig, GeneralizedDiceConfig, LovaszConfig,
    LovaszSoftmaxConfig, MulticlassFocalConfig, MulticlassOverlapConfig, SoftDiceConfig,
    SoftJaccardConfig, TverskyConfig, WeightedCrossEntropyConfig, binary_cross_entropy, focal,
    generalized_dice, lovasz_hinge, lovasz_sigmoid, lovasz_softmax, multiclass_focal,
    multiclass_overlap, soft_dice, soft_jaccard, tversky, weighted_cross_entropy,
};

/// Any binary loss of the crate together with its options: a term of a [`CompoundConfig`],
/// and a way to pick a loss at run time (from a config file, say).
#[derive(Config, Debug)]
pub enum Loss {
    /// [`binary_cross_entropy`].
    BinaryCrossEntropy(BinaryCrossEntropyConfig),
    /// [`weighted_cross_entropy`].
    WeightedCrossEntropy(WeightedCrossEntropyConfig),
    /// [`soft_dice`].
    SoftDice(SoftDiceConfig),
    /// [`soft_jaccard`].
    SoftJaccard(SoftJaccardConfig),
    /// [`tversky`].
    Tversky(TverskyConfig),
    /// [`focal`].
    Focal(FocalConfig),
    /// [`lovasz_sigmoid`].
    LovaszSigmoid(LovaszConfig),
    /// [`lovasz_hinge`].
    LovaszHinge(LovaszConfig),
}

impl Loss {
    /// Computes this loss with its options: the same as calling its function.
    ///
    /// # Errors
    /// Those of the loss's function.
    pub fn compute<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: Tensor<D>,
    ) -> Result<Tensor<1>, SegLossError> {
        match self {
            Loss::BinaryCrossEntropy(c) => binary_cross_entropy(logits, targets, c),
            Loss::WeightedCrossEntropy(c) => weighted_cross_entropy(logits, targets, c),
            Loss::SoftDice(c) => soft_dice(logits, targets, c),
            Loss::SoftJaccard(c) => soft_jaccard(logits, targets, c),
            Loss::Tversky(c) => tversky(logits, targets, c),
            Loss::Focal(c) => focal(logits, targets, c),
            Loss::LovaszSigmoid(c) => lovasz_sigmoid(logits, targets, c),
            Loss::LovaszHinge(c) => lovasz_hinge(logits, targets, c),
        }
    }
}

/// One weighted term of a [`CompoundConfig`].
#[derive(Config, Debug)]
pub struct CompoundTerm {
    /// The term's weight (finite, >= 0).
    pub weight: f64,
    /// The loss and its options (its own `reduction` included).
    pub loss: Loss,
}

/// Options of [`compound`]: the terms of the sum, none by default (add them with
/// [`CompoundConfig::with_term`]).
#[derive(Config, Debug)]
pub struct CompoundConfig {
    /// The weighted losses to add up.
    #[config(default = "Vec::new()")]
    pub terms: Vec<CompoundTerm>,
}

impl CompoundConfig {
    /// Adds the term `weight * loss`.
    pub fn with_term(mut self, weight: f64, loss: Loss) -> Self {
        self.terms.push(CompoundTerm::new(weight, loss));
        self
    }
}

/// A weighted sum of losses: `sum_k weight_k * loss_k(logits, targets)`.
///
/// Every term runs with its own options, including its own `reduction` and `execution`, on
/// the same inputs; the terms must give results of the same shape (all `[1]`, or all `[N]`
/// with `Reduction::None` and per-image statistics). The gradient is the weighted sum of the
/// terms' gradients. With `1 * soft Dice + 1 * BCE` (both `Reduction::Mean`) it equals MONAI
/// `DiceCELoss(sigmoid=True)` and nnU-Net's binary Dice + CE; with focal instead of BCE,
/// MONAI `DiceFocalLoss`. Bertels et al. (Sect. 4) note that metric-sensitive losses may
/// profit from a CE term early in training; a compound loss is the usual way to add one.
///
/// # Errors
/// No terms, a negative or non-finite weight, results of different shapes, and any error of
/// a term.
///
/// ```
/// # #[cfg(feature = "flex")] {
/// use burn::tensor::{Device, Tensor};
/// use segloss::losses::*;
/// let device = Device::flex();
/// let logits = Tensor::<2>::from_floats([[2.0, -1.0, 0.5]], &device);
/// let targets = Tensor::<2>::from_floats([[1.0, 0.0, 1.0]], &device);
/// let config = CompoundConfig::new()
///     .with_term(1.0, Loss::SoftDice(SoftDiceConfig::new()))
///     .with_term(1.0, Loss::BinaryCrossEntropy(BinaryCrossEntropyConfig::new()));
/// let total = compound(logits.clone(), targets.clone(), &config).unwrap().into_scalar::<f32>();
/// let dice = soft_dice(logits.clone(), targets.clone(), &SoftDiceConfig::new()).unwrap();
/// let bce = binary_cross_entropy(logits, targets, &BinaryCrossEntropyConfig::new()).unwrap();
/// let sum = dice.into_scalar::<f32>() + bce.into_scalar::<f32>();
/// assert!((total - sum).abs() < 1e-6);
/// # }
/// ```
pub fn compound<const D: usize>(
    logits: Tensor<D>,
    targets: Tensor<D>,
    config: &CompoundConfig,
) -> Result<Tensor<1>, SegLossError> {
    weighted_sum(config.terms.iter().map(|t| (t.weight, &t.loss)), |loss| {
        loss.compute(logits.clone(), targets.clone())
    })
}

/// Any multiclass loss of the crate with its options: a term of a
/// [`MulticlassCompoundConfig`].
#[derive(Config, Debug)]
pub enum MulticlassLoss {
    /// [`multiclass_overlap`] (soft Dice, Jaccard or Tversky).
    Overlap(MulticlassOverlapConfig),
    /// [`generalized_dice`].
    GeneralizedDice(GeneralizedDiceConfig),
    /// [`lovasz_softmax`].
    LovaszSoftmax(LovaszSoftmaxConfig),
    /// [`multiclass_focal`] (`gamma = 0`: the cross-entropy).
    Focal(MulticlassFocalConfig),
}

impl MulticlassLoss {
    /// Computes this loss with its options: the same as calling its function.
    ///
    /// # Errors
    /// Those of the loss's function.
    pub fn compute<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: impl Into<ClassTargets<D>>,
    ) -> Result<Tensor<1>, SegLossError> {
        match self {
            MulticlassLoss::Overlap(c) => multiclass_overlap(logits, targets, c),
            MulticlassLoss::GeneralizedDice(c) => generalized_dice(logits, targets, c),
            MulticlassLoss::LovaszSoftmax(c) => lovasz_softmax(logits, targets, c),
            MulticlassLoss::Focal(c) => multiclass_focal(logits, targets, c),
        }
    }
}

/// One weighted term of a [`MulticlassCompoundConfig`].
#[derive(Config, Debug)]
pub struct MulticlassCompoundTerm {
    /// The term's weight (finite, >= 0).
    pub weight: f64,
    /// The loss and its options (its own `reduction` included).
    pub loss: MulticlassLoss,
}

/// Options of [`multiclass_compound`]: the terms of the sum, none by default (add them with
/// [`MulticlassCompoundConfig::with_term`]).
#[derive(Config, Debug)]
pub struct MulticlassCompoundConfig {
    /// The weighted losses to add up.
    #[config(default = "Vec::new()")]
    pub terms: Vec<MulticlassCompoundTerm>,
}

impl MulticlassCompoundConfig {
    /// Adds the term `weight * loss`.
    pub fn with_term(mut self, weight: f64, loss: MulticlassLoss) -> Self {
        self.terms.push(MulticlassCompoundTerm::new(weight, loss));
        self
    }
}

/// A weighted sum of multiclass losses, as [`compound`] for class targets: with
/// `1 * multiclass_overlap + 1 * multiclass_focal(gamma = 0)` (both with their defaults) it is
/// nnU-Net's Dice + CE and MONAI `DiceCELoss(softmax=True, to_onehot_y=True)`.
///
/// # Errors
/// No terms, a negative or non-finite weight, results of different shapes, and any error of
/// a term.
///
/// ```
/// # #[cfg(feature = "flex")] {
/// use burn::tensor::{Device, Int, Tensor};
/// use segloss::losses::*;
/// let device = Device::flex();
/// let logits = Tensor::<3>::from_floats([[[2.0, -1.0], [0.0, 1.5]]], &device);
/// let classes = Tensor::<3, Int>::from_ints([[[0, 1]]], &device);
/// let dice_ce = MulticlassCompoundConfig::new()
///     .with_term(1.0, MulticlassLoss::Overlap(MulticlassOverlapConfig::new()))
///     .with_term(1.0, MulticlassLoss::Focal(MulticlassFocalConfig::new().with_gamma(0.0)));
/// let loss = multiclass_compound(logits, classes, &dice_ce).unwrap();
/// assert!(loss.into_scalar::<f32>() > 0.0);
/// # }
/// ```
pub fn multiclass_compound<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<ClassTargets<D>>,
    config: &MulticlassCompoundConfig,
) -> Result<Tensor<1>, SegLossError> {
    let targets = targets.into();
    weighted_sum(config.terms.iter().map(|t| (t.weight, &t.loss)), |loss| {
        loss.compute(logits.clone(), targets.clone())
    })
}

/// `sum_k weight_k * compute(loss_k)`, checking the weights, that there is a term, and that
/// every term has the shape of the first.
fn weighted_sum<'a, L: 'a>(
    terms: impl Iterator<Item = (f64, &'a L)> + Clone,
    compute: impl Fn(&L) -> Result<Tensor<1>, SegLossError>,
) -> Result<Tensor<1>, SegLossError> {
    for (weight, _) in terms.clone() {
        crate::check::non_negative("weight", weight)?;
    }
    let mut total: Option<Tensor<1>> = None;
    for (weight, loss) in terms {
        let value = compute(loss)?.mul_scalar(weight);
        total = Some(match total {
            None => value,
            Some(sum) => {
                let (left, right) = (sum.dims(), value.dims());
                if left != right {
                    return Err(SegLossError::ShapeMismatch {
                        left_name: "the sum of the earlier terms",
                        left: left.to_vec(),
                        right_name: "the next term",
                        right: right.to_vec(),
                    });
                }
                sum + value
            }
        });
    }
    total.ok_or(SegLossError::InvalidParameter {
        name: "terms",
        value: 0.0,
        allowed: "at least one term (with_term)",
    })
}
