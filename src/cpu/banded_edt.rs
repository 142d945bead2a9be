//! Exact squared distances to the nearest site, at a list of query voxels only, computed no
//! further than the queries need.
//!
//! The surface metrics ask for the distance from every border voxel of one mask to the border
//! of the other, and those distances are usually a few voxels. A full transform
//! ([`squared_distances_at`]) builds the lower envelope of every line of the grid whatever the
//! distances are. Here each round takes a radius `r` and, after the exact first pass along the
//! contiguous axis, replaces the envelope of every other axis `a` by a plain minimum over the
//! `2 K_a + 1` neighbours within `K_a = floor(r / w_a)` voxels:
//!
//! `d_a(x) = min_{|k| <= K_a} d_{a+1}(x + k e_a) + (w_a k)^2`.
//!
//! That minimum misses no site within `r` of `x`: such a site is at most `K_a` voxels away along
//! every axis, so it is among the candidates at every pass. Every candidate is a real site's
//! squared distance, so the result is never below the truth. Hence a result `<= r^2` is exact,
//! and a larger one only says that the nearest site is farther than `r`. The values are the same
//! sums, in the same order, as the full transform's, so both give the same bits.
//!
//! The minimum over a window is a branch-free loop over whole rows that the compiler
//! vectorises (the envelope is a serial chain of stack operations). It runs plane by plane
//! along the first axis, in cache, only on the rows that the last pass reads; the last axis is
//! evaluated at the queries only. The first pass starts from each line's list of sites, so
//! lines without a site cost nothing.
//!
//! Three ways, chosen from the data:
//! - rounds of growing radius (8 voxels, then doubling) for the queries left by the round
//!   before, while the windows stay narrower than [`MAX_TAPS`];
//! - site by site, once the queries left times the sites are few per voxel of the grid (a stray
//!   blob of a prediction, far from the other border, ends here after the first round);
//! - the full transform at the queries left, when the windows would grow wider, or at once
//!   when the median distance of a few sampled queries already exceeds the widest window
//!   (borders far apart).
//!
//! All three give the same bits: each value is `w^2 d d` summed from the last axis to the
//! first, as the full transform sums it.

use super::edt::{nearest_of_sites, squared_distances_at};
use super::lanes::widest;
use super::parallel;
use super::scratch::{Buffers, bytes_of, with_scratch};

/// The first radius, in units of the finest spacing: two borders within 8 voxels of each other
/// (a good segmentation's) are done in one round of 17 taps per axis.
const FIRST_RADIUS: f64 = 8.0;
/// The radius of each round after the first, relative to the one before.
const GROWTH: f64 = 2.0;
/// The widest window a round may use, in taps along one axis: beyond it the full transform is
/// cheaper (on the development machine a windowed pass costs about 0.2 ns per voxel and tap, an
/// envelope pass about 10-15 ns per voxel).
const MAX_TAPS: usize = 65;
/// Values of a row kept in registers by a windowed pass: four AVX-512 vectors.
const COLUMNS: usize = 32;
/// Site-by-site distances are computed when the pending queries times the sites are at most
/// this many per voxel of the grid: a pair costs about 0.6 ns on the development machine, a
/// voxel of the full transform over 10 ns, so this stays well below the transform's cost.
const BRUTE_FORCE_PAIRS_PER_VOXEL: usize = 8;
/// Queries whose distances tell whether the borders are far apart.
const SAMPLE: usize = 16;
/// Sites per block of the site-by-site distances.
const SITES_PER_BLOCK: usize = 64;
/// Pending queries per work item of the last pass (a few dozen taps each).
const QUERIES_PER_ITEM: usize = 4096;
/// Queries per work item of the site-by-site distances: each costs a pass over every site,
/// so far fewer make an item worth handing to a thread.
const SITE_QUERIES_PER_ITEM: usize = 256;

/// The exact squared distance from each voxel in `queries` (flat indices into the grid, in
/// any order) to the nearest of the `sites` (flat indices, ascending), with `spacing[a]`
/// between neighbours along axis `a`; `+inf` when there is no site. The grid is row-major, its
/// last axis contiguous.
pub(crate) fn squared_distances_to_queries(
    sites: &[usize],
    shape: &[usize],
    spacing: &[f64],
    queries: &[usize],
) -> Vec<f64> {
    let choice = Choice {
        pairs_per_voxel: BRUTE_FORCE_PAIRS_PER_VOXEL,
        sample: SAMPLE,
    };
    nearest_squared_distances(sites, shape, spacing, queries, choice)
}

/// How [`nearest_squared_distances`] chooses between its three ways (the tests force each).
#[derive(Clone, Copy)]
struct Choice {
    /// Site by site once the pending queries times the sites are at most this many per voxel.
    pairs_per_voxel: usize,
    /// Queries sampled to tell whether the borders are far apart (0: never far).
    sample: usize,
}

/// [`squared_distances_to_queries`], its ways chosen by `choice`.
fn nearest_squared_distances(
    sites: &[usize],
    shape: &[usize],
    spacing: &[f64],
    queries: &[usize],
    choice: Choice,
) -> Vec<f64> {
    debug_assert!(sites.is_sorted());
    debug_assert_eq!(shape.len(), spacing.len());
    let mut result = vec![f64::INFINITY; queries.len()];
    let mut pending: Vec<usize> = (0..queries.len()).collect();
    let volume: usize = shape.iter().product();
    let finest = spacing.iter().copied().fold(f64::INFINITY, f64::min);
    // When most queries are far from every site (the median of a few queries spread over the
    // list is beyond the widest window), the rounds would be wasted: straight to the full
    // transform. Otherwise the rounds start small (a narrow round and a second one on the rows
    // left cost less than one round wide enough for all).
    let columns = SiteColumns::new(sites, shape, spacing);
    let step = pending.len().div_ceil(choice.sample.max(1)).max(1);
    let sample: Vec<usize> = if choice.sample == 0 {
        Vec::new()
    } else {
        pending
            .iter()
            .copied()
            .skip(step / 2)
            .step_by(step)
            .collect()
    };
    let mut sampled = columns.nearest(queries, &sample);
    sampled.sort_unstable_by(f64::total_cmp);
    let median = sampled.get(sampled.len() / 2).map_or(0.0, |d2| d2.sqrt());
    let far = Windows::new(shape, spacing, median).widest() > MAX_TAPS;
    let mut radius = if far {
        f64::INFINITY
    } else {
        FIRST_RADIUS * finest
    };
    while !pending.is_empty() {
        // Few queries left (a stray blob far from the other border): site by site.
        if pending.len() * sites.len() <= choice.pairs_per_voxel.saturating_mul(volume) {
            let found = columns.nearest(queries, &pending);
            for (&i, d) in pending.iter().zip(found) {
                result[i] = d;
            }
            break;
        }
        let windows = Windows::new(shape, spacing, radius);
        // Many queries far from every site (a one-dimensional grid needs no window at all):
        // the full transform.
        if shape.len() == 1 || windows.widest() > MAX_TAPS {
            let mut grid = vec![false; volume];
            for &s in sites {
                grid[s] = true;
            }
            let mut asked = vec![false; volume];
            for &i in &pending {
                asked[queries[i]] = true;
            }
            let field = squared_distances_at(&grid, shape, spacing, Some(&asked));
            for &i in &pending {
                result[i] = field[queries[i]];
            }
            break;
        }
        let found = within_radius(sites, shape, spacing, queries, &pending, &windows);
        let mut left = Vec::new();
        for (&i, d) in pending.iter().zip(found) {
            // Windows spanning the whole grid leave out no site: every value is exact.
            if d <= radius * radius || windows.complete {
                result[i] = d;
            } else {
                left.push(i);
            }
        }
        pending = left;
        radius *= GROWTH;
    }
    result
}

/// The sites' coordinates held per axis, for distances computed site by site: exact by
/// definition, summed as the transforms sum (last axis first, `w^2 d d`), so the bits are
/// theirs; vectorised over blocks of sites.
struct SiteColumns<'a> {
    shape: &'a [usize],
    /// `columns[a][j]`: coordinate `a` of site `j`, padded to whole blocks with a site at
    /// infinity (its squared distance is `+inf`, so it is never the nearest).
    columns: Vec<Vec<f64>>,
    /// `w_a^2`.
    w2: Vec<f64>,
}

impl<'a> SiteColumns<'a> {
    /// The columns of `sites` (flat indices, ascending), line by line: an odometer over the
    /// lines instead of a division per site and axis (which cost more than the distances).
    fn new(sites: &[usize], shape: &'a [usize], spacing: &[f64]) -> Self {
        let dims = shape.len();
        let last = dims - 1;
        let len = shape[last];
        let padded = sites.len().div_ceil(SITES_PER_BLOCK) * SITES_PER_BLOCK;
        let mut columns = vec![Vec::with_capacity(padded); dims];
        let mut line = vec![0usize; last];
        let mut line_start = 0;
        for &s in sites {
            while s >= line_start + len {
                line_start += len;
                for a in (0..last).rev() {
                    line[a] += 1;
                    if line[a] < shape[a] {
                        break;
                    }
                    line[a] = 0;
                }
            }
            for (column, &c) in columns.iter_mut().zip(&line) {
                column.push(c as f64);
            }
            columns[last].push((s - line_start) as f64);
        }
        for column in &mut columns {
            column.resize(padded, f64::INFINITY);
        }
        SiteColumns {
            shape,
            columns,
            w2: spacing.iter().map(|w| w * w).collect(),
        }
    }

    /// The squared distance from each query `pending` (indices into `queries`) to its nearest
    /// site.
    fn nearest(&self, queries: &[usize], pending: &[usize]) -> Vec<f64> {
        let dims = self.shape.len();
        let items: Vec<&[usize]> = pending.chunks(SITE_QUERIES_PER_ITEM).collect();
        parallel::map_items(items, |pending| {
            let mut query = vec![0.0; dims];
            let mut found = Vec::with_capacity(pending.len());
            // A loop, not an iterator adapter: a closure inside would not be compiled for the
            // instruction set `widest` picks.
            widest(
                #[inline(always)]
                || {
                    for &i in pending {
                        let mut rest = queries[i];
                        for a in (0..dims).rev() {
                            query[a] = (rest % self.shape[a]) as f64;
                            rest /= self.shape[a];
                        }
                        found.push(nearest_of_all(&self.columns, &query, &self.w2));
                    }
                },
            );
            found
        })
        .concat()
    }
}

/// `min_j sum_a w2[a] (query[a] - columns[a][j])^2`, the axes summed from the last, blocks of
/// [`SITES_PER_BLOCK`] sites at a time.
#[inline(always)]
fn nearest_of_all(columns: &[Vec<f64>], query: &[f64], w2: &[f64]) -> f64 {
    let last = columns.len() - 1;
    let mut best = [f64::INFINITY; SITES_PER_BLOCK];
    for start in (0..columns[0].len()).step_by(SITES_PER_BLOCK) {
        let block = start..start + SITES_PER_BLOCK;
        let mut sum = [0.0; SITES_PER_BLOCK];
        for (s, &c) in sum.iter_mut().zip(&columns[last][block.clone()]) {
            let d = query[last] - c;
            *s = w2[last] * d * d;
        }
        for a in (0..last).rev() {
            for (s, &c) in sum.iter_mut().zip(&columns[a][block.clone()]) {
                let d = query[a] - c;
                *s += w2[a] * d * d;
            }
        }
        for (b, &s) in best.iter_mut().zip(&sum) {
            *b = if s < *b { s } else { *b };
        }
    }
    best.into_iter().fold(f64::INFINITY, f64::min)
}

/// The windows of a round of radius `r`: along each axis `a` but the last, the half-width
/// `K_a = floor(r / w_a)` (at most the axis' length less one) and its taps `(w_a k)^2`.
struct Windows {
    /// `taps[a][k] = (w_a k)^2` for `k` in `0..=K_a`, computed as the full transform does
    /// (`w^2 k k`), so that both give the same bits.
    taps: Vec<Vec<f64>>,
    /// Whether every window spans its whole axis.
    complete: bool,
}

impl Windows {
    fn new(shape: &[usize], spacing: &[f64], radius: f64) -> Self {
        let last = shape.len() - 1;
        let half_widths: Vec<usize> = (0..last)
            .map(|a| half_width(radius, spacing[a], shape[a] - 1))
            .collect();
        Windows {
            complete: (0..last).all(|a| half_widths[a] == shape[a] - 1),
            taps: half_widths
                .iter()
                .zip(spacing)
                .map(|(&k_max, &w)| {
                    let w2 = w * w;
                    (0..=k_max).map(|k| w2 * k as f64 * k as f64).collect()
                })
                .collect(),
        }
    }

    /// Taps of the widest window.
    fn widest(&self) -> usize {
        self.taps.iter().map(|t| 2 * t.len() - 1).max().unwrap_or(1)
    }
}

/// The largest `K <= limit` with `w K <= radius` (checked in floating point, so that rounding
/// in `radius / w` can neither drop the last tap nor add one too many).
fn half_width(radius: f64, w: f64, limit: usize) -> usize {
    let estimate = (radius / w).floor();
    if estimate >= limit as f64 {
        return limit;
    }
    let mut k = estimate.max(0.0) as usize;
    while k < limit && w * (k + 1) as f64 <= radius {
        k += 1;
    }
    while k > 0 && w * k as f64 > radius {
        k -= 1;
    }
    k
}

/// One round: the windowed transform at the queries `pending` (indices into `queries`), in
/// their order. A value `<= r^2` is exact, a larger one a bound.
fn within_radius(
    sites: &[usize],
    shape: &[usize],
    spacing: &[f64],
    queries: &[usize],
    pending: &[usize],
    windows: &Windows,
) -> Vec<f64> {
    let taps = &windows.taps;
    let rows = Rows::of(shape);
    // The rows (index along the first axis, index along the second) that the last pass reads:
    // those of the pending queries, and their neighbours within the first axis' window.
    let k0 = taps[0].len() - 1;
    let mut wanted = vec![false; shape[0] * rows.per_plane];
    let mut previous = usize::MAX;
    for &i in pending {
        let row = queries[i] / rows.len;
        if row != previous {
            previous = row;
            let (z, y) = (row / rows.per_plane, row % rows.per_plane);
            for z in z.saturating_sub(k0)..=(z + k0).min(shape[0] - 1) {
                wanted[z * rows.per_plane + y] = true;
            }
        }
    }
    let plane = rows.per_plane * rows.len;
    with_scratch(|Field(field): &mut Field| {
        field.resize(shape[0] * plane, 0.0);
        let mut items = Vec::new();
        let mut rest = &mut field[..];
        let mut first_site = 0;
        for (z, wanted) in wanted.chunks(rows.per_plane).enumerate() {
            let (values, tail) = rest.split_at_mut(plane);
            rest = tail;
            let end = first_site + sites[first_site..].partition_point(|&s| s < (z + 1) * plane);
            if wanted.contains(&true) {
                items.push((z * plane, &sites[first_site..end], values, wanted));
            }
            first_site = end;
        }
        parallel::map_items(items, |(offset, sites, values, wanted)| {
            with_scratch(|scratch: &mut PlaneScratch| {
                widest(
                    #[inline(always)]
                    || {
                        let plane = Plane {
                            offset,
                            sites,
                            wanted,
                        };
                        transform_plane(&plane, values, shape, spacing, taps, scratch)
                    },
                )
            })
        });
        let field = &field[..];
        let items: Vec<&[usize]> = pending.chunks(QUERIES_PER_ITEM).collect();
        parallel::map_items(items, |pending| {
            pending
                .iter()
                .map(|&i| along_first_axis(field, shape[0], plane, queries[i], &taps[0]))
                .collect::<Vec<f64>>()
        })
        .concat()
    })
}

/// How a plane of the grid (one index along the first axis) splits into rows, one per index
/// along the second axis (in 2D the plane is a single line, one row).
struct Rows {
    /// Rows per plane.
    per_plane: usize,
    /// Values per row.
    len: usize,
}

impl Rows {
    fn of(shape: &[usize]) -> Rows {
        if shape.len() >= 3 {
            Rows {
                per_plane: shape[1],
                len: shape[2..].iter().product(),
            }
        } else {
            Rows {
                per_plane: 1,
                len: shape[1],
            }
        }
    }
}

/// The grid of one round, kept per thread (every value a round reads is written first).
#[derive(Default)]
struct Field(Vec<f64>);

impl Buffers for Field {
    fn bytes(&self) -> usize {
        bytes_of(&self.0)
    }
}

/// One plane's part of a round.
struct Plane<'a> {
    /// The plane's first flat index.
    offset: usize,
    /// The sites in the plane (flat indices, ascending).
    sites: &'a [usize],
    /// Which rows of the plane the last pass reads.
    wanted: &'a [bool],
}

/// Buffers of one plane's transform, kept per thread.
#[derive(Default)]
struct PlaneScratch {
    /// The values a windowed pass reads (the pass overwrites the plane).
    input: Vec<f64>,
    /// Whether each row of the current pass holds a finite value (the others are skipped).
    finite: Vec<bool>,
    /// Which rows of the plane a wanted row reads (the wanted rows dilated by the window of
    /// the second axis).
    read: Vec<bool>,
    /// The rows of a window that hold a finite value (their offsets) and their taps.
    sources: Vec<(usize, f64)>,
}

impl Buffers for PlaneScratch {
    fn bytes(&self) -> usize {
        bytes_of(&self.input)
            + bytes_of(&self.finite)
            + bytes_of(&self.read)
            + bytes_of(&self.sources)
    }
}

/// The first pass and the windowed passes of the axes after the first, on one plane
/// `shape[1..]` of the grid, on the rows that the wanted rows need.
#[inline(always)]
fn transform_plane(
    plane: &Plane<'_>,
    field: &mut [f64],
    shape: &[usize],
    spacing: &[f64],
    taps: &[Vec<f64>],
    scratch: &mut PlaneScratch,
) {
    let last = shape.len() - 1;
    let len = shape[last];
    let w2 = spacing[last] * spacing[last];
    let rows = Rows::of(shape);
    let k1 = if last >= 2 { taps[1].len() - 1 } else { 0 };
    scratch.read.clear();
    scratch.read.resize(rows.per_plane, false);
    for (y, _) in plane.wanted.iter().enumerate().filter(|(_, w)| **w) {
        scratch.read[y.saturating_sub(k1)..=(y + k1).min(rows.per_plane - 1)].fill(true);
    }
    // The first pass, line by line, from the sites of each line.
    let lines_per_row = rows.len / len;
    scratch.finite.clear();
    scratch.finite.resize(field.len() / len, false);
    let mut next = 0;
    for (line, out) in field.chunks_mut(len).enumerate() {
        let start = plane.offset + line * len;
        let first = next;
        next += plane.sites[next..].partition_point(|&s| s < start + len);
        if scratch.read[line / lines_per_row] {
            let sites = plane.sites[first..next].iter().map(|&s| s - start);
            nearest_of_sites(out, sites, w2);
            scratch.finite[line] = next > first;
        }
    }
    for axis in (1..last).rev() {
        let inner: usize = shape[axis + 1..].iter().product();
        let block = shape[axis] * inner;
        let blocks_per_row = rows.len / block.min(rows.len);
        for (b, values) in field.chunks_mut(block).enumerate() {
            // A block of an inner axis lies in one row: skipped when the row is not read.
            // The second axis' block is the plane: only its wanted rows are written.
            let wanted = if axis == 1 {
                Some(plane.wanted)
            } else if scratch.read[b / blocks_per_row] {
                None
            } else {
                continue;
            };
            let finite = b * shape[axis]..(b + 1) * shape[axis];
            window_pass(
                values,
                shape[axis],
                inner,
                &taps[axis],
                scratch,
                finite,
                wanted,
            );
        }
        // The rows of the next (outer) axis are whole blocks of this one, finite where any of
        // their rows was (the window spreads a finite row to its neighbours, never further
        // than its block).
        let finite: Vec<bool> = scratch
            .finite
            .chunks(shape[axis])
            .map(|rows| rows.contains(&true))
            .collect();
        scratch.finite = finite;
    }
}

/// `values[y] = min_{|k| <= K} values[y + k] + taps[|k|]` for each row `y` of a block of `len`
/// rows of `inner` values (each `wanted` row, or all), reading a copy of the block.
/// `scratch.finite[finite]` says which input rows hold a finite value; the others cannot
/// lower anything and are skipped.
#[inline(always)]
fn window_pass(
    values: &mut [f64],
    len: usize,
    inner: usize,
    taps: &[f64],
    scratch: &mut PlaneScratch,
    finite: std::ops::Range<usize>,
    wanted: Option<&[bool]>,
) {
    let PlaneScratch {
        input,
        finite: finite_rows,
        sources,
        ..
    } = scratch;
    let finite = &finite_rows[finite];
    input.clear();
    input.extend_from_slice(values);
    let k_max = taps.len() - 1;
    for (y, out) in values.chunks_mut(inner).enumerate() {
        if wanted.is_some_and(|wanted| !wanted[y]) {
            continue;
        }
        // The rows that can lower row `y`, with their taps.
        sources.clear();
        let window = y.saturating_sub(k_max)..=(y + k_max).min(len - 1);
        for source in window.filter(|&source| source != y && finite[source]) {
            sources.push((source * inner, taps[source.abs_diff(y)]));
        }
        lower_row(out, input, sources);
    }
}

/// `out[j] = min(out[j], min_s input[row_s + j] + tap_s)` over the `sources` `(row_s, tap_s)`:
/// blocks of [`COLUMNS`] values kept in registers over all the sources (the row is loaded
/// and stored once, not once per source), then blocks of 8, then single values.
#[inline(always)]
fn lower_row(out: &mut [f64], input: &[f64], sources: &[(usize, f64)]) {
    let width = out.len();
    let (blocks, rest) = out.as_chunks_mut::<COLUMNS>();
    for (b, block) in blocks.iter_mut().enumerate() {
        lower_block(block, input, b * COLUMNS, sources);
    }
    let at = width - rest.len();
    let (blocks, rest) = rest.as_chunks_mut::<8>();
    for (b, block) in blocks.iter_mut().enumerate() {
        lower_block(block, input, at + b * 8, sources);
    }
    let at = width - rest.len();
    for &(row, tap) in sources {
        lower(rest, &input[row + at..row + width], tap);
    }
}

/// [`lower_row`] on one block of `N` values starting at column `at`.
#[inline(always)]
fn lower_block<const N: usize>(
    block: &mut [f64; N],
    input: &[f64],
    at: usize,
    sources: &[(usize, f64)],
) {
    let mut best = *block;
    for &(row, tap) in sources {
        let source: &[f64; N] = input[row + at..row + at + N]
            .try_into()
            .expect("a block of N values");
        lower(&mut best, source, tap);
    }
    *block = best;
}

/// `best[j] = min(best[j], source[j] + tap)`, branch-free (one vector minimum).
#[inline(always)]
fn lower(best: &mut [f64], source: &[f64], tap: f64) {
    for (b, &v) in best.iter_mut().zip(source) {
        let candidate = v + tap;
        *b = if candidate < *b { candidate } else { *b };
    }
}

/// The last pass at one query: `min_{|k| <= K} field[query + k plane] + taps[|k|]`.
fn along_first_axis(field: &[f64], len: usize, plane: usize, query: usize, taps: &[f64]) -> f64 {
    let z = query / plane;
    let k_max = taps.len() - 1;
    let mut best = f64::INFINITY;
    for source in z.saturating_sub(k_max)..=(z + k_max).min(len - 1) {
        let candidate = field[query - z * plane + source * plane] + taps[source.abs_diff(z)];
        if candidate < best {
            best = candidate;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_grids::{brute_force, random_sites};

    fn indices(grid: &[bool]) -> Vec<usize> {
        (0..grid.len()).filter(|&i| grid[i]).collect()
    }

    /// Each way alone: rounds then the full transform; site by site; and the choice made
    /// from the data, as the metrics run it.
    const CHOICES: [(&str, Choice); 3] = [
        (
            "rounds",
            Choice {
                pairs_per_voxel: 0,
                sample: 0,
            },
        ),
        (
            "site by site",
            Choice {
                pairs_per_voxel: usize::MAX,
                sample: 0,
            },
        ),
        (
            "adaptive",
            Choice {
                pairs_per_voxel: BRUTE_FORCE_PAIRS_PER_VOXEL,
                sample: SAMPLE,
            },
        ),
    ];

    /// The result at every voxel, every way, against the definition.
    fn check(shape: &[usize], spacing: &[f64], density: f64, seed: u64) {
        let len = shape.iter().product();
        let sites = random_sites(len, density, seed);
        let queries: Vec<usize> = (0..len).collect();
        let slow = brute_force(&sites, shape, spacing);
        for (way, choice) in CHOICES {
            let fast =
                nearest_squared_distances(&indices(&sites), shape, spacing, &queries, choice);
            for (q, (a, b)) in fast.iter().zip(&slow).enumerate() {
                assert!(
                    a == b || (a - b).abs() <= 1e-12 * b.max(1.0),
                    "{way}: shape {shape:?} spacing {spacing:?} density {density} voxel {q}: \
                     {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn borders_far_apart_go_to_the_full_transform_exactly() {
        // Two sites in a corner, queries in the far corner: the sampled median is beyond the
        // widest window.
        let shape = [40, 50, 45];
        let sites = vec![0, 1];
        let far = |i: usize| (39 * 50 + 49) * 45 + 44 - i;
        let queries: Vec<usize> = (0..30).map(far).collect();
        let choice = Choice {
            pairs_per_voxel: 0,
            sample: SAMPLE,
        };
        let found = nearest_squared_distances(&sites, &shape, &[1.0; 3], &queries, choice);
        let mut grid = vec![false; 40 * 50 * 45];
        grid[0] = true;
        grid[1] = true;
        let all = brute_force(&grid, &shape, &[1.0; 3]);
        for (&q, d) in queries.iter().zip(found) {
            assert_eq!(d, all[q], "voxel {q}");
        }
        assert!(Windows::new(&shape, &[1.0; 3], all[far(0)].sqrt()).widest() > MAX_TAPS);
    }

    #[test]
    fn equals_brute_force_on_the_unit_grid_at_every_density() {
        // Dense sites end in the first round, sparse ones need the later rounds, and a single
        // site or none leaves queries for the full transform.
        let shapes: [&[usize]; 7] = [
            &[1],
            &[17],
            &[9, 13],
            &[1, 40],
            &[7, 5, 11],
            &[3, 1, 19],
            &[40, 3, 45],
        ];
        for (k, shape) in shapes.iter().enumerate() {
            for density in [0.0, 0.0005, 0.01, 0.1, 0.5, 1.0] {
                check(shape, &vec![1.0; shape.len()], density, k as u64 * 31 + 7);
            }
        }
    }

    #[test]
    fn equals_brute_force_with_anisotropic_spacing() {
        for (shape, spacing) in [
            (vec![12, 9], vec![0.7, 1.3]),
            (vec![6, 8, 10], vec![2.5, 0.8, 0.8]),
            (vec![5, 33, 4], vec![1.0, 0.3, 3.0]),
            (vec![30, 20, 25], vec![3.0, 0.5, 1.0]),
        ] {
            for density in [0.001, 0.05] {
                check(&shape, &spacing, density, 99);
            }
        }
    }

    #[test]
    fn four_dimensional_grids_use_two_windowed_axes() {
        check(&[5, 6, 7, 8], &[1.0; 4], 0.01, 3);
        check(&[4, 9, 3, 6], &[1.5, 0.5, 1.0, 2.0], 0.02, 4);
    }

    #[test]
    fn a_subset_of_queries_in_any_order() {
        let shape = [20, 30, 25];
        let sites = random_sites(shape.iter().product(), 0.001, 11);
        let spacing = [1.0; 3];
        let all = brute_force(&sites, &shape, &spacing);
        let queries: Vec<usize> = (0..all.len()).rev().step_by(7).collect();
        for (way, choice) in CHOICES {
            let fast =
                nearest_squared_distances(&indices(&sites), &shape, &spacing, &queries, choice);
            for (&q, d) in queries.iter().zip(fast) {
                assert_eq!(d, all[q], "{way}: voxel {q}");
            }
        }
    }
}
