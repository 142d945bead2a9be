//! Lovász-sigmoid and Lovász hinge (Berman, Rannen Triki & Blaschko, CVPR 2018): tight convex
//! surrogates of the Jaccard loss built from its Lovász extension.
//!
//! # How it is computed
//!
//! For one image with errors `e` (one per pixel) and labels `y`, the loss is
//! `sum_k e_(k) * g_k`, where `e_(1) >= e_(2) >= ...` are the errors sorted in descending order
//! and `g = lovasz_grad(y in that order)`. The weights `g` depend only on the order, which is
//! constant almost everywhere, so treating them as constants gives the exact value and the
//! exact (sub)gradient `g_k` for pixel `(k)`, the same as autodiff through Berman's reference.
//!
//! burn 0.22 has no fast device sort (`sort` on wgpu and ndarray copies the tensor to the
//! host, sorts there and uploads it back) and its wgpu `cumsum` is a naive O(P^2) kernel (6 s
//! for `[4, 65536]` on Mesa's software Vulkan), so no path here chains burn's `sort`, `gather`
//! and `cumsum`:
//!
//! - **Host path** (the default on flex and ndarray): one read of logits and labels, then per
//!   image, in parallel over images, the errors, a stable LSD radix sort of their f32 bit
//!   patterns (ties broken by ascending pixel index; an image of more than 2^17 pixels is
//!   first split by the top 16 bits, and each part sorted while it is in cache), and one pass
//!   that computes the weights, the value and the gradient together; the gradient joins the
//!   graph as in every host-path loss. O(P) per image.
//! - **Device path on a cube device** (wgpu, CUDA, ROCm; feature `cube`, on with `wgpu`): the errors, their
//!   stable radix sort and the labels' running counts ([`crate::cube`], CubeCL kernels), the
//!   weights from those counts, and the loss, all queued on the device: no read, no sync and
//!   no upload in forward or backward. The weights are f32 (the host path's are f64). Cost per
//!   problem of P pixels: eight radix passes of 20 bytes per pixel (the labels ride in the sort
//!   payloads), one three-kernel scan of the sorted labels that writes the weights, and burn's
//!   elementwise operations, all O(P).
//! - **Device path elsewhere** (`Execution::Device` on flex or ndarray, or a problem of more
//!   than `2^31 - 1` pixels): the detached errors and the labels are read to the host once
//!   (one device sync), each image is sorted with a stable comparison sort (same tie-break),
//!   the weights are computed in one O(P) pass in f64 and uploaded once, and the loss is an
//!   elementwise product and a sum on the device. O(P log P) host work per image plus a
//!   download of `2 * N * P` values and an upload of `N * P`.
//!
//! In every path the loss is `sum(errors * weights)` with the weights held constant, so the
//! gradient is exact.
//!
//! Results and gradients are the same on every backend and thread count.

use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;

use crate::check;
use crate::engine::host::{read_f64, upload};
use crate::loss::pixel_weights::BinaryTargets;

use crate::engine::validate::{TargetKind, check_values};
use crate::engine::{Plan, runs_on_host};
use crate::error::SegLossError;
use crate::kernels::lovasz::{Errors, LovaszKernel};
use crate::loss::description::{LossDescription, compute};
use crate::loss::probabilities;
use crate::options::{Aggregation, Execution, Reduction};
use crate::tensors::{row_sums, rows};

/// Options of [`lovasz_sigmoid`].
#[derive(Config, Debug)]
pub struct LovaszSigmoidConfig {
    /// [`Aggregation::PerImage`] (default, as Berman's `per_image=True`): one Lovász problem
    /// per image, then [`Reduction`]; [`Aggregation::Batch`]: all pixels of the batch form one
    /// problem, and the result has shape `[1]` whatever the reduction.
    #[config(default = "Aggregation::PerImage")]
    pub aggregation: Aggregation,
    /// `true` (default): inputs are logits and `p = sigmoid(x)`; `false`: probabilities.
    #[config(default = true)]
    pub from_logits: bool,
    /// How the per-image losses are combined (default [`Reduction::Mean`]).
    #[config(default = "Reduction::Mean")]
    pub reduction: Reduction,
    /// Host kernels or burn operations (default [`Execution::Auto`]: host kernels on the CPU
    /// backends). On a cube device (wgpu) the sort runs there; on flex and ndarray both paths
    /// sort on the host; see the module docs.
    #[config(default = "Execution::Auto")]
    pub execution: Execution,
}

/// Options of [`lovasz_hinge`].
#[derive(Config, Debug)]
pub struct LovaszHingeConfig {
    /// [`Aggregation::PerImage`] (default, as Berman's and smp's `per_image=True`): one Lovász
    /// problem per image, then [`Reduction`]; [`Aggregation::Batch`]: all pixels of the batch
    /// form one problem, and the result has shape `[1]` whatever the reduction.
    #[config(default = "Aggregation::PerImage")]
    pub aggregation: Aggregation,
    /// Must stay `true` (the default): the hinge is defined on raw scores; `false` is an
    /// [`SegLossError::InvalidOption`]. Kept so that every config has the option.
    #[config(default = true)]
    pub from_logits: bool,
    /// How the per-image losses are combined (default [`Reduction::Mean`]).
    #[config(default = "Reduction::Mean")]
    pub reduction: Reduction,
    /// Host kernels or burn operations (default [`Execution::Auto`]), as for
    /// [`LovaszSigmoidConfig::execution`].
    #[config(default = "Execution::Auto")]
    pub execution: Execution,
}

/// What the two Lovász losses share: what a problem is, its reduction and the path.
struct LovaszOptions {
    per_image: bool,
    reduction: Reduction,
    execution: Execution,
}

/// Lovász-sigmoid loss (Sect. 2 of Bertels et al.): the Lovász extension of the Jaccard loss
/// applied to the probability errors of a sigmoid output.
///
/// Per problem (an image, or the batch with [`Aggregation::Batch`]):
///
/// `e_i = |y_i - p_i|`,  `loss = sum_k e_(k) * lovasz_grad(y_(k))_k`
///
/// with `p = sigmoid(x)` and `(k)` the order of decreasing error. Equals Berman's
/// `lovasz_softmax(p, y, classes=[1])` on a single-channel probability map (`per_image` as
/// the aggregation). Targets must be hard masks (0 or 1). On flex and ndarray the loss reads them
/// anyway, so other values are reported as [`SegLossError::InvalidTargets`], and
/// `Execution::Device` there reads errors and labels to the host once; on a cube device nothing
/// is read and other values make the loss NaN (see the module docs for why and what each path
/// costs).
///
/// # Device path
/// On a cube device (wgpu): the sort and weights of `segloss::cube::lovasz_weights` and burn's
/// fused operations, no read to the host, no upload; the kernel counts are in the
/// [device-path table](crate::losses#device-path).
///
/// # Errors
/// Shape mismatch, rank < 2, a zero-sized dimension, different devices, non-binary targets
/// (found where the targets are read: on the host path and the device path of the CPU
/// backends; on a cube device, which reads nothing, a non-binary target makes the loss NaN:
/// check with [`validate_targets`](crate::validate_targets)), and the [refused inputs](crate::losses#inputs-every-loss-refuses-or-widens).
///
/// ```
/// # #[cfg(feature = "flex")] {
/// use burn::tensor::{Device, Tensor};
/// use segloss::losses::{lovasz_sigmoid, LovaszSigmoidConfig};
/// let device = Device::flex();
/// let logits = Tensor::<3>::from_floats([[[2.0, -1.0], [0.5, -3.0]]], &device);
/// let targets = Tensor::<3>::from_floats([[[1.0, 0.0], [0.0, 0.0]]], &device);
/// let loss = lovasz_sigmoid(logits, targets, &LovaszSigmoidConfig::new()).unwrap();
/// assert!(loss.into_scalar::<f32>() > 0.0);
/// # }
/// ```
pub fn lovasz_sigmoid<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<BinaryTargets<D>>,
    config: &LovaszSigmoidConfig,
) -> Result<Tensor<1>, SegLossError> {
    compute(config, logits, targets.into())
}

impl LossDescription for LovaszSigmoidConfig {
    type Targets<const D: usize> = BinaryTargets<D>;

    /// Every option is valid.
    fn validate(&self) -> Result<(), SegLossError> {
        Ok(())
    }

    fn plan<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: BinaryTargets<D>,
        _share: bool,
    ) -> Result<Plan<D>, SegLossError> {
        let from_logits = self.from_logits;
        let options = LovaszOptions {
            per_image: self.aggregation == Aggregation::PerImage,
            reduction: self.reduction,
            execution: self.execution,
        };
        lovasz(
            logits,
            targets,
            &options,
            Errors::Sigmoid { from_logits },
            |x, y| (y - probabilities(x, from_logits)).abs(),
        )
    }
}

/// Lovász hinge loss (Berman et al. 2018, Eq. 10 there): the Lovász extension of the Jaccard
/// loss applied to hinge errors of the logits.
///
/// Per problem (an image, or the batch with [`Aggregation::Batch`]):
///
/// `e_i = 1 - x_i * (2 y_i - 1)`,  `loss = sum_k relu(e_(k)) * lovasz_grad(y_(k))_k`
///
/// with `(k)` the order of decreasing `e`. Equals Berman's and smp's `lovasz_hinge(logits,
/// labels, per_image)` (`per_image` as the aggregation). An image with no foreground still has a loss, `relu(1 + max x)`, which
/// pushes every logit below -1. Targets must be hard masks (0 or 1).
///
/// # Device path
/// On a cube device (wgpu): the sort and weights of `segloss::cube::lovasz_weights` and burn's
/// fused operations, no read to the host, no upload; the kernel counts are in the
/// [device-path table](crate::losses#device-path).
///
/// # Errors
/// As [`lovasz_sigmoid`], plus `from_logits = false` (the hinge needs raw scores).
pub fn lovasz_hinge<const D: usize>(
    logits: Tensor<D>,
    targets: impl Into<BinaryTargets<D>>,
    config: &LovaszHingeConfig,
) -> Result<Tensor<1>, SegLossError> {
    compute(config, logits, targets.into())
}

impl LossDescription for LovaszHingeConfig {
    type Targets<const D: usize> = BinaryTargets<D>;

    /// `from_logits = true` (the hinge is defined on raw scores).
    fn validate(&self) -> Result<(), SegLossError> {
        if !self.from_logits {
            return Err(SegLossError::InvalidOption {
                name: "from_logits",
                value: "false".into(),
                allowed: "true only: the Lovász hinge is defined on raw scores (logits)",
            });
        }
        Ok(())
    }

    fn plan<const D: usize>(
        &self,
        logits: Tensor<D>,
        targets: BinaryTargets<D>,
        _share: bool,
    ) -> Result<Plan<D>, SegLossError> {
        self.validate()?;
        let options = LovaszOptions {
            per_image: self.aggregation == Aggregation::PerImage,
            reduction: self.reduction,
            execution: self.execution,
        };
        // The sort key is relu(e) rather than Berman's e: the two orders differ only among
        // pixels with e <= 0, which come last in both and contribute relu(e) = 0 to value and
        // gradient.
        lovasz(logits, targets, &options, Errors::Hinge, |x, y| {
            let signs = y.mul_scalar(2.0).sub_scalar(1.0);
            relu(x.mul(signs).neg().add_scalar(1.0))
        })
    }
}

/// The Lovász gradient of the Jaccard loss for labels sorted by decreasing error
/// (Berman et al. 2018, Alg. 1):
///
/// `G = sum(g)`, `I_k = G - cumsum(g)_k`, `U_k = G + cumsum(1 - g)_k`, `J_k = 1 - I_k / U_k`,
/// result `[J_1, J_2 - J_1, ..., J_P - J_(P-1)]`.
///
/// `U_k >= k >= 1` for labels in `[0, 1]`, so there is no division by zero; with no
/// foreground at all the result is `[1, 0, ..., 0]`. Computed on the host in f64 (one read, one
/// upload) because burn's device `cumsum` is O(P^2) on wgpu.
///
/// # Errors
/// An empty tensor, or a label outside `[0, 1]`.
///
/// ```
/// # #[cfg(feature = "flex")] {
/// use burn::tensor::{Device, Tensor};
/// use segloss::losses::lovasz_grad;
/// let g = Tensor::<1>::from_floats([1.0, 0.0, 1.0, 0.0], &Device::flex());
/// let w: Vec<f32> = lovasz_grad(g).unwrap().into_data().to_vec().unwrap();
/// // J = [1 - 1/2, 1 - 1/3, 1 - 0/3, 1 - 0/4] = [0.5, 0.667, 1, 1]
/// assert!((w[0] - 0.5).abs() < 1e-6 && (w[1] - 1.0 / 6.0).abs() < 1e-6);
/// # }
/// ```
pub fn lovasz_grad(gt_sorted: Tensor<1>) -> Result<Tensor<1>, SegLossError> {
    let len = gt_sorted.dims()[0];
    if len == 0 {
        return Err(SegLossError::EmptyTensor {
            name: "gt_sorted",
            shape: vec![0],
        });
    }
    let (device, dtype) = (gt_sorted.device(), gt_sorted.dtype());
    let labels = read_f64(gt_sorted, "gt_sorted")?;
    check_values(&labels, TargetKind::Soft)?;
    let order: Vec<usize> = (0..len).collect();
    let mut weights = vec![0.0; len];
    jaccard_weights(&labels, None, &order, &mut weights);
    Ok(upload(weights, [len], &device, dtype))
}

/// Whether a Lovász loss with problems of `problem_len` pixels runs on the host
/// ([`runs_on_host`]): the host kernels sort u32 pixel indices, so a larger problem takes the
/// device path, and is an error under `Execution::Host`.
pub(crate) fn sorts_on_host<const D: usize>(
    execution: Execution,
    logits: &Tensor<D>,
    targets_tracked: bool,
    problem_len: usize,
) -> Result<bool, SegLossError> {
    let fits_host_kernel = u32::try_from(problem_len).is_ok();
    if execution == Execution::Host && !fits_host_kernel {
        return Err(SegLossError::InvalidParameter {
            name: "execution",
            value: problem_len as f64,
            allowed: "Execution::Host sorts at most 2^32 - 1 pixels per Lovász problem",
        });
    }
    Ok(fits_host_kernel && runs_on_host(execution, logits, targets_tracked)?)
}

/// The shared body of the Lovász losses: `kind` names the errors for the host kernel, and
/// `errors(x, y)` builds the same per-pixel errors on `[N, P]` rows for the device path (the
/// sort key and the factor of the weights).
fn lovasz<const D: usize>(
    logits: Tensor<D>,
    targets: BinaryTargets<D>,
    config: &LovaszOptions,
    kind: Errors,
    errors: impl Fn(Tensor<2>, Tensor<2>) -> Tensor<2>,
) -> Result<Plan<D>, SegLossError> {
    let (logits, targets, pixel_weights) = targets.checked(logits)?;
    let (n, p) = check::batch_shape(&logits, "logits")?;
    let problem_len = if config.per_image { p } else { n * p };
    if sorts_on_host(config.execution, &logits, targets.is_tracked(), problem_len)? {
        let kernel = LovaszKernel {
            per_image: config.per_image,
            errors: kind,
        };
        let plan = Plan::host(logits, targets, pixel_weights, config.reduction, kernel);
        return Ok(plan);
    }
    let (device, dtype) = (logits.device(), logits.dtype());
    let y = rows(targets);
    // The errors once: the sort reads them without their graph (the weights are constants of
    // the sort), the loss multiplies them with it.
    let e = errors(rows(logits), y.clone());

    // The device sort has no pixel weights: a weighted call sorts on the host below.
    #[cfg(feature = "cube")]
    if pixel_weights.is_none()
        && crate::cube::on_cube_device(&e)
        && crate::cube::lovasz_weights_fit(n * p / problem_len, problem_len)
    {
        // One row per problem.
        let problems = |t: Tensor<2>| t.inner().reshape([(n * p / problem_len) as i64, -1]);
        // The kernels' weights are f32: in the errors' dtype for the product.
        let weights = device_jaccard_weights(problems(e.clone().detach()), problems(y))?
            .reshape([n, p])
            .cast(dtype);
        return Ok(Plan::Computed(weighted_errors(e, weights, config)));
    }

    let host_errors = read_f64(e.clone().detach(), "errors")?;
    let host_labels = read_f64(y, "targets")?;
    check_values(&host_labels, TargetKind::Hard)?;
    let host_pixel_weights = match pixel_weights {
        Some(w) => Some(read_f64(w, "pixel weights")?),
        None => None,
    };

    let mut weights = vec![0.0; n * p];
    let mut order = Vec::with_capacity(problem_len);
    for (k, ((e, g), w)) in host_errors
        .chunks(problem_len)
        .zip(host_labels.chunks(problem_len))
        .zip(weights.chunks_mut(problem_len))
        .enumerate()
    {
        order.clear();
        order.extend(0..problem_len);
        // Stable: equal errors keep ascending pixel order.
        order.sort_by(|&a, &b| e[b].total_cmp(&e[a]));
        let counts = host_pixel_weights
            .as_ref()
            .map(|pw| &pw[k * problem_len..(k + 1) * problem_len]);
        jaccard_weights(g, counts, &order, w);
    }
    let weights = upload(weights, [n, p], &device, dtype);
    Ok(Plan::Computed(weighted_errors(e, weights, config)))
}

/// The loss from the errors (with their graph) and the constant weights, both `[N, P]`: the
/// reduction of the per-image sums, or the batch's sum.
fn weighted_errors(errors: Tensor<2>, weights: Tensor<2>, config: &LovaszOptions) -> Tensor<1> {
    let weighted = errors.mul(weights);
    if config.per_image {
        config.reduction.apply(row_sums(weighted))
    } else {
        weighted.sum()
    }
}

/// [`jaccard_weights`] of every row of `errors` (`[R, L]`) on its cube device, with the labels
/// `labels`, at each pixel's own position ([`crate::cube::lovasz_weights`]: the radix sort
/// with the labels in its payloads and one scan that writes the weights). Nothing is read to
/// the host or uploaded, so a training step stays queued on the device.
///
/// The host path checks that the labels are 0 or 1; here that would take a read, so a pixel
/// whose label is neither gets a NaN weight instead (and the loss is NaN), never a silent
/// number. The test is `|y (1 - y)| > 0`, float arithmetic and one comparison that burn's
/// fusion joins to the mask's kernel (boolean `or` and `not`, and `!=`, which burn builds as
/// `not(==)`, would each run as a kernel over the batch of its own); a NaN label needs no test,
/// its error is already NaN.
#[cfg(feature = "cube")]
fn device_jaccard_weights(errors: Tensor<2>, labels: Tensor<2>) -> Result<Tensor<2>, SegLossError> {
    let weights = crate::cube::lovasz_weights(errors, labels.clone())?;
    let not_binary = labels
        .clone()
        .mul(labels.neg().add_scalar(1.0))
        .abs()
        .greater_elem(0.0);
    Ok(weights.mask_fill(not_binary, f32::NAN))
}

/// Writes `lovasz_grad` of `labels` visited in `order` into `weights`, at each pixel's own
/// position (`weights[order[k]] = J_k - J_(k-1)`), so the caller needs no inverse permutation.
/// With pixel weights `counts`, of the weighted counts (as the host kernel's
/// `JaccardWeights`: a union of 0 so far, only zero-weight pixels and no foreground, is
/// `J = 0`).
fn jaccard_weights(labels: &[f64], counts: Option<&[f64]>, order: &[usize], weights: &mut [f64]) {
    let count = |i: usize| counts.map_or(1.0, |c| c[i]);
    let total: f64 = (0..labels.len()).map(|i| count(i) * labels[i]).sum();
    let (mut cum_fg, mut cum_bg, mut previous) = (0.0, 0.0, 0.0);
    for &i in order {
        cum_fg += count(i) * labels[i];
        cum_bg += count(i) * (1.0 - labels[i]);
        let union = total + cum_bg;
        // `== 0` rather than `> 0`: a NaN weight keeps the NaN.
        let jaccard = if union == 0.0 {
            0.0
        } else {
            1.0 - (total - cum_fg) / union
        };
        weights[i] = jaccard - previous;
        previous = jaccard;
    }
}
