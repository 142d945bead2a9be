//! The exact Euclidean distance transform: for every voxel of a grid, the squared Euclidean
//! distance (with a physical spacing per axis) to the nearest *site*, `+inf` where the grid has
//! no site.
//!
//! Separable (Felzenszwalb & Huttenlocher, "Distance Transforms of Sampled Functions", 2012):
//! the squared distance `min_s sum_a (w_a (v_a - s_a))^2` is minimised one axis at a time, each
//! pass replacing every line `f` along axis `a` by its lower envelope of parabolas
//! `d(x) = min_q f(q) + w_a^2 (x - q)^2`, in time linear in the line's length. The result is
//! exact, not an approximation: on the integer grid with unit spacing every value is an integer
//! computed exactly in f64 (the envelope's breakpoints are ratios of integers, never within an
//! ulp of the integer positions they are compared with), as the brute-force tests check.
//!
//! The first pass (along the contiguous last axis, where the input is 0 or `+inf`) needs no
//! envelope: two scans give each voxel its nearest site on the line. The passes run on the
//! thread pool over groups of lines. A pass along a strided axis copies [`GROUP`] neighbouring
//! lines into a buffer at once, so it reads and writes whole cache lines instead of one element
//! per line.

use super::parallel;

/// Lines handled together by a pass along a strided axis: 32 f64, a quarter of a 4 KiB page,
/// are read from each row at once (8, one cache line, cost a TLB miss per cache line:
/// `benches/results/kernel_notes.md#edt-line-groups`).
const GROUP: usize = 32;
/// Lines per work item of the pass along the contiguous axis.
const LINES_PER_ITEM: usize = 64;

/// Squared distances from every voxel of a grid of `shape` (row-major, the last axis
/// contiguous) to the nearest voxel where `sites` is true, with `spacing[a]` the distance
/// between neighbours along axis `a`; `+inf` everywhere when there is no site.
pub(crate) fn squared_distances(sites: &[bool], shape: &[usize], spacing: &[f64]) -> Vec<f64> {
    squared_distances_at(sites, shape, spacing, None)
}

/// [`squared_distances`], exact at the voxels where `queries` is true; with `Some(queries)`
/// the other voxels hold intermediate values. The last pass then only builds the envelopes of
/// the lines that hold a query and evaluates them only there (the surface metrics need the
/// distances at one border's voxels only).
pub(crate) fn squared_distances_at(
    sites: &[bool],
    shape: &[usize],
    spacing: &[f64],
    queries: Option<&[bool]>,
) -> Vec<f64> {
    debug_assert_eq!(sites.len(), shape.iter().product::<usize>());
    debug_assert_eq!(shape.len(), spacing.len());
    if sites.is_empty() {
        return Vec::new();
    }
    let last = shape.len() - 1;
    let mut field = vec![0.0; sites.len()];
    nearest_along_lines(sites, &mut field, shape[last], spacing[last]);
    for axis in (0..last).rev() {
        let queries = if axis == 0 { queries } else { None };
        along_strided_axis(&mut field, shape, axis, spacing[axis], queries);
    }
    field
}

/// The first pass, along the last axis, where the input is 0 on the sites and `+inf`
/// elsewhere: the squared distance to the nearest site of the same line, from one scan in each
/// direction (no envelope needed).
fn nearest_along_lines(sites: &[bool], field: &mut [f64], len: usize, spacing: f64) {
    let items: Vec<(&[bool], &mut [f64])> = sites
        .chunks(len * LINES_PER_ITEM)
        .zip(field.chunks_mut(len * LINES_PER_ITEM))
        .collect();
    let w2 = spacing * spacing;
    parallel::map_items(items, |(sites, field)| {
        for (line, out) in sites.chunks(len).zip(field.chunks_mut(len)) {
            nearest_on_line(line, out, w2);
        }
    });
}

/// `out[x] = w2 (x - s)^2` for the site `s` of `line` nearest to `x` (`+inf` without a site).
/// Two branch-free scans, whatever the number of sites (a transform's sites can be dense;
/// [`nearest_of_sites`] serves lines given as a few site positions).
fn nearest_on_line(line: &[bool], out: &mut [f64], w2: f64) {
    // Forwards: the distance (in voxels) to the last site at or before x; then backwards, the
    // nearer of that and the next site at or after x, squared. Integer counters (a one-cycle
    // dependency chain), saturating where no site was seen yet (a line is far shorter than
    // 2^32 voxels).
    let mut run = u32::MAX;
    for (&site, o) in line.iter().zip(out.iter_mut()) {
        run = if site { 0 } else { run.saturating_add(1) };
        *o = f64::from(run);
    }
    run = u32::MAX;
    for (&site, o) in line.iter().zip(out.iter_mut()).rev() {
        run = if site { 0 } else { run.saturating_add(1) };
        let d = o.min(f64::from(run));
        *o = if d == f64::from(u32::MAX) {
            f64::INFINITY
        } else {
            w2 * d * d
        };
    }
}

/// `out[x] = w2 (x - s)^2` for the position `s` in `sites` (ascending) nearest to `x`: the
/// first pass of a line given its sites; `+inf` without a site.
#[inline(always)]
pub(crate) fn nearest_of_sites(out: &mut [f64], sites: impl IntoIterator<Item = usize>, w2: f64) {
    // Site by site (sites are few on most lines): between two sites `left` and `right` each
    // voxel takes the nearer, before the first and after the last the one there is (a missing
    // side is infinitely far). The fill of a segment is a branch-free loop the compiler
    // vectorises; the distances are exact integers in f64, squared as `w2 d d`.
    #[inline(always)]
    fn fill(out: &mut [f64], start: usize, left: f64, right: f64, w2: f64) {
        for (x, o) in (start..).zip(out.iter_mut()) {
            let x = x as f64;
            let d = (x - left).min(right - x);
            *o = w2 * d * d;
        }
    }
    let mut left = f64::NEG_INFINITY;
    let mut start = 0;
    for site in sites {
        fill(&mut out[start..site], start, left, site as f64, w2);
        out[site] = 0.0;
        left = site as f64;
        start = site + 1;
    }
    fill(&mut out[start..], start, left, f64::INFINITY, w2);
}

/// The pass along a strided `axis` of a grid `[outer, len, inner]` (the axes before, this
/// one, the axes after): a work item is one `outer` index and a range of `inner` indices, held
/// as `len` disjoint row pieces (one per position along the axis), so the items can be written
/// in parallel with no shared mutable state. With `queries` (a grid of the field's shape),
/// only the groups of lines holding a query are transformed, and only at the queries.
fn along_strided_axis(
    field: &mut [f64],
    shape: &[usize],
    axis: usize,
    spacing: f64,
    queries: Option<&[bool]>,
) {
    let len = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let outer: usize = shape[..axis].iter().product();
    // Enough pieces per row for every thread to have several items even when `outer` is 1.
    let wanted = (4 * parallel::threads()).div_ceil(outer);
    let pieces = wanted.clamp(1, inner.div_ceil(GROUP));
    let bounds: Vec<usize> = (0..=pieces).map(|k| k * inner / pieces).collect();
    // Item `o * pieces + k`: the `len` rows of outer index `o`, each cut to piece `k`, with
    // the same pieces of the query rows.
    type Item<'a> = (Vec<&'a mut [f64]>, Vec<&'a [bool]>);
    let mut items: Vec<Item<'_>> = (0..outer * pieces)
        .map(|_| (Vec::with_capacity(len), Vec::new()))
        .collect();
    for (r, row) in field.chunks_mut(inner).enumerate() {
        let mut rest = row;
        for k in 0..pieces {
            let (piece, tail) = rest.split_at_mut(bounds[k + 1] - bounds[k]);
            items[(r / len) * pieces + k].0.push(piece);
            rest = tail;
        }
    }
    if let Some(queries) = queries {
        for (r, row) in queries.chunks(inner).enumerate() {
            for k in 0..pieces {
                items[(r / len) * pieces + k]
                    .1
                    .push(&row[bounds[k]..bounds[k + 1]]);
            }
        }
    }
    parallel::map_items(items, |(mut rows, query_rows)| {
        let width = rows[0].len();
        let mut envelope = Envelope::new(len);
        let mut input = vec![0.0; GROUP * len];
        let mut output = vec![0.0; GROUP * len];
        let mut asked = vec![true; GROUP * len];
        for start in (0..width).step_by(GROUP) {
            let group = GROUP.min(width - start);
            if !query_rows.is_empty() {
                for (x, row) in query_rows.iter().enumerate() {
                    for (g, &q) in row[start..start + group].iter().enumerate() {
                        asked[g * len + x] = q;
                    }
                }
                if !asked[..group * len].contains(&true) {
                    continue;
                }
            }
            for (x, row) in rows.iter().enumerate() {
                for (g, &v) in row[start..start + group].iter().enumerate() {
                    input[g * len + x] = v;
                }
            }
            for g in 0..group {
                let line = g * len..(g + 1) * len;
                let (f, out) = (&input[line.clone()], &mut output[line.clone()]);
                envelope.transform(f, out, spacing, &asked[line]);
            }
            for (x, row) in rows.iter_mut().enumerate() {
                for (g, v) in row[start..start + group].iter_mut().enumerate() {
                    *v = output[g * len + x];
                }
            }
        }
    });
}

/// The lower envelope of the parabolas of one line, with its buffers kept between lines.
///
/// Where two parabolas cross is a ratio `num / den` (`den > 0`); the ratios are kept as pairs
/// and compared by cross-multiplying, with no division: a division's latency would sit on the
/// loop's critical path once per parabola. On the unit grid the products stay exact integers.
struct Envelope {
    /// Positions of the parabolas in the envelope, left to right.
    sites: Vec<usize>,
    /// `f[q] + w^2 q^2` of each parabola of the envelope.
    heights: Vec<f64>,
    /// Parabola `k` is the lowest from `num[k] / den[k]` to `num[k + 1] / den[k + 1]`.
    num: Vec<f64>,
    den: Vec<f64>,
}

impl Envelope {
    fn new(len: usize) -> Self {
        Envelope {
            sites: vec![0; len],
            heights: vec![0.0; len],
            num: vec![0.0; len + 1],
            den: vec![1.0; len + 1],
        }
    }

    /// `out[x] = min_q f[q] + (w (x - q))^2` over the `q` with finite `f[q]` (`+inf` when
    /// there is none), at the `x` where `wanted[x]` (the other values are left as they were).
    fn transform(&mut self, f: &[f64], out: &mut [f64], w: f64, wanted: &[bool]) {
        let w2 = w * w;
        let mut k = 0; // parabolas in the envelope
        for (q, &value) in f.iter().enumerate() {
            if value == f64::INFINITY {
                continue;
            }
            let qf = q as f64;
            let height = value + w2 * qf * qf;
            // Parabola q crosses parabola p < q at x = (height_q - height_p) / (2 w^2 (q - p)).
            let (mut num, mut den) = (f64::NEG_INFINITY, 1.0);
            while k > 0 {
                let p = k - 1;
                let n = height - self.heights[p];
                let d = 2.0 * w2 * (qf - self.sites[p] as f64);
                // Parabola p is nowhere lowest once q crosses it before it starts.
                if n * self.den[p] <= self.num[p] * d {
                    k -= 1;
                } else {
                    (num, den) = (n, d);
                    break;
                }
            }
            self.sites[k] = q;
            self.heights[k] = height;
            self.num[k] = num;
            self.den[k] = den;
            k += 1;
        }
        if k == 0 {
            out.fill(f64::INFINITY);
            return;
        }
        self.num[k] = f64::INFINITY;
        self.den[k] = 1.0;
        let mut j = 0;
        for (x, (o, _)) in out
            .iter_mut()
            .zip(wanted)
            .enumerate()
            .filter(|(_, (_, w))| **w)
        {
            let xf = x as f64;
            while self.num[j + 1] < xf * self.den[j + 1] {
                j += 1;
            }
            let q = self.sites[j];
            let d = xf - q as f64;
            *o = f[q] + w2 * d * d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_grids::{brute_force, random_sites};

    #[test]
    fn equals_brute_force_exactly_on_the_unit_grid() {
        let shapes: [&[usize]; 6] = [&[1], &[17], &[9, 13], &[1, 40], &[7, 5, 11], &[3, 1, 19]];
        for (k, shape) in shapes.iter().enumerate() {
            for density in [0.0, 0.01, 0.1, 0.5, 1.0] {
                let len = shape.iter().product();
                let sites = random_sites(len, density, k as u64 * 31 + 7);
                let spacing = vec![1.0; shape.len()];
                assert_eq!(
                    squared_distances(&sites, shape, &spacing),
                    brute_force(&sites, shape, &spacing),
                    "shape {shape:?}, density {density}"
                );
            }
        }
    }

    #[test]
    fn equals_brute_force_with_anisotropic_spacing() {
        for (shape, spacing) in [
            (vec![12, 9], vec![0.7, 1.3]),
            (vec![6, 8, 10], vec![2.5, 0.8, 0.8]),
            (vec![5, 33, 4], vec![1.0, 0.3, 3.0]),
        ] {
            let len = shape.iter().product();
            let sites = random_sites(len, 0.05, 99);
            let fast = squared_distances(&sites, &shape, &spacing);
            let slow = brute_force(&sites, &shape, &spacing);
            for (a, b) in fast.iter().zip(&slow) {
                assert!((a - b).abs() <= 1e-12 * b.max(1.0), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn grids_wider_than_a_group_and_many_items() {
        // Enough lines for several work items and group tails on every axis.
        let shape = [3, 21, 70];
        let sites = random_sites(shape.iter().product(), 0.002, 5);
        let spacing = [1.0; 3];
        assert_eq!(
            squared_distances(&sites, &shape, &spacing),
            brute_force(&sites, &shape, &spacing)
        );
    }
}
