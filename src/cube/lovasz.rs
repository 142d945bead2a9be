//! The Lovász-Jaccard weights of sorted rows on a CubeCL device: what
//! `lovasz_grad` (Berman et al. 2018, Alg. 1) gives each pixel, written at the pixel's own
//! position.
//!
//! The input is the payloads of [`super::radix_sort::sort_rows`] with labels: in sorted
//! order, each pixel's index with its label in the top bit. Two passes of the row scan
//! ([`super::scan::block_offsets`], counting the label bits) give every block its count of
//! foreground pixels before it and every row its total `G`; then [`jaccard_weights`] walks
//! each block once more with the running count. At sorted position `k` (0-based), with `f_k`
//! foreground pixels among the first `k + 1`, the intersection and union counts are
//! `I_k = G - f_k` and `U_k = G + (k + 1) - f_k`, `J_k = 1 - I_k / U_k`, and the weight
//! `J_k - J_(k-1)` is computed as one fraction of the integer counts, never as that
//! difference:
//!
//! - position 0: `J_0 = (U_0 - I_0) / U_0` (`U_k - I_k = k + 1 >= 1`, so `G = 0` is covered:
//!   every later background weight is then `0 / ...`);
//! - a foreground pixel (`I_k = I_(k-1) - 1`, `U_k = U_(k-1)`): `1 / U_k`;
//! - a background pixel (`I_k = I_(k-1)`, `U_k = U_(k-1) + 1`): `I_k / (U_(k-1) U_k)`,
//!   computed as `(I_k / U_(k-1)) / U_k` (no product to overflow; `U_(k-1) >= 1` for `k >= 1`).
//!
//! Each weight is so within a few f32 roundings of its own value. The difference of two
//! `J`s near 1 is not: with `G` around 10^6 the late weights (about `1 / (4G)`) fall below
//! f32's spacing near 1 (`6e-8`). The weights are written to `weights[row][index]`, so the
//! gather, the scan, the weights and the scatter back are three kernels in all.

use burn_cubecl::cubecl;
use cubecl::client::Client;
use cubecl::prelude::*;
use cubecl::server::Handle;

use super::block::{BLOCK, UNITS};
use super::launch::Grid;
use super::radix_sort::LABEL_BIT;
use super::scan::{block_offsets, block_run};

/// The weight of the `position`-th sorted pixel (1-based: `position = k + 1`), `foreground`
/// (`f_k`) of the first `position` being labelled, the pixel itself if `labelled` (1), in a row
/// with `total` (`G`) labelled pixels: see the module's docs.
#[cube]
fn jaccard_weight(total: u32, foreground: u32, position: u32, labelled: u32) -> f32 {
    // No overflow in u32: G and k + 1 are at most 2^31 - 1 (checked before the launch).
    let intersection = total - foreground;
    let union = total + (position - foreground);
    if position == 1 {
        f32::cast_from(union - intersection) / f32::cast_from(union)
    } else if labelled == 1 {
        1.0 / f32::cast_from(union)
    } else {
        f32::cast_from(intersection) / f32::cast_from(union - 1) / f32::cast_from(union)
    }
}

/// Pass 3: the weights of every block, from its offset (the labelled pixels before it).
#[cube(launch_unchecked)]
fn jaccard_weights(
    payloads: &[u32],
    offsets: &[u32],
    row_totals: &[u32],
    weights: &mut [f32],
    len: usize,
    blocks: usize,
    rows: usize,
) {
    let run = block_run::<u32>(payloads, len, blocks, rows, true);
    if run.active {
        let row = run.row;
        let labelled = row_totals[row];
        let mut foreground = offsets[row * blocks + run.block] + run.before;
        for i in run.start..run.end {
            let payload = payloads[row * len + i];
            let label = payload >> 31;
            foreground += label;
            weights[row * len + (payload & !LABEL_BIT) as usize] =
                jaccard_weight(labelled, foreground, i as u32 + 1, label);
        }
    }
}

/// The weights (`rows * len` f32, at the pixels' positions) of sorted labelled payloads.
pub(crate) fn weights_of_sorted(
    client: &Client,
    payloads: Handle,
    rows: usize,
    len: usize,
) -> Handle {
    let count = rows * len;
    let weights = client.empty(count.max(1) * size_of::<f32>());
    if count == 0 {
        return weights;
    }
    let blocks = len.div_ceil(BLOCK);
    let (offsets, row_totals) = block_offsets::<u32>(client, &payloads, rows, len, true);
    // SAFETY: the buffers hold `rows * len`, `rows * blocks` and `rows` elements; the kernel
    // indexes below those, and every payload's index is below `len`.
    unsafe {
        jaccard_weights::launch_unchecked(
            client,
            Grid::of(rows * blocks).count(),
            CubeDim::new_1d(UNITS),
            BufferArg::from_raw_parts(payloads, count),
            BufferArg::from_raw_parts(offsets, rows * blocks),
            BufferArg::from_raw_parts(row_totals, rows),
            BufferArg::from_raw_parts(weights.clone(), count),
            len,
            blocks,
            rows,
        );
    }
    weights
}
