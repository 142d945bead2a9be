//! The soft skeleton of clDice (Shit et al. 2021), as MONAI's `soft_skel`: morphological
//! thinning written with max pools, so that it is differentiable.
//!
//! The images are rows of a `[R, P]` tensor whose pixels have the spatial shape `spatial`
//! (any number of axes). A pool of 3 along one axis is burn's `max_pool2d` with a `(3, 1)`
//! window over the tensor viewed as `[1, before, axis, after]` (a reshape, no copy), padded
//! with `-inf` as torch pads: so any spatial rank works with the one 2D operation burn has on
//! every backend.

use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;

/// The soft skeleton of every row of `image` `[R, P]` (pixels of shape `spatial`) after
/// `iterations` thinning steps, MONAI's `soft_skel(img, iter_)`:
///
/// `skel = relu(img - open(img))`, then `iterations` times: `img = erode(img)`,
/// `delta = relu(img - open(img))`, `skel = skel + relu(delta - skel delta)`,
///
/// with `erode` the minimum over the axis-aligned 3-pixel pools (MONAI's `soft_erode`),
/// `dilate` the 3x3 (3x3x3, ...) max pool and `open = dilate(erode(...))`. Each erosion is
/// computed once (MONAI erodes the same image twice per step, inside `open` and for the next
/// step; the values and the gradient are the same).
pub(crate) fn soft_skeleton(image: Tensor<2>, spatial: &[usize], iterations: usize) -> Tensor<2> {
    let mut eroded = erode(image.clone(), spatial);
    let mut skeleton = relu(image - dilate(eroded.clone(), spatial));
    for _ in 0..iterations {
        let image = eroded;
        eroded = erode(image.clone(), spatial);
        let delta = relu(image - dilate(eroded.clone(), spatial));
        skeleton = skeleton.clone() + relu(delta.clone() - skeleton.mul(delta));
    }
    skeleton
}

/// The minimum over the 3-pixel pools along each axis (MONAI's `soft_erode`: the smallest of
/// `-max_pool(-img)` with windows `(3, 1)` and `(1, 3)`, or their 3D counterparts).
fn erode(image: Tensor<2>, spatial: &[usize]) -> Tensor<2> {
    let negated = image.neg();
    (0..spatial.len())
        .map(|axis| max_along(negated.clone(), spatial, axis))
        .reduce(Tensor::max_pair)
        .unwrap_or(negated)
        .neg()
}

/// The max over the 3x3 (3x3x3, ...) neighbourhood (MONAI's `soft_dilate`): one 3x3 pool for
/// two axes (MONAI's operation itself), pools of 3 along each axis in turn otherwise (the
/// same maxima: a box max is separable).
fn dilate(image: Tensor<2>, spatial: &[usize]) -> Tensor<2> {
    if let &[height, width] = spatial {
        let rows = image.dims()[0];
        let pooled = max_pool2d(
            image.reshape([1, rows, height, width]),
            MaxPoolOptions::new([3, 3])
                .with_stride([1, 1])
                .with_padding([1, 1]),
        );
        return pooled.reshape([rows, height * width]);
    }
    (0..spatial.len()).fold(image, |t, axis| max_along(t, spatial, axis))
}

/// The max over each pixel and its two neighbours along `axis` (fewer at the border).
fn max_along(image: Tensor<2>, spatial: &[usize], axis: usize) -> Tensor<2> {
    let [rows, pixels] = image.dims();
    let before: usize = rows * spatial[..axis].iter().product::<usize>();
    let after: usize = spatial[axis + 1..].iter().product();
    let pooled = max_pool2d(
        image.reshape([1, before, spatial[axis], after]),
        MaxPoolOptions::new([3, 1])
            .with_stride([1, 1])
            .with_padding([1, 0]),
    );
    pooled.reshape([rows, pixels])
}
