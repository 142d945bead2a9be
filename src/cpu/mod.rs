//! Building blocks of the host kernels: the float type and its elementary functions
//! ([`math`]), vectorised passes over slices ([`lanes`]), and the split of a batch over the
//! threads ([`parallel`]), and buffers kept per thread ([`scratch`]).

#[allow(unsafe_code)] // the one module allowed unsafe code: see its docs
pub(crate) mod lanes;
pub(crate) mod math;
pub(crate) mod parallel;
pub(crate) mod scratch;
