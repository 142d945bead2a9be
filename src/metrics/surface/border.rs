//! The border of a mask (its voxels with a face neighbour outside it) and the crop of an image
//! pair to the box that holds both masks.

/// A box of a grid: `start[a]..start[a] + shape[a]` along each axis `a`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Crop {
    pub start: Vec<usize>,
    pub shape: Vec<usize>,
}

impl Crop {
    /// The smallest box holding every voxel where `a` or `b` is true; `None` when both masks
    /// are empty.
    pub(crate) fn union_of(a: &[bool], b: &[bool], shape: &[usize]) -> Option<Crop> {
        let dims = shape.len();
        let mut low = shape.to_vec();
        let mut high = vec![0; dims];
        let mut any = false;
        let mut coords = vec![0usize; dims];
        for (i, (&p, &q)) in a.iter().zip(b).enumerate() {
            if p || q {
                any = true;
                unravel(i, shape, &mut coords);
                for (axis, &c) in coords.iter().enumerate() {
                    low[axis] = low[axis].min(c);
                    high[axis] = high[axis].max(c);
                }
            }
        }
        any.then(|| Crop {
            shape: (0..dims).map(|axis| high[axis] - low[axis] + 1).collect(),
            start: low,
        })
    }

    /// The part of `values` (a grid of `shape`) inside the box, in row-major order.
    pub(crate) fn cut<T: Copy>(&self, values: &[T], shape: &[usize]) -> Vec<T> {
        let dims = shape.len();
        let last = dims - 1;
        let run = self.shape[last];
        let lines: usize = self.shape[..last].iter().product();
        let mut out = Vec::with_capacity(lines * run);
        let mut coords = vec![0usize; dims];
        for line in 0..lines {
            unravel(line, &self.shape[..last], &mut coords[..last]);
            let mut start = 0;
            for axis in 0..dims {
                let c = if axis == last { 0 } else { coords[axis] };
                start = start * shape[axis] + self.start[axis] + c;
            }
            out.extend_from_slice(&values[start..start + run]);
        }
        out
    }
}

/// `mask AND NOT erosion(mask)`: the voxels of the mask with at least one face neighbour (4 in
/// 2D, 6 in 3D) outside the mask, voxels beyond the grid's edge counting as outside (scipy's
/// `binary_erosion` with `border_value=0` and the structure of `generate_binary_structure(d,
/// 1)`, which MONAI and MedPy use).
pub(crate) fn border(mask: &[bool], shape: &[usize]) -> Vec<bool> {
    let dims = shape.len();
    let strides: Vec<usize> = (0..dims).map(|a| shape[a + 1..].iter().product()).collect();
    let mut coords = vec![0usize; dims];
    mask.iter()
        .enumerate()
        .map(|(i, &inside)| {
            if !inside {
                return false;
            }
            unravel(i, shape, &mut coords);
            (0..dims).any(|a| {
                let (c, s) = (coords[a], strides[a]);
                c == 0 || c + 1 == shape[a] || !mask[i - s] || !mask[i + s]
            })
        })
        .collect()
}

/// The coordinates of flat index `i` in a row-major grid of `shape`.
fn unravel(mut i: usize, shape: &[usize], coords: &mut [usize]) {
    for axis in (0..shape.len()).rev() {
        coords[axis] = i % shape[axis];
        i /= shape[axis];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(rows: &[&str]) -> Vec<bool> {
        rows.iter()
            .flat_map(|r| r.chars().map(|c| c == '#'))
            .collect()
    }

    #[test]
    fn border_is_the_mask_minus_its_face_erosion() {
        let mask = grid(&["#####.", "#####.", "#####.", "..#..."]);
        let expected = grid(&["#####.", "#...#.", "##.##.", "..#..."]);
        assert_eq!(border(&mask, &[4, 6]), expected);
    }

    #[test]
    fn a_full_grid_has_its_outer_layer_as_border() {
        let shape = [3, 4, 5];
        let b = border(&[true; 60], &shape);
        // Only the voxel at (1, 1..3, 1..4) interior: 1 * 2 * 3 = 6 voxels.
        assert_eq!(b.iter().filter(|&&x| !x).count(), 6);
    }

    #[test]
    fn crop_holds_both_masks_and_cuts_row_major() {
        let a = grid(&["......", "..#...", "......", "......"]);
        let b = grid(&["......", "......", "....#.", "......"]);
        let crop = Crop::union_of(&a, &b, &[4, 6]).unwrap();
        assert_eq!(
            crop,
            Crop {
                start: vec![1, 2],
                shape: vec![2, 3]
            }
        );
        let values: Vec<usize> = (0..24).collect();
        assert_eq!(crop.cut(&values, &[4, 6]), vec![8, 9, 10, 14, 15, 16]);
        assert_eq!(Crop::union_of(&[false; 24], &[false; 24], &[4, 6]), None);
    }
}
