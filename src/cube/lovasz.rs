//! The Lovász-Jaccard weights of sorted rows on a CubeCL device: what
//! `lovasz_grad` (Berman et al. 2018, Alg. 1) gives each pixel, written at the pixel's own
//! position.
//!
//! The input is the payloads of [`super::radix_sort::sort_rows`] with labels: in sorted
//! order, each pixel's index with its label in the top bit. Two passes of the row scan
//! ([`super::scan::block_offsets`], counting the label bits) give every block its count of
//! foreground pixels before it and every row its total `G`; then [`jaccard_weights`] walks
//! each block once more with the running count: at sorted position `k` (0-based) with
//! `f_k` foreground pixels among the first `k + 1`,
//!
//! `J_k = 1 - (G - f_k) / (G + (k + 1 - f_k))`, weight `J_k - J_(k-1)` (`J_(-1) = 0`),
//!
//! computed in f32 from exact integer counts, and written to `weights[row][index]`. So the
//! gather, the scan, the Jaccard increments and the scatter back are three kernels in all.

use burn_cubecl::cubecl;
use cubecl::client::Client;
use cubecl::prelude::*;
use cubecl::server::Handle;

use super::block::{BLOCK, UNITS};
use super::launch::Grid;
use super::radix_sort::LABEL_BIT;
use super::scan::{block_offsets, block_run};

/// `J_k` of the first `position` sorted pixels of which `foreground` are labelled, in a row
/// with `total` labelled pixels; `J` of no pixel is 0.
#[cube]
fn jaccard(total: u32, foreground: u32, position: u32) -> f32 {
    let mut out = 0.0f32;
    if position > 0 {
        let background = position - foreground;
        out = 1.0 - f32::cast_from(total - foreground) / f32::cast_from(total + background);
    }
    out
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
        let mut previous = jaccard(labelled, foreground, run.start as u32);
        for i in run.start..run.end {
            let payload = payloads[row * len + i];
            foreground += payload >> 31;
            let current = jaccard(labelled, foreground, i as u32 + 1);
            weights[row * len + (payload & !LABEL_BIT) as usize] = current - previous;
            previous = current;
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
