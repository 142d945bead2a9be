//! Small tensor helpers shared by the losses, the metrics and the engine (burn operations,
//! on every backend).

use burn::tensor::kind::Basic;
use burn::tensor::{Bool, Int, Tensor};

/// Flattens `[N, ...]` to `[N, P]`, one row of `P` pixels per image (any tensor kind).
pub(crate) fn rows<const D: usize, K: Basic>(tensor: Tensor<D, K>) -> Tensor<2, K> {
    tensor.flatten::<2>(1, D - 1)
}

/// Sum over each row of `[N, P]`, as a vector `[N]`.
pub(crate) fn row_sums(tensor: Tensor<2>) -> Tensor<1> {
    let n = tensor.dims()[0];
    tensor.sum_dim(1).reshape([n])
}

/// The one-hot masks `[N, C, P]` of class indices `[N, 1, P]`, built on the device by comparing
/// the indices with a class range (burn's `one_hot` reads the tensor to the host), and the
/// indices cast to the device's default int dtype, the range's (burn panics when two int
/// dtypes meet, and targets may come as u8 masks or i32 from a data loader).
pub(crate) fn one_hot(
    indices: Tensor<3, Int>,
    classes: usize,
) -> (Tensor<3, Bool>, Tensor<3, Int>) {
    let [n, _, pixels] = indices.dims();
    let full = [n, classes, pixels];
    let class_range = Tensor::<1, Int>::arange(0..classes as i64, &indices.device());
    let indices = if indices.dtype() == class_range.dtype() {
        indices
    } else {
        indices.cast(class_range.dtype())
    };
    let one_hot = indices
        .clone()
        .expand(full)
        .equal(class_range.reshape([1, classes as i64, 1]).expand(full));
    (one_hot, indices)
}
