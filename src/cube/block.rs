//! The workgroup ("cube") layout shared by the scan and sort kernels, and the one
//! shared-memory scan they both need.
//!
//! A workgroup is [`UNITS`] = 256 units; unit `t` owns [`RUN`] consecutive elements of its
//! block, so a block covers [`BLOCK`] = 4096 consecutive elements and the units' runs are in
//! element order. That ownership is what makes the scans exact in order and the sort stable:
//! a unit's partial result belongs to a contiguous run, and the runs are combined in unit
//! order. Nothing here uses plane (subgroup) operations, and no workgroup waits for another:
//! Mesa's lavapipe supports neither.

use burn_cubecl::cubecl;
use cubecl::prelude::*;

/// Units per workgroup: [`SIDE`]^2.
pub(crate) const UNITS: u32 = 256;
/// The side of the two-level scan: [`UNITS`] = `SIDE * SIDE`.
pub(crate) const SIDE: u32 = 16;
/// Consecutive elements per unit.
pub(crate) const RUN: u32 = 16;
/// Elements per workgroup: [`UNITS`] * [`RUN`].
pub(crate) const BLOCK: usize = (UNITS * RUN) as usize;

/// This unit's run of consecutive elements in a `[rows, len]` layout cut into blocks of
/// `UNITS * run` per row (`blocks` per row), one workgroup per block numbered by `CUBE_POS`:
/// `(row, block, start, end, active)`, `start..end` the run within the row (empty past the
/// row's end, and for the workgroups past the last block, which are not `active`).
#[cube]
pub(crate) fn unit_span(
    len: usize,
    blocks: usize,
    rows: usize,
    #[comptime] run: u32,
) -> (usize, usize, usize, usize, bool) {
    let row = CUBE_POS / blocks;
    let block = CUBE_POS % blocks;
    let active = row < rows;
    let start = block * (UNITS * run) as usize + UNIT_POS as usize * run as usize;
    let mut end = min(start + run as usize, len);
    if !active {
        end = start;
    }
    (row, block, start, end, active)
}

/// Replaces `values[0..UNITS]` (in shared memory) by its exclusive prefix sums, and returns the
/// total to every unit; `sums` is shared scratch of [`SIDE`] + 1 entries.
///
/// Two levels of [`SIDE`] sequential additions (units `0..SIDE` each scan a row of `SIDE`
/// values, unit 0 scans the row totals), so it costs `3 * SIDE` additions on the critical path
/// and four barriers, with no atomics. Every unit of the workgroup must call it (it
/// synchronises the workgroup).
#[cube]
pub(crate) fn exclusive_scan_units<I: Int>(values: &mut [I], sums: &mut [I]) -> I {
    let t = UNIT_POS as usize;
    let side = SIDE as usize;
    sync_cube();
    if t < side {
        sums[t] = strip_total::<I>(&*values, t * side, side);
    }
    sync_cube();
    if t == 0 {
        // One slot past the rows keeps the grand total.
        sums[side] = exclusive_strip::<I>(sums, 0, side, I::new(0));
    }
    sync_cube();
    if t < side {
        let offset = sums[t];
        exclusive_strip::<I>(values, t * side, side, offset);
    }
    sync_cube();
    sums[side]
}

/// The sum of the strip `values[start..start + len]`.
#[cube]
pub(crate) fn strip_total<I: Int>(values: &[I], start: usize, len: usize) -> I {
    let mut total = I::new(0);
    for j in 0..len {
        total += values[start + j];
    }
    total
}

/// Replaces the strip `values[start..start + len]` by its exclusive prefix sums plus `offset`,
/// and returns `offset` plus the strip's total: the second half of a scan whose first half
/// ([`strip_total`], then a scan of the strips' totals) gave the strip its `offset`.
#[cube]
pub(crate) fn exclusive_strip<I: Int>(values: &mut [I], start: usize, len: usize, offset: I) -> I {
    let mut running = offset;
    for j in 0..len {
        let v = values[start + j];
        values[start + j] = running;
        running += v;
    }
    running
}
