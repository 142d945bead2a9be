//! The border of a mask (its voxels with a face neighbour outside it) and the crop of an image
//! pair to the box that holds both masks.

use std::ops::Range;

use crate::cpu::parallel;

/// Lines of the grid per work item when finding the box.
const LINES_PER_RUN: usize = 4096;

/// A box of a grid: `start[a]..start[a] + shape[a]` along each axis `a`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Crop {
    pub start: Vec<usize>,
    pub shape: Vec<usize>,
}

impl Crop {
    /// The smallest box holding every voxel where `a` or `b` is set (nonzero); `None` when both
    /// masks are empty.
    pub(crate) fn union_of(a: &[u8], b: &[u8], shape: &[usize]) -> Option<Crop> {
        let dims = shape.len();
        let last = dims - 1;
        let len = shape[last];
        let lines = a.len() / len;
        // Line by line (the first and last voxel set on a line, its coordinates once), in
        // parallel over runs of lines, each run giving its own box.
        let runs: Vec<Range<usize>> = (0..lines)
            .step_by(LINES_PER_RUN)
            .map(|start| start..(start + LINES_PER_RUN).min(lines))
            .collect();
        let boxes = parallel::map_items(runs, |run| {
            let mut low = shape.to_vec();
            let mut high = vec![0; dims];
            let mut coords = vec![0usize; dims];
            for line in run {
                let (a, b) = (
                    &a[line * len..(line + 1) * len],
                    &b[line * len..(line + 1) * len],
                );
                // Most lines of a large volume are empty: an OR over the line (one vector loop)
                // rules them out before any search.
                if a.iter().zip(b).fold(0, |any, (&a, &b)| any | a | b) == 0 {
                    continue;
                }
                let set = |x: usize| a[x] | b[x] != 0;
                let Some(first) = (0..len).find(|&x| set(x)) else {
                    continue;
                };
                let end = (first..len).rev().find(|&x| set(x)).unwrap_or(first);
                unravel(line, &shape[..last], &mut coords[..last]);
                for axis in 0..last {
                    low[axis] = low[axis].min(coords[axis]);
                    high[axis] = high[axis].max(coords[axis]);
                }
                low[last] = low[last].min(first);
                high[last] = high[last].max(end);
            }
            (low, high)
        });
        let (mut low, mut high) = (shape.to_vec(), vec![0; dims]);
        for (l, h) in boxes {
            for axis in 0..dims {
                low[axis] = low[axis].min(l[axis]);
                high[axis] = high[axis].max(h[axis]);
            }
        }
        (low[0] <= high[0]).then(|| Crop {
            shape: (0..dims).map(|axis| high[axis] - low[axis] + 1).collect(),
            start: low,
        })
    }

    /// The part of the mask `values` (a grid of `shape`, nonzero where set) inside the box, in
    /// row-major order.
    pub(crate) fn cut(&self, values: &[u8], shape: &[usize]) -> Vec<bool> {
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
            out.extend(values[start..start + run].iter().map(|&v| v != 0));
        }
        out
    }
}

/// `mask AND NOT erosion(mask)`: the voxels of the mask with at least one face neighbour (4 in
/// 2D, 6 in 3D) outside the mask, voxels beyond the grid's edge counting as outside (scipy's
/// `binary_erosion` with `border_value=0` and the structure of `generate_binary_structure(d,
/// 1)`, which MONAI and MedPy use). Returns the border voxels' flat indices, ascending.
pub(crate) fn border(mask: &[bool], shape: &[usize]) -> Vec<usize> {
    let dims = shape.len();
    let last = dims - 1;
    let len = shape[last];
    let strides: Vec<usize> = (0..dims).map(|a| shape[a + 1..].iter().product()).collect();
    let mut voxels = Vec::new();
    let mut coords = vec![0usize; dims];
    let mut interior = vec![false; len];
    let mut out = vec![false; len];
    // Line by line along the last axis: a line's neighbours along every other axis are whole
    // lines, so the erosion of a line is an AND of whole lines (vector loops over bytes).
    for line in 0..mask.len() / len {
        let start = line * len;
        let here = &mask[start..start + len];
        if !here.iter().fold(false, |any, &v| any | v) {
            continue;
        }
        unravel(line, &shape[..last], &mut coords[..last]);
        // A line on the grid's edge along another axis has a neighbour outside: all of its
        // mask voxels are border voxels.
        if (0..last).any(|axis| coords[axis] == 0 || coords[axis] + 1 == shape[axis]) {
            out.copy_from_slice(here);
        } else {
            interior.copy_from_slice(here);
            for &s in &strides[..last] {
                for neighbour in [
                    &mask[start - s..start - s + len],
                    &mask[start + s..start + s + len],
                ] {
                    for (i, &n) in interior.iter_mut().zip(neighbour) {
                        *i &= n;
                    }
                }
            }
            // Along the line: both neighbours inside, the line's ends outside.
            if len > 2 {
                for ((i, &before), &after) in
                    interior[1..len - 1].iter_mut().zip(here).zip(&here[2..])
                {
                    *i &= before & after;
                }
            }
            interior[0] = false;
            interior[len - 1] = false;
            for ((o, &h), &i) in out.iter_mut().zip(here).zip(&interior) {
                *o = h & !i;
            }
        }
        voxels.extend(
            out.iter()
                .enumerate()
                .filter(|(_, o)| **o)
                .map(|(x, _)| start + x),
        );
    }
    voxels
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
        let voxels: Vec<usize> = (0..24).filter(|&i| expected[i]).collect();
        assert_eq!(border(&mask, &[4, 6]), voxels);
    }

    #[test]
    fn a_full_grid_has_its_outer_layer_as_border() {
        let shape = [3, 4, 5];
        let b = border(&[true; 60], &shape);
        // Only the voxels at (1, 1..3, 1..4) are interior: 1 * 2 * 3 = 6 voxels.
        let interior: Vec<usize> = (0..60)
            .filter(|i| [1, 2].contains(&(i / 5 % 4)) && (1..4).contains(&(i % 5)))
            .filter(|i| i / 20 == 1)
            .collect();
        assert_eq!(interior.len(), 6);
        let expected: Vec<usize> = (0..60).filter(|i| !interior.contains(i)).collect();
        assert_eq!(b, expected);
    }

    #[test]
    fn crop_holds_both_masks_and_cuts_row_major() {
        let bytes = |g: Vec<bool>| g.into_iter().map(u8::from).collect::<Vec<u8>>();
        let a = bytes(grid(&["......", "..#...", "......", "......"]));
        let b = bytes(grid(&["......", "......", "....#.", "......"]));
        let crop = Crop::union_of(&a, &b, &[4, 6]).unwrap();
        assert_eq!(
            crop,
            Crop {
                start: vec![1, 2],
                shape: vec![2, 3]
            }
        );
        // Values 0..24 in the grid: the box's cells 8, 9, 10, 14, 15, 16 are the odd-indexed
        // ones set here, as any nonzero byte.
        let values: Vec<u8> = (0..24).map(|i| (i % 2) * 7).collect();
        assert_eq!(
            crop.cut(&values, &[4, 6]),
            vec![false, true, false, false, true, false]
        );
        assert_eq!(Crop::union_of(&[0; 24], &[0; 24], &[4, 6]), None);
    }

    /// The definition, voxel by voxel: in the mask, with a face neighbour outside it or
    /// outside the grid.
    fn border_by_definition(mask: &[bool], shape: &[usize]) -> Vec<usize> {
        let dims = shape.len();
        let strides: Vec<usize> = (0..dims).map(|a| shape[a + 1..].iter().product()).collect();
        (0..mask.len())
            .filter(|&i| {
                mask[i]
                    && (0..dims).any(|a| {
                        let c = i / strides[a] % shape[a];
                        c == 0
                            || c + 1 == shape[a]
                            || !mask[i - strides[a]]
                            || !mask[i + strides[a]]
                    })
            })
            .collect()
    }

    #[test]
    fn border_matches_the_definition_on_random_masks() {
        let mut state = 7u64;
        let shapes: [&[usize]; 5] = [&[9, 13], &[1, 7], &[6, 1], &[5, 7, 11], &[3, 4, 2]];
        for shape in shapes {
            for density in [0.3, 0.7, 0.95] {
                let mask: Vec<bool> = (0..shape.iter().product::<usize>())
                    .map(|_| {
                        state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((state >> 33) as f64 / (1u64 << 31) as f64) < density
                    })
                    .collect();
                assert_eq!(
                    border(&mask, shape),
                    border_by_definition(&mask, shape),
                    "shape {shape:?} density {density}"
                );
            }
        }
    }
}
