//! A stable, segmented LSD radix sort of f32 keys with u32 payloads on a CubeCL device: every
//! row of `[rows, len]` is sorted in descending order of its keys, equal keys keeping
//! ascending pixel index (the order of the host kernels' sort).
//!
//! The keys become u32 whose ascending order is the descending total order of the floats
//! (`f32::total_cmp` reversed: NaN first, then `+inf`, ..., `+0`, `-0`, ..., `-inf`), so an
//! ascending stable sort of them is the wanted order. Eight passes of 4-bit digits follow,
//! each three steps:
//!
//! 1. [`digit_counts`]: every workgroup counts the 16 digits of its block (per-unit counters
//!    in shared memory, no atomics), written digit-major per row (`[row][digit][block]`);
//! 2. the exclusive prefix sums of those counts per row ([`scan_rows`]): the first output
//!    position, within its row, of every (digit, block);
//! 3. [`scatter`]: every workgroup counts again, scans its counters in digit-major unit order
//!    (so a unit's elements go after those of lower units, which hold earlier elements), and
//!    writes each key and payload to its position.
//!
//! Each pass moves `24` bytes per element (the keys and payloads read twice, written once),
//! plus the counts (`16 / 4096` of an element per block).

use burn_cubecl::cubecl;
use cubecl::client::Client;
use cubecl::prelude::*;
use cubecl::server::Handle;

use super::block::{BLOCK, RUN, SIDE, UNITS, exclusive_scan_units};
use super::launch::Grid;
use super::scan::scan_rows;

/// Bits per digit, and the digits per key and pass.
const DIGIT_BITS: u32 = 4;
const DIGITS: u32 = 1 << DIGIT_BITS;

/// `keys[i]`: the order-preserving u32 of `values[i]` for a descending sort;
/// `indices[i] = i % len` (the pixel index within its row).
#[cube(launch)]
fn descending_keys(
    values: &[f32],
    keys: &mut [u32],
    indices: &mut [u32],
    len: usize,
    count: usize,
) {
    let i = CUBE_POS * UNITS as usize + UNIT_POS as usize;
    if i < count {
        let bits = u32::reinterpret(values[i]);
        // Negative floats: all bits flipped; others: the sign bit set. That orders the bit
        // patterns as the floats ascend; the complement makes the order descend.
        let ascending = if bits >> 31 == 1 {
            !bits
        } else {
            bits | 0x8000_0000
        };
        keys[i] = !ascending;
        indices[i] = (i % len) as u32;
    }
}

/// The floats of sorted keys (the inverse of [`descending_keys`]).
#[cube(launch)]
fn values_of_keys(keys: &[u32], values: &mut [f32], count: usize) {
    let i = CUBE_POS * UNITS as usize + UNIT_POS as usize;
    if i < count {
        let ascending = !keys[i];
        let bits = if ascending >> 31 == 1 {
            ascending & 0x7FFF_FFFF
        } else {
            !ascending
        };
        values[i] = f32::reinterpret(bits);
    }
}

/// Counts, into `counters[digit * UNITS + unit]` (shared), the digits of this unit's run of
/// its block; returns the row, block and whether this workgroup has a block at all.
#[cube]
fn count_digits(
    keys: &[u32],
    counters: &mut [u32],
    len: usize,
    blocks: usize,
    rows: usize,
    shift: u32,
) -> (usize, usize, bool) {
    let t = UNIT_POS as usize;
    let units = UNITS as usize;
    let row = CUBE_POS / blocks;
    let block = CUBE_POS % blocks;
    let active = row < rows;
    for d in 0..DIGITS as usize {
        counters[d * units + t] = 0u32;
    }
    if active {
        let start = block * BLOCK + t * RUN as usize;
        let end = min(start + RUN as usize, len);
        for i in start..end {
            let d = ((keys[row * len + i] >> shift) & (DIGITS - 1)) as usize;
            counters[d * units + t] += 1u32;
        }
    }
    (row, block, active)
}

/// Step 1 of a pass: `counts[(row * DIGITS + digit) * blocks + block]`.
#[cube(launch)]
fn digit_counts(
    keys: &[u32],
    counts: &mut [u32],
    len: usize,
    blocks: usize,
    rows: usize,
    shift: u32,
) {
    let t = UNIT_POS as usize;
    let units = UNITS as usize;
    let side = SIDE as usize;
    let mut counters = Shared::new_slice(DIGITS as usize * UNITS as usize);
    let mut partial = Shared::new_slice(UNITS as usize);
    let (row, block, active) = count_digits(keys, &mut counters, len, blocks, rows, shift);
    sync_cube();
    // Unit t adds SIDE units' counters of digit t / SIDE; then units 0..DIGITS add SIDE of
    // those.
    let digit = t / side;
    let first = (t % side) * side;
    let mut sum = 0u32;
    for j in 0..side {
        sum += counters[digit * units + first + j];
    }
    partial[t] = sum;
    sync_cube();
    if active && t < DIGITS as usize {
        let mut total = 0u32;
        for j in 0..side {
            total += partial[t * side + j];
        }
        counts[(row * DIGITS as usize + t) * blocks + block] = total;
    }
}

/// Step 3 of a pass: writes each key and payload of this block to
/// `offsets[(row, digit, block)]` + its rank among the block's keys of that digit.
#[cube(launch)]
fn scatter(
    keys: &[u32],
    indices: &[u32],
    offsets: &[u32],
    keys_out: &mut [u32],
    indices_out: &mut [u32],
    len: usize,
    blocks: usize,
    rows: usize,
    shift: u32,
) {
    let t = UNIT_POS as usize;
    let units = UNITS as usize;
    let digits = DIGITS as usize;
    let mut counters = Shared::new_slice(DIGITS as usize * UNITS as usize);
    let mut partial = Shared::new_slice(UNITS as usize);
    let mut sums = Shared::new_slice(SIDE as usize + 1);
    let mut starts = Shared::new_slice(DIGITS as usize);
    let (row, block, active) = count_digits(keys, &mut counters, len, blocks, rows, shift);
    sync_cube();
    // Exclusive prefix sums of the counters in their digit-major order: unit t owns the
    // `digits` consecutive counters from t * digits.
    let mut run_total = 0u32;
    for j in 0..digits {
        run_total += counters[t * digits + j];
    }
    partial[t] = run_total;
    exclusive_scan_units::<u32>(&mut partial, &mut sums);
    let mut running = partial[t];
    for j in 0..digits {
        let v = counters[t * digits + j];
        counters[t * digits + j] = running;
        running += v;
    }
    sync_cube();
    // Where each digit starts within the block.
    if t < digits {
        starts[t] = counters[t * units];
    }
    sync_cube();
    if active {
        let start = block * BLOCK + t * RUN as usize;
        let end = min(start + RUN as usize, len);
        for i in start..end {
            let key = keys[row * len + i];
            let d = ((key >> shift) & (DIGITS - 1)) as usize;
            let rank = counters[d * units + t] - starts[d];
            counters[d * units + t] += 1u32;
            let at = row * len + (offsets[(row * digits + d) * blocks + block] + rank) as usize;
            keys_out[at] = key;
            indices_out[at] = indices[row * len + i];
        }
    }
}

/// Sorts every row of `values` (`rows * len` f32, row-major) in descending order, stably;
/// returns the handles of the sorted values and of their pixel indices (u32, `< len`).
///
/// `len` must be below `2^32` (the indices are u32); the caller checks it.
pub(crate) fn sort_rows_descending(
    client: &Client,
    values: Handle,
    rows: usize,
    len: usize,
) -> (Handle, Handle) {
    let count = rows * len;
    let bytes = count.max(1) * size_of::<u32>();
    let (mut keys, mut indices) = (client.empty(bytes), client.empty(bytes));
    let (mut keys_next, mut indices_next) = (client.empty(bytes), client.empty(bytes));
    let sorted_values = client.empty(bytes);
    if count == 0 {
        return (sorted_values, indices);
    }
    let unit_dim = CubeDim::new_1d(UNITS);
    let elementwise = Grid::of(count.div_ceil(UNITS as usize));
    let blocks = len.div_ceil(BLOCK);
    let tiles = Grid::of(rows * blocks);
    let counts_len = rows * DIGITS as usize * blocks;
    // SAFETY: every buffer holds the element count given with it, and the kernels index
    // within `rows * len` (their `active` and bounds checks).
    unsafe {
        descending_keys::launch(
            client,
            elementwise.count(),
            unit_dim,
            BufferArg::from_raw_parts(values, count),
            BufferArg::from_raw_parts(keys.clone(), count),
            BufferArg::from_raw_parts(indices.clone(), count),
            len,
            count,
        );
        for pass in 0..(32 / DIGIT_BITS) {
            let shift = pass * DIGIT_BITS;
            let counts = client.empty(counts_len * size_of::<u32>());
            digit_counts::launch(
                client,
                tiles.count(),
                unit_dim,
                BufferArg::from_raw_parts(keys.clone(), count),
                BufferArg::from_raw_parts(counts.clone(), counts_len),
                len,
                blocks,
                rows,
                shift,
            );
            let offsets = scan_rows::<u32>(client, counts, rows, DIGITS as usize * blocks, false);
            scatter::launch(
                client,
                tiles.count(),
                unit_dim,
                BufferArg::from_raw_parts(keys.clone(), count),
                BufferArg::from_raw_parts(indices.clone(), count),
                BufferArg::from_raw_parts(offsets, counts_len),
                BufferArg::from_raw_parts(keys_next.clone(), count),
                BufferArg::from_raw_parts(indices_next.clone(), count),
                len,
                blocks,
                rows,
                shift,
            );
            std::mem::swap(&mut keys, &mut keys_next);
            std::mem::swap(&mut indices, &mut indices_next);
        }
        values_of_keys::launch(
            client,
            elementwise.count(),
            unit_dim,
            BufferArg::from_raw_parts(keys, count),
            BufferArg::from_raw_parts(sorted_values.clone(), count),
            count,
        );
    }
    (sorted_values, indices)
}
