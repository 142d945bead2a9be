//! Building blocks of the host kernels: the float type and its elementary functions
//! ([`math`]), vectorised passes over slices ([`lanes`]), and the split of a batch over the
//! threads ([`parallel`]), buffers kept per thread ([`scratch`]) and the gradient's buffer
//! ([`gradient_buffer`]); the Lovász kernels' sort ([`radix_sort`]); the exact Euclidean
//! distance transform of the surface metrics and boundary losses ([`edt`]), and its banded form
//! for distances at a few voxels ([`banded_edt`]).

pub(crate) mod banded_edt;
pub(crate) mod edt;
pub(crate) mod gradient_buffer;
#[allow(unsafe_code)] // SIMD dispatch: see its docs (`gradient_buffer` allows one `madvise` call)
pub(crate) mod lanes;
pub(crate) mod math;
pub(crate) mod parallel;
pub(crate) mod radix_sort;
pub(crate) mod scratch;
#[cfg(test)]
pub(crate) mod test_grids;
