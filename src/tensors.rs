//! Small tensor helpers shared by the losses, the metrics and the engine (burn operations,
//! on every backend).

use burn::tensor::kind::Basic;
use burn::tensor::{Bool, DType, Int, Tensor};

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
/// the indices with a class range (burn's `one_hot` reads the tensor to the host), and the mask
/// `[N, 1, P]` of the pixels whose index is not `ignore` (`None` when nothing is ignored).
///
/// Any index of any integer dtype is taken: one outside `0..classes` equals no class (an
/// all-zero column). The comparisons run in the indices' own dtype, against a class range
/// cast to it (`classes` values, not the batch) and an `ignore` that dtype holds: burn panics
/// on two int dtypes meeting, and on a scalar or a cast value out of a dtype's range
/// (`i64::MIN` cast to flex's i32, `-1` compared with a `u8` mask), which casting the indices
/// themselves would risk.
pub(crate) fn one_hot(
    indices: Tensor<3, Int>,
    classes: usize,
    ignore: Option<i64>,
) -> (Tensor<3, Bool>, Option<Tensor<3, Bool>>) {
    let [n, _, pixels] = indices.dims();
    let (dtype, device) = (indices.dtype(), indices.device());
    let (min, max) = int_range(dtype);
    let kept = ignore
        .filter(|v| (min..=max).contains(v))
        .map(|v| indices.clone().not_equal_elem(v));
    // Classes past the dtype's largest value: no index names them.
    let named = classes.min(usize::try_from(max).map_or(usize::MAX, |m| m.saturating_add(1)));
    let range = Tensor::<1, Int>::arange(0..named as i64, &device);
    let range = if range.dtype() == dtype {
        range
    } else {
        range.cast(dtype)
    };
    let full = [n, named, pixels];
    let mut one_hot = indices
        .expand(full)
        .equal(range.reshape([1, named as i64, 1]).expand(full));
    if named < classes {
        let rest = Tensor::<3, Int>::zeros([n, classes - named, pixels], &device).equal_elem(1);
        one_hot = Tensor::cat(vec![one_hot, rest], 1);
    }
    (one_hot, kept)
}

/// The smallest and largest value of an integer dtype that an `i64` scalar can name.
fn int_range(dtype: DType) -> (i64, i64) {
    match dtype {
        DType::I8 => (i8::MIN.into(), i8::MAX.into()),
        DType::I16 => (i16::MIN.into(), i16::MAX.into()),
        DType::I32 => (i32::MIN.into(), i32::MAX.into()),
        DType::U8 => (0, u8::MAX.into()),
        DType::U16 => (0, u16::MAX.into()),
        DType::U32 => (0, u32::MAX.into()),
        DType::U64 => (0, i64::MAX),
        _ => (i64::MIN, i64::MAX),
    }
}

/// `tensor` `[N, C, ...]` resized to the spatial shape `size` (its axes from 2 on) by torch's
/// `interpolate(mode="nearest-exact")`: output pixel `i` of an axis of `n_in` pixels resized to
/// `n_out` takes input pixel `min(floor((i + 0.5) n_in / n_out), n_in - 1)`, the scale in f32
/// as torch's float path computes it. A selection, so class indices stay indices. Axes already
/// of the right size are left alone (no copy).
pub(crate) fn nearest_exact<const D: usize, K: Basic>(
    tensor: Tensor<D, K>,
    size: &[usize],
) -> Tensor<D, K> {
    let mut out = tensor;
    for (axis, &n_out) in (2..D).zip(size) {
        let n_in = out.dims()[axis];
        if n_in == n_out {
            continue;
        }
        let scale = n_in as f32 / n_out as f32;
        let picks: Vec<i64> = (0..n_out)
            .map(|i| (((i as f32 + 0.5) * scale).floor() as usize).min(n_in - 1) as i64)
            .collect();
        let device = out.device();
        let picks =
            Tensor::<1, Int>::from_data(burn::tensor::TensorData::new(picks, [n_out]), &device);
        out = out.select(axis, picks);
    }
    out
}
