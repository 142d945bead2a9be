//! How many workgroups a kernel launches, laid out within the device's limits.

use burn_cubecl::cubecl;
use cubecl::prelude::CubeCount;

/// The most workgroups along one axis of a launch that every Vulkan device accepts
/// (`maxComputeWorkGroupCount` is at least 65535 per axis).
const AXIS_LIMIT: usize = 65_535;

/// `cubes` workgroups numbered `0..cubes` by `CUBE_POS`: one axis up to [`AXIS_LIMIT`], two
/// beyond (the kernels skip the positions past `cubes` that the second axis rounds up to).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Grid {
    cubes: usize,
}

impl Grid {
    /// A grid of `cubes` workgroups (at least one is launched).
    pub(crate) fn of(cubes: usize) -> Self {
        Self { cubes }
    }

    /// The launch's workgroup count.
    pub(crate) fn count(self) -> CubeCount {
        let cubes = self.cubes.max(1);
        let x = cubes.min(AXIS_LIMIT);
        let y = cubes.div_ceil(x);
        // Both fit in u32: x <= 65535, and y <= 65535 for any count below 2^32.
        CubeCount::Static(x as u32, y as u32, 1)
    }
}
