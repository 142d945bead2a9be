//! The cube row operations (`segloss::cube`) on wgpu, in elements per second:
//!
//! ```text
//! cargo bench --features wgpu --bench cube_sort
//! ```
//!
//! - `cube_sort/{R}x{P}/radix`: [`sort_rows_descending`] of `R` rows of `P` random f32 keys
//!   (eight passes of the radix sort);
//! - `cube_sort/{R}x{P}/burn`: burn's `sort_descending_with_indices` on the same device, which
//!   reads the tensor to the host, sorts there and uploads the result (burn 0.22.1);
//! - `cube_cumsum/{R}x{P}/scan`: [`cumsum_rows`] of 0/1 integers (burn's own cube `cumsum` is
//!   `O(P^2)` per row: seconds per call at these sizes, so it is not run).
//!
//! Every timed iteration ends with `device.sync()`, so the device work is counted in full.

mod support;

use burn::tensor::{Device, Tensor, TensorData};
use criterion::{Criterion, criterion_group, criterion_main};
use segloss::cube::{cumsum_rows, sort_rows_descending};

/// `(rows, len)`: the errors of `[16,1,512,512]` per image, the same as one problem, and 64
/// rows of 256 x 256 (a `[16,4,256,256]` Lovász-softmax batch).
const SHAPES: [(usize, usize); 3] = [(16, 512 * 512), (1, 16 * 512 * 512), (64, 256 * 256)];

fn cube_rows(c: &mut Criterion) {
    let Some((_, device)) = support::backends()
        .into_iter()
        .find(|(name, _)| *name == "wgpu")
    else {
        eprintln!("SKIPPED cube_sort benchmarks: no wgpu device (set SEGLOSS_BENCH_BACKENDS=wgpu)");
        return;
    };
    for (rows, len) in SHAPES {
        let count = rows * len;
        // A fixed pseudo-random sequence (Weyl), so every run sorts the same keys.
        let keys: Vec<f32> = (0..count)
            .map(|i| ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f32 / 16_777_216.0)
            .collect();
        let keys = Tensor::<2>::from_data(TensorData::new(keys, [rows, len]), &device);
        let labels = keys.clone().greater_elem(0.5).int();
        let mut group = c.benchmark_group(format!("cube_sort/{rows}x{len}"));
        support::configure(&mut group, count);
        group.bench_function("radix", |b| {
            b.iter(|| {
                let (sorted, indices) = sort_rows_descending(keys.clone()).unwrap();
                sync(&device, (sorted, indices));
            })
        });
        group.bench_function("burn", |b| {
            b.iter(|| {
                let (sorted, indices) = keys.clone().sort_descending_with_indices(1);
                sync(&device, (sorted, indices));
            })
        });
        group.finish();
        let mut group = c.benchmark_group(format!("cube_cumsum/{rows}x{len}"));
        support::configure(&mut group, count);
        group.bench_function("scan", |b| {
            b.iter(|| sync(&device, cumsum_rows(labels.clone()).unwrap()))
        });
        group.finish();
    }
}

/// Waits for the device to finish `outputs` (kept alive until then).
fn sync<T>(device: &Device, outputs: T) {
    device.sync().expect("the device finished its work");
    drop(outputs);
}

criterion_group!(benches, cube_rows);
criterion_main!(benches);
