//! # segloss
//!
//! Differentiable segmentation losses and hard segmentation metrics for
//! [burn](https://burn.dev) 0.22, after Bertels et al., *Optimizing the Dice Score and Jaccard
//! Index for Medical Image Segmentation: Theory & Practice* (MICCAI 2019).
//!
//! The losses are free functions over `burn::tensor::Tensor<D>`: they run on whichever device
//! their inputs live on (ndarray, flex, wgpu; with or without autodiff), create every new
//! tensor on that device and never name a backend.
//!
//! | loss | per image, `p = sigmoid(x)`, sums over pixels | paper |
//! |---|---|---|
//! | [`binary_cross_entropy`](losses::binary_cross_entropy) | `mean(max(x,0) - x y + ln(1 + e^-abs(x)))` | CE |
//! | [`weighted_cross_entropy`](losses::weighted_cross_entropy) | CE with weights `1/(2q)` (fg), `1/(2-2q)` (bg) | wCE, Eq. 3 |
//! | [`soft_dice`](losses::soft_dice) | `1 - (2 sum(p y) + s_nr) / (sum(p) + sum(y) + s_dr)` | Eq. 1 relaxed |
//! | [`soft_jaccard`](losses::soft_jaccard) | `1 - (sum(p y) + s_nr) / (sum(p) + sum(y) - sum(p y) + s_dr)` | Eq. 1 relaxed |
//! | [`lovasz_sigmoid`](losses::lovasz_sigmoid) | `sum_k abs(y - p)_(k) lovasz_grad(y_(k))_k`, errors sorted descending | Lovász-sigmoid |
//! | [`lovasz_hinge`](losses::lovasz_hinge) | `sum_k relu(1 - x(2y-1))_(k) lovasz_grad(y_(k))_k` | Berman et al. 2018 |
//! | [`tversky`](losses::tversky) | `1 - (I + s_nr) / (I + alpha FP + beta FN + s_dr)`, `I = sum(p y)` | beyond: Salehi et al. 2017 |
//! | [`focal`](losses::focal) | `mean(alpha_t sigmoid(-x(2y-1))^gamma ce)` | beyond: Lin et al. 2017 |
//! | [`compound`](losses::compound) | `sum_k w_k loss_k` (e.g. Dice + CE) | beyond: nnU-Net, MONAI |
//! | [`multiclass_overlap`](losses::multiclass_overlap) | per class as above (softmax or sigmoid), averaged over classes | beyond: MONAI `DiceLoss(softmax=True)` |
//! | [`lovasz_softmax`](losses::lovasz_softmax) | mean over classes of the Lovász loss of `abs([y = c] - p_c)` | beyond: Berman et al. 2018 |
//! | [`generalized_dice`](losses::generalized_dice) | `1 - (2 sum_c w_c I_c + s_nr) / (sum_c w_c (P_c + Y_c) + s_dr)` | beyond: Sudre et al. 2017 |
//! | [`multiclass_focal`](losses::multiclass_focal) | `mean_i sum_c -w_c (1 - p_ic)^gamma y_ic ln p_ic` (softmax) | beyond: Lin et al. 2017 |
//! | [`multiclass_compound`](losses::multiclass_compound) | `sum_k w_k loss_k` (e.g. nnU-Net's Dice + CE) | beyond: nnU-Net, MONAI |
//! | [`boundary_loss`](losses::boundary_loss) | `mean(p phi(y))`, `phi` the signed distance map | beyond: Kervadec et al. 2019 |
//! | [`hausdorff_dt_loss`](losses::hausdorff_dt_loss) | `mean((p - y)^2 (d_p^alpha + d_y^alpha))` | beyond: MONAI `HausdorffDTLoss` |
//!
//! The overlap losses also take `soft_label` (`I = (sum(p) + sum(y) - sum|p-y|)/2`, minimal at
//! `p = y` for soft targets) and `log_loss` (`-ln(score)`).
//!
//! Hard metrics live in [`metrics`] (exact per-image [`metrics::Confusion`] counts; Dice,
//! Jaccard, Hamming and weighted Hamming, Eq. 1–3, with an explicit [`EmptyPolicy`]; per
//! class with micro and macro averages in [`metrics::ClassConfusion`]), the distance metrics
//! (Hausdorff, HD95, ASSD, MASD, NSD) in [`metrics::surface`], batch statistics shared across
//! data-parallel workers in [`distributed`], the paper's theory (Eq. 4, Prop. 1–2) in
//! [`theory`].
//!
//! Every loss, binary and multiclass, has two implementations, chosen once per call by its
//! `execution` option ([`Execution`]): fused multi-threaded host kernels (the default on the
//! CPU backends flex and ndarray; value and gradient in native passes over the backend's own
//! buffers, joined to burn's autodiff graph as one custom operation whose backward hands on the
//! kernel's gradient; the multiclass kernels compute each pixel's softmax in place, with no
//! one-hot and no softmax tensor) and burn tensor operations (the default on wgpu, fusable
//! there). They agree to 1e-5. The Lovász losses' sort and running counts run on the device
//! on wgpu and other CubeCL backends through this crate's own kernels (module `cube`, feature
//! `cube`, on with `wgpu`: a burn backend extension with a stable segmented radix sort and row
//! prefix sums).
//!
//! Conventions: inputs `[N, ...]` (rank >= 2, N images: `[N,H,W]`, `[N,1,H,W]`,
//! `[N,1,Z,H,W]`...), binary targets of the same shape with values in `[0, 1]`; multiclass
//! logits `[N, C, ...]` with class indices `[N, 1, ...]` or per-class targets `[N, C, ...]`.
//! The result is `[1]` for [`Reduction::Mean`] and [`Reduction::Sum`], `[N]` for
//! [`Reduction::None`] (`[1]` whatever the reduction when the statistics cover the whole
//! batch: `Aggregation::Batch`).
//! Every function returns `Result<_, SegLossError>` and checks its input instead of
//! panicking. A NaN in the input gives a NaN loss on every backend and path, as in PyTorch, so
//! a diverged run is seen at once (and, on the host kernels, a NaN gradient at that pixel).
//!
//! Every loss is also a burn module ([`losses#modules`]): `SoftDiceConfig::new().init()?`
//! checks the options once and gives a [`SoftDiceLoss`](losses::SoftDiceLoss) whose
//! `forward(logits, targets)` fits in a `TrainStep` (it panics on bad input, as burn-nn's
//! losses do; `try_forward` returns the error). A loss chosen at run time is a
//! [`Loss`](losses::Loss) value, and its module the compound of that one term. How the crate is
//! built, layer by layer, is in `docs/ARCHITECTURE.md`.
//!
//! ```
//! # #[cfg(feature = "flex")] {
//! use burn::tensor::{Device, Tensor};
//! use segloss::losses::{soft_dice, SoftDiceConfig};
//!
//! let device = Device::flex().autodiff();
//! let logits = Tensor::<4>::from_floats([[[[2.0, -1.0], [0.5, -3.0]]]], &device).require_grad();
//! let targets = Tensor::<4>::from_floats([[[[1.0, 0.0], [1.0, 0.0]]]], &device);
//! let loss = soft_dice(logits.clone(), targets, &SoftDiceConfig::new().with_smooth_nr(1e-5))?;
//! let grads = loss.backward();
//! assert_eq!(logits.grad(&grads).unwrap().dims(), [1, 1, 2, 2]);
//! # }
//! # Ok::<(), segloss::SegLossError>(())
//! ```

// Unsafe code is allowed in three places only: the SIMD dispatch of `cpu::lanes`, which calls
// functions compiled for AVX2/AVX-512 after detecting the CPU features; one `madvise` call in
// `cpu::gradient_buffer`; and the CubeCL kernel launches of `cube`, which hand the kernels raw
// device buffers.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod api;
mod check;
mod cpu;
#[cfg(feature = "cube")]
#[allow(unsafe_code)] // CubeCL launches take raw buffers (`BufferArg::from_raw_parts`).
pub mod cube;
mod engine;
mod error;
mod kernels;
mod loss;
pub mod losses;
pub mod metrics;
mod options;
mod tensors;
pub mod theory;

pub use api::distributed;
pub use engine::validate::{TargetKind, validate_class_indices, validate_targets};

pub use error::SegLossError;
pub use options::{Aggregation, EmptyPolicy, Execution, Reduction};

// The README's code blocks, compiled and run as doctests so that its example stays true.
#[cfg(all(doctest, feature = "flex"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Everything needed to call the losses: `use segloss::prelude::*;`.
pub mod prelude {
    pub use crate::losses::*;
    pub use crate::{Aggregation, EmptyPolicy, Execution, Reduction, SegLossError, TargetKind};
}
