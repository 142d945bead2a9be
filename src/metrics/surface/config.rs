//! The options of the surface metrics: voxel spacing and what an empty mask gives.

use burn::config::Config;

use crate::check;
use crate::error::SegLossError;

/// Options of [`SurfaceDistances`](super::SurfaceDistances) and
/// [`ClassSurfaceDistances`](super::ClassSurfaceDistances).
#[derive(Config, Debug, PartialEq)]
pub struct SurfaceConfig {
    /// The distance between neighbouring voxels along each spatial axis, in array order (for
    /// `[N, 1, Z, Y, X]`: `[dz, dy, dx]`), e.g. millimetres from the image header. Every
    /// distance is Euclidean in these units: `sqrt(sum_a (spacing[a] * delta_a)^2)`. `None`
    /// (default): 1 on every axis, distances in voxels. MONAI's `spacing`, MedPy's
    /// `voxelspacing`.
    #[config(default = "None")]
    pub spacing: Option<Vec<f64>>,
    /// What an image gives when exactly one of its two masks is empty (default
    /// [`OneEmpty::Infinite`], MONAI's).
    #[config(default = "OneEmpty::Infinite")]
    pub one_empty: OneEmpty,
    /// What an image gives when both of its masks are empty (default [`BothEmpty::Nan`],
    /// MONAI's).
    #[config(default = "BothEmpty::Nan")]
    pub both_empty: BothEmpty,
}

/// The value of an image's metrics when one mask is empty and the other is not: there is no
/// border to measure a distance to. (MedPy raises an error in this case; MONAI gives `+inf`
/// distances and NSD 0, with a warning.)
#[derive(Config, Debug, Copy, PartialEq)]
pub enum OneEmpty {
    /// Distances `+inf`, NSD 0 (the default; MONAI's `compute_hausdorff_distance`,
    /// `compute_average_surface_distance` and `compute_surface_dice`). A mean over images is
    /// then `+inf`: report it, or aggregate with a median.
    Infinite,
    /// Every metric `NaN`, so that a `nanmean` over images skips the image.
    Nan,
    /// Distances equal to the image diagonal: the distance between the centres of two opposite
    /// corner voxels, `sqrt(sum_a (spacing[a] * (S_a - 1))^2)`, the largest distance any two
    /// voxels of the image can have (a finite worst case, as in the Medical Segmentation
    /// Decathlon's and several challenges' conventions); NSD 0.
    Diagonal,
    /// Distances equal to the given value (a worst case in the spacing's units, for example
    /// 373.13 mm as in some challenges); NSD 0.
    Distance(f64),
}

/// The value of an image's metrics when both masks are empty: nothing was to be found, and
/// nothing was predicted.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum BothEmpty {
    /// Every metric `NaN` (the default; MONAI's), so that a `nanmean` skips the image.
    Nan,
    /// A perfect result: distances 0, NSD 1 (Metrics Reloaded's recommendation for empty
    /// reference and prediction).
    Perfect,
}

impl SurfaceConfig {
    /// The spacing for `dims` spatial axes: the given one, checked, or 1 on every axis.
    pub(crate) fn spacing_for(&self, dims: usize) -> Result<Vec<f64>, SegLossError> {
        check::checked_spacing(self.spacing.as_deref(), dims)
    }

    /// Checks the options that do not depend on the masks.
    pub(crate) fn check(&self) -> Result<(), SegLossError> {
        if let OneEmpty::Distance(d) = self.one_empty
            && (d.is_nan() || d < 0.0)
        {
            return Err(SegLossError::InvalidParameter {
                name: "one_empty distance",
                value: d,
                allowed: ">= 0 (+inf allowed)",
            });
        }
        Ok(())
    }
}
