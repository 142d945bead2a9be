//! A stable, segmented LSD radix sort of f32 keys with u32 payloads on a CubeCL device: every
//! row of `[rows, len]` is sorted in descending order of its keys, equal keys keeping
//! ascending pixel index (the order of the host kernels' sort).
//!
//! The keys become u32 whose ascending order is the descending total order of the floats
//! (`f32::total_cmp` reversed: NaN first, then `+inf`, ..., `+0`, `-0`, ..., `-inf`), so an
//! ascending stable sort of them is the wanted order; the first pass maps the floats as it
//! reads them, and builds the payloads (the pixel index, with the pixel's label in the top
//! bit for the Lovász weights). Eight passes of 4-bit digits, each three steps:
//!
//! 1. [`digit_counts`]: every workgroup counts the 16 digits of its block (per-unit counters
//!    in shared memory, no atomics), written digit-major per row (`[row][digit][block]`);
//! 2. the exclusive prefix sums of those counts per row ([`scan_rows`]): the first output
//!    position, within its row, of every (digit, block);
//! 3. [`scatter`]: every workgroup counts again, scans its counters in digit-major unit order
//!    (so a unit's elements go after those of lower units, which hold earlier elements), and
//!    writes each key and payload to its position.
//!
//! Each pass moves 20 bytes per element (the keys read twice, the payloads read once, both
//! written once), plus the counts (`16 / 4096` of an element per block).

use burn_cubecl::cubecl;
use cubecl::client::Client;
use cubecl::prelude::*;
use cubecl::server::Handle;

use super::block::{SIDE, UNITS, exclusive_scan_units, exclusive_strip, strip_total, unit_span};
use super::launch::Grid;
use super::scan::scan_rows;

/// Bits per digit, and the digits per key and pass.
const DIGIT_BITS: u32 = 4;
pub(crate) const DIGITS: u32 = 1 << DIGIT_BITS;
/// Consecutive keys per unit in the sort: 15, so that a unit's count of one digit fits in 4
/// bits and its 16 counts in two registers (8 nibbles each). Counting in registers, not in
/// shared memory indexed by the digit, is what keeps the passes fast where shared memory is
/// emulated (lavapipe): there every per-lane dynamic index is a scalar loop.
const RUN: u32 = 15;
/// Keys per workgroup in the sort.
pub(crate) const BLOCK: usize = (UNITS * RUN) as usize;
/// The payload bit that carries a pixel's label (indices are below `2^31`).
pub(crate) const LABEL_BIT: u32 = 1 << 31;

/// The u32 of the float bits `bits` whose ascending order is the floats' descending order.
#[cube]
fn descending_key(bits: u32) -> u32 {
    // Negative floats: all bits flipped; others: the sign bit set. That orders the bit
    // patterns as the floats ascend; the complement makes the order descend.
    let ascending = if bits >> 31 == 1 {
        !bits
    } else {
        bits | 0x8000_0000
    };
    !ascending
}

/// The key of element `at` in a pass: the raw float bits mapped on the first pass.
#[cube]
fn key_at(keys: &[u32], at: usize, #[comptime] first: bool) -> u32 {
    if comptime!(first) {
        descending_key(keys[at])
    } else {
        keys[at]
    }
}

/// The floats of sorted keys (the inverse of [`descending_key`]).
#[cube(launch_unchecked)]
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

/// A unit's 16 digit counts, 4 bits each: digits 0-7 in `low`, 8-15 in `high`.
#[derive(CubeType, Clone, Copy)]
struct Nibbles {
    low: u32,
    high: u32,
}

#[cube]
impl Nibbles {
    fn zero() -> Nibbles {
        Nibbles {
            low: 0u32,
            high: 0u32,
        }
    }

    /// The count of `digit` (a runtime value).
    fn get(&self, digit: u32) -> u32 {
        let shift = (digit & 7) * 4;
        let word = if digit < 8 { self.low } else { self.high };
        (word >> shift) & 15
    }

    /// Adds one to the count of `digit`.
    fn increment(&mut self, digit: u32) {
        let one = 1u32 << ((digit & 7) * 4);
        if digit < 8 {
            self.low += one;
        } else {
            self.high += one;
        }
    }
}

/// Counts the digits of this unit's run in registers, and writes the counts to
/// `counters[digit * UNITS + unit]` (shared).
#[cube]
fn count_digits(
    keys: &[u32],
    counters: &mut [u32],
    len: usize,
    row: usize,
    start: usize,
    end: usize,
    shift: u32,
    #[comptime] first: bool,
) {
    let t = UNIT_POS as usize;
    let units = UNITS as usize;
    let mut counts = Nibbles::zero();
    for i in start..end {
        counts.increment((key_at(keys, row * len + i, first) >> shift) & (DIGITS - 1));
    }
    #[unroll]
    for d in 0..DIGITS {
        counters[d as usize * units + t] = counts.get(d);
    }
}

/// Step 1 of a pass: `counts[(row * DIGITS + digit) * blocks + block]`.
#[cube(launch_unchecked)]
fn digit_counts(
    keys: &[u32],
    counts: &mut [u32],
    len: usize,
    blocks: usize,
    rows: usize,
    shift: u32,
    #[comptime] first: bool,
) {
    let t = UNIT_POS as usize;
    let units = UNITS as usize;
    let side = SIDE as usize;
    let mut counters = Shared::new_slice(DIGITS as usize * UNITS as usize);
    let mut partial = Shared::new_slice(UNITS as usize);
    let (row, block, start, end, active) = unit_span(len, blocks, rows, RUN);
    count_digits(keys, &mut counters, len, row, start, end, shift, first);
    sync_cube();
    // Unit t adds SIDE units' counters of digit t / SIDE; then units 0..DIGITS add SIDE of
    // those.
    let digit = t / side;
    let from = (t % side) * side;
    let mut sum = 0u32;
    for j in 0..side {
        sum += counters[digit * units + from + j];
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
/// `offsets[(row, digit, block)]` + its rank among the block's keys of that digit. On the
/// `first` pass the payload is built: the pixel index, and with `labelled` the label bit of
/// `labels[i] == 1`.
#[cube(launch_unchecked)]
fn scatter(
    keys: &[u32],
    payloads: &[u32],
    labels: &[f32],
    offsets: &[u32],
    keys_out: &mut [u32],
    payloads_out: &mut [u32],
    len: usize,
    blocks: usize,
    rows: usize,
    shift: u32,
    #[comptime] first: bool,
    #[comptime] labelled: bool,
) {
    let t = UNIT_POS as usize;
    let units = UNITS as usize;
    let digits = DIGITS as usize;
    let mut counters = Shared::new_slice(DIGITS as usize * UNITS as usize);
    let mut partial = Shared::new_slice(UNITS as usize);
    let mut sums = Shared::new_slice(SIDE as usize + 1);
    let mut bases = Shared::new_slice(DIGITS as usize);
    let (row, block, start, end, active) = unit_span(len, blocks, rows, RUN);
    count_digits(keys, &mut counters, len, row, start, end, shift, first);
    sync_cube();
    // Exclusive prefix sums of the counters in their digit-major order: unit t owns the
    // `digits` consecutive counters from t * digits.
    partial[t] = strip_total::<u32>(&counters, t * digits, digits);
    exclusive_scan_units::<u32>(&mut partial, &mut sums);
    let offset = partial[t];
    exclusive_strip::<u32>(&mut counters, t * digits, digits, offset);
    sync_cube();
    // Where each digit's keys of this block go in the row: its offset, less where the digit
    // starts within the block (which the counters include).
    if active && t < digits {
        bases[t] = offsets[(row * digits + t) * blocks + block] - counters[t * units];
    }
    sync_cube();
    #[unroll]
    for d in 0..DIGITS {
        counters[d as usize * units + t] += bases[d as usize];
    }
    let mut seen = Nibbles::zero();
    for i in start..end {
        let at = row * len + i;
        let key = key_at(keys, at, first);
        let d = (key >> shift) & (DIGITS - 1);
        let to = row * len + (counters[d as usize * units + t] + seen.get(d)) as usize;
        seen.increment(d);
        keys_out[to] = key;
        if comptime!(first) {
            let mut payload = i as u32;
            if comptime!(labelled) {
                if labels[at] == 1.0 {
                    payload |= LABEL_BIT;
                }
            }
            payloads_out[to] = payload;
        } else {
            payloads_out[to] = payloads[at];
        }
    }
}

/// The result of [`sort_rows`]: the sorted keys (order-preserving u32, see
/// [`values_of_keys`]) and their payloads, both `rows * len` u32.
pub(crate) struct Sorted {
    pub keys: Handle,
    pub payloads: Handle,
}

/// Sorts every row of `values` (`rows * len` f32, row-major) in descending order, stably. The
/// payloads are the pixel indices (`< len`), with [`LABEL_BIT`] set where `labels` (the same
/// layout, f32) is 1.
///
/// The caller checks the lengths ([`super::limits::check_lengths`]).
pub(crate) fn sort_rows(
    client: &Client,
    values: Handle,
    labels: Option<Handle>,
    rows: usize,
    len: usize,
) -> Sorted {
    let count = rows * len;
    let bytes = count.max(1) * size_of::<u32>();
    if count == 0 {
        // Nothing to sort (and no block to divide the workgroups by).
        return Sorted {
            keys: client.empty(bytes),
            payloads: client.empty(bytes),
        };
    }
    let (mut keys, mut payloads) = (values, client.empty(bytes));
    let (mut keys_next, mut payloads_next) = (client.empty(bytes), client.empty(bytes));
    let labelled = labels.is_some();
    let labels = labels.unwrap_or_else(|| keys.clone());
    let unit_dim = CubeDim::new_1d(UNITS);
    let blocks = len.div_ceil(BLOCK);
    let tiles = Grid::of(rows * blocks);
    let counts_len = rows * DIGITS as usize * blocks;
    for pass in 0..(32 / DIGIT_BITS) {
        let (shift, first) = (pass * DIGIT_BITS, pass == 0);
        let counts = client.empty(counts_len * size_of::<u32>());
        // SAFETY: every buffer holds the element count given with it; the kernels index within
        // `rows * len` and `counts_len` (their `active` checks skip the workgroups past the
        // last block), and the offsets place every element of a row within the row.
        unsafe {
            digit_counts::launch_unchecked(
                client,
                tiles.count(),
                unit_dim,
                BufferArg::from_raw_parts(keys.clone(), count),
                BufferArg::from_raw_parts(counts.clone(), counts_len),
                len,
                blocks,
                rows,
                shift,
                first,
            );
        }
        let offsets = scan_rows::<u32>(client, counts, rows, DIGITS as usize * blocks, false);
        // SAFETY: as above.
        unsafe {
            scatter::launch_unchecked(
                client,
                tiles.count(),
                unit_dim,
                BufferArg::from_raw_parts(keys.clone(), count),
                BufferArg::from_raw_parts(payloads.clone(), count),
                BufferArg::from_raw_parts(labels.clone(), count),
                BufferArg::from_raw_parts(offsets, counts_len),
                BufferArg::from_raw_parts(keys_next.clone(), count),
                BufferArg::from_raw_parts(payloads_next.clone(), count),
                len,
                blocks,
                rows,
                shift,
                first,
                labelled,
            );
        }
        if first {
            // The input is read once: the next passes ping-pong between two fresh buffers.
            keys = client.empty(bytes);
        }
        std::mem::swap(&mut keys, &mut keys_next);
        std::mem::swap(&mut payloads, &mut payloads_next);
    }
    Sorted { keys, payloads }
}

/// The f32 values of `count` sorted keys.
pub(crate) fn values_of(client: &Client, keys: Handle, count: usize) -> Handle {
    let values = client.empty(count.max(1) * size_of::<f32>());
    // SAFETY: both buffers hold `count` elements; the kernel checks `i < count`.
    unsafe {
        values_of_keys::launch_unchecked(
            client,
            Grid::of(count.div_ceil(UNITS as usize)).count(),
            CubeDim::new_1d(UNITS),
            BufferArg::from_raw_parts(keys, count),
            BufferArg::from_raw_parts(values.clone(), count),
            count,
        );
    }
    values
}
