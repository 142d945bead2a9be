//! The crate's error type.

/// Everything that can go wrong when calling a `segloss` function.
///
/// Every public function checks its inputs up front and returns one of these instead of
/// panicking (burn itself panics on mismatched shapes, mixed dtypes or mixed devices).
///
/// `#[non_exhaustive]`: later versions may add variants, so a `match` needs a `_` arm.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
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

    /// A tensor has a shape the function does not take (for example a surface metric given
    /// masks that are not `[N, 1, S1, S2]` or `[N, 1, S1, S2, S3]`).
    #[error("unsupported shape {shape:?} for {name}: expected {expected}")]
    UnsupportedShape {
        /// Which input.
        name: &'static str,
        /// Its shape.
        shape: Vec<usize>,
        /// The shapes that are accepted.
        expected: &'static str,
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

    /// A numeric configuration value is outside its allowed range.
    #[error("invalid parameter `{name}` = {value}: allowed range is {allowed}")]
    InvalidParameter {
        /// The option's name, as in the config struct.
        name: &'static str,
        /// The value given.
        value: f64,
        /// The allowed range, in words or interval notation.
        allowed: &'static str,
    },

    /// A non-numeric option (a flag, an enum, a list) has a value that cannot be used here,
    /// alone or together with the inputs (for example [`Execution::Host`](crate::Execution)
    /// with targets that require a gradient, or an empty list of terms).
    #[error("invalid option `{name}` = {value}: {allowed}")]
    InvalidOption {
        /// The option's name, as in the config struct.
        name: &'static str,
        /// The value given, as Rust prints it (or the combination that is not allowed).
        value: String,
        /// What is allowed, in words.
        allowed: &'static str,
    },

    /// A count exceeds what a backend or an index type can hold (for example more than
    /// `2^31 - 1` pixels per image counted on flex or wgpu, whose integers are 32-bit).
    #[error("{what}: {count} exceeds the limit of {limit}")]
    TooLarge {
        /// What was counted, and where.
        what: &'static str,
        /// The count.
        count: u64,
        /// The largest count supported.
        limit: u64,
    },

    /// Data could not be read back from the device to the host (a backend failure, not a
    /// problem of the values).
    #[error("could not read {what} from the device: {reason}")]
    HostRead {
        /// What was being read.
        what: &'static str,
        /// The backend's error.
        reason: String,
    },

    /// Something this build or backend cannot do (for example a collective on a backend that
    /// has none: burn 0.22 runs them on CUDA and remote devices only).
    #[error("{what} is not supported: {reason}")]
    Unsupported {
        /// What was asked for.
        what: &'static str,
        /// Why it cannot run here, and what to do instead.
        reason: String,
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
