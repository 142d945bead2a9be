//! The Lovász-softmax loss (Berman, Rannen Triki & Blaschko, CVPR 2018): the multiclass
//! Lovász extension of the Jaccard loss.

use burn::config::Config;
use burn::tensor::Tensor;

use crate::check;
use crate::engine::Plan;
use crate::error::SegLossError;
use crate::kernels::lovasz_softmax::{ClassSelection, LovaszSoftmaxKernel};
use crate::loss::classes::{ClassMode, present, probabilities_and_targets, weighted_mean};
use crate::loss::description::{LossDescription, compute};
use crate::loss::lovasz::sorts_on_host;
use crate::loss::lovasz::{LovaszSigmoidConfig, lovasz_sigmoid};
use crate::loss::pixel_weights::{BinaryTargets, WeightedClassTargets, class_rows_of, weighted};
use crate::options::{Aggregation, Execution, Reduction};

/// Which classes [`lovasz_softmax`] averages over (Berman's `classes` argument).
#[derive(Config, Debug, PartialEq)]
pub enum LovaszClasses {
    /// The classes present in the problem's target (Berman's default `'present'`): an absent
    /// class is skipped, and a problem with no class at all scores 0.
    Present,
    /// Every class; an absent class scores the largest probability given to it.
    All,
    /// These class indices (each in `0..C`, at least one), present or not; a class listed
    /// twice counts once (Berman's code would count it twice).
    List(Vec<usize>),
}

/// Options of [`lovasz_softmax`]. Defaults follow Berman's `lovasz_softmax`.
#[derive(Config, Debug)]
pub struct LovaszSoftmaxConfig {
    /// The classes averaged over (default [`LovaszClasses::Present`]).
    #[config(default = "LovaszClasses::Present")]
    pub classes: LovaszClasses,
    /// [`Aggregation::Batch`] (default, Berman's `per_image=False` for the softmax version):
    /// all pixels of the batch form one problem per class and the result is `[1]`;
    /// [`Aggregation::PerImage`]: one problem per image and class, then [`Reduction`] over
    /// images.
    #[config(default = "Aggregation::Batch")]
    pub aggregation: Aggregation,
    /// A class index whose pixels are left out (default `None`; index targets only), like
    /// Berman's `ignore`.
    #[config(default = "None")]
    pub ignore_index: Option<i64>,
    /// `true` (default): inputs are logits and `p = softmax(x)` over the channels; `false`:
    /// they are probabilities already (Berman's input).
    #[config(default = true)]
    pub from_logits: bool,
    /// How the per-image losses are combined (default [`Reduction::Mean`]).
    #[config(default = "Reduction::Mean")]
    pub reduction: Reduction,
    /// Host kernel or burn operations (default [`Execution::Auto`]: the host kernel on flex and
    /// ndarray), as for [`lovasz_sigmoid`].
    #[config(default = "Execution::Auto")]
    pub execution: Execution,
}

/// Lovász-softmax loss (beyond the paper, which is binary): for each problem (the batch, or
/// an image with [`Aggregation::PerImage`]) and each class `c` averaged over,
///
/// `e_i = |[y_i = c] - p_ic|`,  `l_c = sum_k e_(k) lovasz_grad([y = c]_(k))_k`
///
/// with `p = softmax(x)` over the channels and `(k)` the order of decreasing error; the
/// problem's loss is the mean of `l_c` over the classes of `config.classes`. Equals Berman's
/// `lovasz_softmax(probas, labels, classes, per_image, ignore)` (`per_image` as the
/// aggregation). Every (problem, class) pair
/// is one Lovász-sigmoid problem on the probabilities `p_c` with the labels `[y = c]`. On flex
/// and ndarray ([`Execution::Auto`]) one host kernel computes the softmax per pixel and the
/// errors of every pair in one pass (each error keeps its label in its sign, so the pairs never
/// read the targets again), their stable radix sorts in parallel (the labels ride in the sort
/// keys; a pair of more than 2^17 pixels is split by the top 16 bits first, each part sorted in
/// cache), and the softmax's backward, with no one-hot and no per-class tensor; elsewhere burn
/// operations build the probabilities and the pairs are solved in one batched call of the
/// Lovász-sigmoid loss. Ignored pixels get probability 0 and label 0: their error is 0, they
/// sort after every pixel with a positive error and change no weight there, which is the same
/// loss and gradient as removing them. On a cube device (wgpu) nothing is read to the host; on
/// flex and ndarray with `Execution::Device` the errors are read once, as in every Lovász
/// loss.
///
/// # Device path
/// On a cube device (wgpu): one sort of every (image, class) row (`segloss::cube::lovasz_weights`)
/// and burn's fused operations, no read to the host; with `LovaszClasses::List`, one upload of
/// the class mask (C values). Kernel counts: the [device-path table](crate::losses#device-path).
///
/// # Errors
/// Rank < 2, a zero-sized dimension, targets whose shape is not `[N, 1, ...]` (indices) or
/// the logits' (per-class one-hot), different devices, non-binary per-class targets,
/// `ignore_index` with per-class targets, an empty `LovaszClasses::List` or a class in it
/// outside `0..C`.
///
/// ```
/// # #[cfg(feature = "flex")] {
/// use burn::tensor::{Device, Int, Tensor};
/// use segloss::losses::{lovasz_softmax, LovaszSoftmaxConfig};
/// let device = Device::flex();
/// let logits = Tensor::<3>::from_floats([[[4.0, -1.0, 0.0], [-2.0, 3.0, 1.0]]], &device);
/// let classes = Tensor::<3, Int>::from_ints([[[0, 1, 0]]], &device);
/// let loss = lovasz_softmax(logits, classes, &LovaszSoftmaxConfig::new()).unwrap();
/// assert!(loss.into_scalar::<f32>() > 0.0);
/// # }
/// ```
pub fn lovasz_softmax<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<WeightedClassTargets<D>>,
    config: &LovaszSoftmaxConfig,
) -> Result<Tensor<1>, SegLossError> {
    compute(config, logits, targets.into())
}

impl LossDescription for LovaszSoftmaxConfig {
    type Targets<const D: usize> = WeightedClassTargets<D>;

    /// The checks of the options alone: a class list, when given, is not empty (its indices
    /// are checked against the logits' channels in each call).
    fn validate(&self) -> Result<(), SegLossError> {
        if matches!(&self.classes, LovaszClasses::List(list) if list.is_empty()) {
            return Err(SegLossError::InvalidOption {
                name: "classes",
                value: "LovaszClasses::List([])".into(),
                allowed: "at least one class in LovaszClasses::List",
            });
        }
        Ok(())
    }

    fn plan<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: WeightedClassTargets<D>,
        _share: bool,
    ) -> Result<Plan<D>, SegLossError> {
        self.validate()?;
        check::batch_shape(&logits, "logits")?;
        let (n, classes) = (logits.dims()[0], logits.dims()[1]);
        if let LovaszClasses::List(list) = &self.classes
            && let Some(&bad) = list.iter().find(|&&c| c >= classes)
        {
            return Err(SegLossError::InvalidParameter {
                name: "classes",
                value: bad as f64,
                allowed: "class indices in 0..C (the logits' channel count)",
            });
        }
        let (logits, targets, pixel_weights) = targets.checked(logits, self.ignore_index)?;
        let (images, pixels) = (n, logits.dims()[2..].iter().product::<usize>());
        let per_image = self.aggregation == Aggregation::PerImage;
        let problem_len = if per_image { pixels } else { images * pixels };
        if sorts_on_host(self.execution, &logits, targets.is_tracked(), problem_len)? {
            let kernel = LovaszSoftmaxKernel {
                classes,
                from_logits: self.from_logits,
                ignore_index: self.ignore_index,
                per_image,
                selection: match &self.classes {
                    LovaszClasses::Present => ClassSelection::Present,
                    LovaszClasses::All => ClassSelection::All,
                    LovaszClasses::List(list) => {
                        ClassSelection::Listed((0..classes).map(|c| list.contains(&c)).collect())
                    }
                },
                reduction: self.reduction,
            };
            return Ok(Plan::host(
                logits,
                targets.into_host(),
                pixel_weights,
                Reduction::None,
                kernel,
            ));
        }
        let (p, y) = probabilities_and_targets(
            logits,
            targets,
            ClassMode::Softmax,
            self.from_logits,
            self.ignore_index,
        )?;
        // Each class's pixels weighted as its image's.
        let w = class_rows_of(pixel_weights).map(|w| w.expand(p.dims()));
        // One row per (problem, class): [N * C, P] per image, [C, N * P] for the batch.
        let (p, y, w, problems) = if per_image {
            let rows = |t: Tensor<3>| t.reshape([(n * classes) as i64, -1]);
            (rows(p), rows(y), w.map(rows), n)
        } else {
            let batch = |t: Tensor<3>| t.swap_dims(0, 1).reshape([classes as i64, -1]);
            (batch(p), batch(y), w.map(batch), 1)
        };
        let sigmoid_config = LovaszSigmoidConfig::new()
            .with_aggregation(Aggregation::PerImage)
            .with_from_logits(false)
            .with_reduction(Reduction::None)
            .with_execution(self.execution);
        // Presence by weighted counts: a class only in zero-weight pixels is absent.
        let target_sums = weighted(y.clone(), w.as_ref())
            .sum_dim(1)
            .reshape([problems, classes]);
        let y = BinaryTargets {
            targets: y,
            pixel_weights: w,
        };
        let losses = lovasz_sigmoid(p, y, &sigmoid_config)?.reshape([problems, classes]);
        let mask = match &self.classes {
            LovaszClasses::Present => present(&target_sums),
            LovaszClasses::All => losses.ones_like().detach(),
            LovaszClasses::List(list) => {
                let mut m = vec![0.0; classes];
                for &c in list {
                    m[c] = 1.0;
                }
                crate::engine::host::upload(m, [1, classes], &losses.device(), losses.dtype())
            }
        };
        // With batch aggregation there is one problem: any reduction of it is the value itself.
        Ok(Plan::Computed(
            self.reduction.apply(weighted_mean(losses, mask)),
        ))
    }
}
