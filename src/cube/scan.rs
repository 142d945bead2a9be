//! Prefix sums along the rows of an integer matrix `[rows, len]` on a CubeCL device, by
//! reduce-then-scan in three kernels:
//!
//! 1. [`block_totals`]: the total of every block of [`BLOCK`] elements of every row;
//! 2. [`scan_block_totals`]: per row, the exclusive prefix sums of those totals (one workgroup
//!    per row, each unit a contiguous run of blocks);
//! 3. [`scan_blocks`]: every block again, from its offset, writing the prefix sums.
//!
//! Integer additions are exact (and associative), so the result is the sequential prefix sum
//! for any row length: a row of up to `2^31 - 1` elements whose sums stay below `2^31` in
//! `i32`. No unit waits for another workgroup (lavapipe does not guarantee forward progress
//! between workgroups), which is why the scan is three launches and not one.

use burn_cubecl::cubecl;
use cubecl::client::Client;
use cubecl::prelude::*;
use cubecl::server::Handle;

use super::block::{
    BLOCK, RUN, SIDE, UNITS, exclusive_scan_units, exclusive_strip, strip_total, unit_span,
};
use super::launch::Grid;

/// A unit's run of its block (see [`unit_span`]) and the run's place in the block's sum.
#[derive(CubeType, Clone, Copy)]
pub(crate) struct BlockRun<I: Int> {
    pub row: usize,
    pub block: usize,
    pub start: usize,
    pub end: usize,
    pub active: bool,
    /// The sum of the block's elements before the run.
    pub before: I,
    /// The sum of the whole block.
    pub block_total: I,
}

/// This unit's [`BlockRun`] of `input` (`[rows, len]` in blocks of [`BLOCK`]; with
/// `label_bits`, of the elements' top bits): the part the three scan-shaped kernels share.
/// Every unit of the workgroup must call it (it synchronises the workgroup).
#[cube]
pub(crate) fn block_run<I: Int>(
    input: &[I],
    len: usize,
    blocks: usize,
    rows: usize,
    #[comptime] label_bits: bool,
) -> BlockRun<I> {
    let t = UNIT_POS as usize;
    let (row, block, start, end, active) = unit_span(len, blocks, rows, RUN);
    let mut total = I::new(0);
    for i in start..end {
        total += element::<I>(input[row * len + i], label_bits);
    }
    let mut partial = Shared::new_slice(UNITS as usize);
    let mut sums = Shared::new_slice(SIDE as usize + 1);
    partial[t] = total;
    let block_total = exclusive_scan_units::<I>(&mut partial, &mut sums);
    BlockRun::<I> {
        row,
        block,
        start,
        end,
        active,
        before: partial[t],
        block_total,
    }
}

/// Pass 1: `totals[row * blocks + b]` = the sum of block `b` of `row`; with `label_bits`, of
/// the top bits of the elements (the labels the Lovász sort carries in its payloads).
#[cube(launch_unchecked)]
fn block_totals<I: Int>(
    input: &[I],
    totals: &mut [I],
    len: usize,
    blocks: usize,
    rows: usize,
    #[comptime] label_bits: bool,
) {
    let run = block_run::<I>(input, len, blocks, rows, label_bits);
    if run.active && UNIT_POS == 0 {
        totals[run.row * blocks + run.block] = run.block_total;
    }
}

/// What pass 1 adds up: the element, or its top bit (`label_bits`).
#[cube]
fn element<I: Int>(value: I, #[comptime] label_bits: bool) -> I {
    if comptime!(label_bits) {
        value >> I::new(31)
    } else {
        value
    }
}

/// Pass 2: replaces each row's `blocks` totals by their exclusive prefix sums, and writes the
/// row's total to `row_totals[row]`; one workgroup per row, unit `t` owning blocks
/// `t * per_unit ..` of it.
#[cube(launch_unchecked)]
fn scan_block_totals<I: Int>(
    totals: &mut [I],
    row_totals: &mut [I],
    blocks: usize,
    per_unit: usize,
    rows: usize,
) {
    let t = UNIT_POS as usize;
    let row = CUBE_POS;
    let active = row < rows;
    let start = min(t * per_unit, blocks);
    let end = min(start + per_unit, blocks);
    let mut total = I::new(0);
    if active {
        total = strip_total::<I>(&*totals, row * blocks + start, end - start);
    }
    let mut partial = Shared::new_slice(UNITS as usize);
    let mut sums = Shared::new_slice(SIDE as usize + 1);
    partial[t] = total;
    let row_total = exclusive_scan_units::<I>(&mut partial, &mut sums);
    if active {
        if t == 0 {
            row_totals[row] = row_total;
        }
        let offset = partial[t];
        exclusive_strip::<I>(totals, row * blocks + start, end - start, offset);
    }
}

/// Pass 3: the prefix sums of every block from its offset (`offsets`, pass 2's output);
/// `inclusive` says whether element `i` counts itself.
#[cube(launch_unchecked)]
fn scan_blocks<I: Int>(
    input: &[I],
    offsets: &[I],
    output: &mut [I],
    len: usize,
    blocks: usize,
    rows: usize,
    #[comptime] inclusive: bool,
) {
    let run = block_run::<I>(input, len, blocks, rows, false);
    if run.active {
        let row = run.row;
        let mut running = offsets[row * blocks + run.block] + run.before;
        for i in run.start..run.end {
            let v = input[row * len + i];
            if comptime!(inclusive) {
                running += v;
                output[row * len + i] = running;
            } else {
                output[row * len + i] = running;
                running += v;
            }
        }
    }
}

/// The offsets of every block of every row (passes 1 and 2) of `input` (`rows * len`
/// elements of `I`, row-major; with `label_bits`, their top bits are counted): the handles of
/// the offsets (`rows * blocks`, `blocks = ceil(len / BLOCK)`) and of the row totals (`rows`).
pub(crate) fn block_offsets<I: Int + CubeElement>(
    client: &Client,
    input: &Handle,
    rows: usize,
    len: usize,
    label_bits: bool,
) -> (Handle, Handle) {
    let blocks = len.div_ceil(BLOCK);
    let totals = client.empty((rows * blocks).max(1) * size_of::<I>());
    let row_totals = client.empty(rows.max(1) * size_of::<I>());
    // SAFETY: the buffers hold `rows * len`, `rows * blocks` and `rows` elements, and the
    // kernels index below those (`active` skips the workgroups past the last block).
    unsafe {
        block_totals::launch_unchecked::<I>(
            client,
            Grid::of(rows * blocks).count(),
            CubeDim::new_1d(UNITS),
            BufferArg::from_raw_parts(input.clone(), rows * len),
            BufferArg::from_raw_parts(totals.clone(), rows * blocks),
            len,
            blocks,
            rows,
            label_bits,
        );
        scan_block_totals::launch_unchecked::<I>(
            client,
            Grid::of(rows).count(),
            CubeDim::new_1d(UNITS),
            BufferArg::from_raw_parts(totals.clone(), rows * blocks),
            BufferArg::from_raw_parts(row_totals.clone(), rows),
            blocks,
            blocks.div_ceil(UNITS as usize),
            rows,
        );
    }
    (totals, row_totals)
}

/// Launches the three passes on `input` (`rows * len` elements of `I`, row-major) and returns
/// the handle of the prefix sums (same layout). `inclusive`: `out[i] = sum(in[..=i])`;
/// otherwise `sum(in[..i])`.
pub(crate) fn scan_rows<I: Int + CubeElement>(
    client: &Client,
    input: Handle,
    rows: usize,
    len: usize,
    inclusive: bool,
) -> Handle {
    let count = rows * len;
    let output = client.empty(count.max(1) * size_of::<I>());
    if count == 0 {
        return output;
    }
    let blocks = len.div_ceil(BLOCK);
    let (offsets, _) = block_offsets::<I>(client, &input, rows, len, false);
    // SAFETY: as in `block_offsets`; `output` holds `rows * len` elements.
    unsafe {
        scan_blocks::launch_unchecked::<I>(
            client,
            Grid::of(rows * blocks).count(),
            CubeDim::new_1d(UNITS),
            BufferArg::from_raw_parts(input, count),
            BufferArg::from_raw_parts(offsets, rows * blocks),
            BufferArg::from_raw_parts(output.clone(), count),
            len,
            blocks,
            rows,
            inclusive,
        );
    }
    output
}
