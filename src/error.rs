//! The crate's error type.

/// Everything that can go wrong when calling a `segloss` function.
///
/// Every public function checks its inputs up front and returns one of these instead of
/// panicking (burn itself panics on mismatched shapes, mixed dtypes or mixed devices).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SegLossError {
    /// Two tensors that must have the same shape do not.
    #[error("shape mismatch: {left_name} has shape {left:?} but {right_name} has shape {right:?}")]
    ShapeMismatch {
        /// Name of the first tensor (e.g. `"logits"`).
        left_name: &'static str,
        /// Shape of the first tensor.
        left: Vec<usize>,
        /// Name of the second tensor (e.g. `"targets"`).
        right_name: &'static str,
        /// Shape of the second tensor.
        right: Vec<usize>,
    },

    /// The tensor rank is not supported (binary losses need `[N, ...]` with rank >= 2).
    #[error("unsupported rank {rank} for {name}: expected a rank of at least {min} ([N, ...])")]
    UnsupportedRank {
        /// Name of the offending tensor.
        name: &'static str,
        /// Its rank.
        rank: usize,
        /// The smallest rank accepted.
        min: usize,
    },

    /// A tensor has a zero-sized dimension, so there is no image or no pixel to score.
    #[error("{name} is empty (shape {shape:?}): every dimension must be at least 1")]
    EmptyTensor {
        /// Name of the offending tensor.
        name: &'static str,
        /// Its shape.
        shape: Vec<usize>,
    },

    /// The two tensors live on different devices.
    #[error("device mismatch: {left_name} is on {left} but {right_name} is on {right}")]
    DeviceMismatch {
        /// Name of the first tensor.
        left_name: &'static str,
        /// Its device, as burn prints it.
        left: String,
        /// Name of the second tensor.
        right_name: &'static str,
        /// Its device, as burn prints it.
        right: String,
    },

    /// A configuration value is outside its allowed range.
    #[error("invalid parameter `{name}` = {value}: allowed range is {allowed}")]
    InvalidParameter {
        /// The option's name, as in the config struct.
        name: &'static str,
        /// The value given.
        value: f64,
        /// The allowed range, in words or interval notation.
        allowed: &'static str,
    },

    /// Target values are not what the function needs (e.g. a Lovász loss given a value other
    /// than 0 or 1, or a target outside `[0, 1]`). Found by functions that read the targets
    /// anyway and by [`validate_targets`](crate::validate_targets).
    #[error("invalid target values: {reason}")]
    InvalidTargets {
        /// What was found, with an example value and its flat index.
        reason: String,
    },
}
