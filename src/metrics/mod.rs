//! Hard segmentation metrics: exact per-image confusion counts and the scores of Bertels et
//! al. computed from them (Dice, Jaccard, Hamming and weighted Hamming, Eq. 1–3); for class
//! maps, [`ClassConfusion`] gives the same per class, with micro and macro averages.
//!
//! ```
//! # #[cfg(feature = "flex")] {
//! use burn::tensor::{Bool, Device, Tensor};
//! use segloss::EmptyPolicy;
//! use segloss::metrics::{Confusion, threshold_logits, DEFAULT_LOGIT_THRESHOLD};
//! let device = Device::flex();
//! let logits = Tensor::<3>::from_floats([[[3.0, -2.0], [1.0, -1.0]]], &device);
//! let target = Tensor::<3, Bool>::from_bool([[[true, false], [false, false]]], &device);
//! let c = Confusion::from_masks(threshold_logits(logits, DEFAULT_LOGIT_THRESHOLD), target)?;
//! assert_eq!((c.tp()[0], c.fp()[0], c.fn_()[0], c.tn()[0]), (1, 1, 0, 2));
//! assert_eq!(c.dice(EmptyPolicy::One), vec![2.0 / 3.0]);
//! assert_eq!(c.jaccard(EmptyPolicy::One), vec![0.5]);
//! # }
//! # Ok::<(), segloss::SegLossError>(())
//! ```

mod class_confusion;
mod confusion;
mod scores;
pub mod surface;
#[cfg(feature = "train")]
pub mod train;

pub use class_confusion::ClassConfusion;
pub use confusion::Confusion;
pub use scores::mean_over_images;

use burn::tensor::{Bool, Tensor};

/// Default threshold on logits: a pixel is foreground when `x > 0`, i.e. `sigmoid(x) > 0.5`.
pub const DEFAULT_LOGIT_THRESHOLD: f64 = 0.0;
/// Default threshold on probabilities: a pixel is foreground when `p > 0.5`.
pub const DEFAULT_PROBABILITY_THRESHOLD: f64 = 0.5;

/// Hard mask from logits: `x > threshold` (use [`DEFAULT_LOGIT_THRESHOLD`]).
pub fn threshold_logits<const D: usize>(logits: Tensor<D>, threshold: f64) -> Tensor<D, Bool> {
    logits.greater_elem(threshold)
}

/// Hard mask from probabilities: `p > threshold` (use [`DEFAULT_PROBABILITY_THRESHOLD`]).
pub fn threshold_probabilities<const D: usize>(
    probabilities: Tensor<D>,
    threshold: f64,
) -> Tensor<D, Bool> {
    probabilities.greater_elem(threshold)
}
