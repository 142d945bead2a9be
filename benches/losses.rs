//! Throughput of every loss, forward only and forward+backward, per backend and shape, in
//! elements (pixels) per second.
//!
//! ```text
//! cargo bench --bench losses                                   # ndarray, flex
//! cargo bench --all-features --bench losses                    # + wgpu
//! cargo bench --bench losses -- 'soft_dice/fwd_bwd/16x1x512x512'  # a criterion filter
//! SEGLOSS_BENCH_BACKENDS=flex,wgpu cargo bench --all-features --bench losses
//! ```
//!
//! Benchmark ids read `loss/mode/shape/backend`, where the backend runs the default
//! `Execution::Auto` (host kernels on flex and ndarray, burn operations on wgpu); on
//! [16,1,512,512], `flex-device` and `ndarray-device` also measure the burn-operations path on
//! the CPU backends (`Execution::Device`), the speed without the host kernels. Every timed
//! iteration ends with
//! `device.sync()`, so asynchronous (GPU) work is counted in full. Inputs are created once,
//! outside the clock; the loss gets clones (shared storage, as in a training loop where the
//! caller keeps its tensors).

mod support;

use burn::tensor::{Device, Tensor};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use segloss::Execution;
use support::*;

/// The measured variants on one shape: `(id, device, execution path)`.
fn variants(
    backends: &[(&'static str, Device)],
    with_device_path: bool,
) -> Vec<(String, Device, Execution)> {
    let mut out = Vec::new();
    for (backend, device) in backends {
        out.push((backend.to_string(), device.clone(), Execution::Auto));
        if with_device_path && *backend != "wgpu" {
            out.push((
                format!("{backend}-device"),
                device.clone(),
                Execution::Device,
            ));
        }
    }
    out
}

fn bench_shape<const D: usize>(
    c: &mut Criterion,
    shape: [usize; D],
    backends: &[(&'static str, Device)],
) {
    let elements: usize = shape.iter().product();
    let shape_id = shape_name(&shape);
    let variants = variants(backends, shape_id == shape_name(&SHAPES_2D[1]));
    for loss in LOSSES {
        let mut group = c.benchmark_group(format!("{loss}/fwd/{shape_id}"));
        configure(&mut group, elements);
        for (id, device, execution) in &variants {
            let (x, y) = inputs(shape, device);
            let y = targets_of(loss, y);
            group.bench_function(id.as_str(), |b| {
                b.iter(|| forward(loss, *execution, &x, &y))
            });
        }
        group.finish();

        let mut group = c.benchmark_group(format!("{loss}/fwd_bwd/{shape_id}"));
        configure(&mut group, elements);
        for (id, device, execution) in &variants {
            let (x, y) = inputs(shape, &device.clone().autodiff());
            let (x, y): (Tensor<D>, _) = (x.require_grad(), targets_of(loss, y));
            group.bench_function(id.as_str(), |b| {
                b.iter(|| forward_backward(loss, *execution, &x, &y))
            });
        }
        group.finish();
    }
}

/// The machine's memory copy bandwidth, the yardstick for the memory-bound losses: a copy of
/// a 256 MB f32 buffer (far larger than any cache), split over all threads like the host
/// kernels, counted as the bytes read plus the bytes written.
fn copy_bandwidth(c: &mut Criterion) {
    let elements: usize = 1 << 26;
    let source: Vec<f32> = (0..elements).map(|i| i as f32).collect();
    let mut target = vec![0.0_f32; elements];
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut group = c.benchmark_group("memory/copy");
    configure(&mut group, 0);
    group.throughput(Throughput::Bytes((2 * elements * size_of::<f32>()) as u64));
    group.bench_function("256MB", |b| {
        b.iter(|| {
            let per = elements.div_ceil(threads);
            std::thread::scope(|s| {
                for (dst, src) in target.chunks_mut(per).zip(source.chunks(per)) {
                    s.spawn(move || dst.copy_from_slice(src));
                }
            });
        })
    });
    group.finish();
}

/// The multiclass losses with their defaults (softmax, class-index targets) on one shape.
/// Throughput counts logits (pixels x classes). On the first shape, `flex-device` and
/// `ndarray-device` also measure the burn-operations path (`Execution::Device`).
fn multiclass<const D: usize>(
    c: &mut Criterion,
    shape: [usize; D],
    backends: &[(&'static str, Device)],
    with_device_path: bool,
) {
    let elements: usize = shape.iter().product();
    let id = shape_name(&shape);
    let variants = variants(backends, with_device_path);
    for loss in MULTICLASS_LOSSES {
        for (mode, autodiff) in [("fwd", false), ("fwd_bwd", true)] {
            let mut group = c.benchmark_group(format!("{loss}/{mode}/{id}"));
            configure(&mut group, elements);
            for (variant, device, execution) in &variants {
                let device = if autodiff {
                    device.clone().autodiff()
                } else {
                    device.clone()
                };
                let (x, y) = multiclass_inputs(shape, &device);
                let x = if autodiff { x.require_grad() } else { x };
                let y = class_targets_of(loss, y);
                group.bench_function(variant.as_str(), |b| {
                    b.iter(|| multiclass_step(loss, *execution, &x, &y, autodiff))
                });
            }
            group.finish();
        }
    }
}

fn losses(c: &mut Criterion) {
    copy_bandwidth(c);
    let backends = backends();
    for shape in SHAPES_2D {
        bench_shape(c, shape, &backends);
    }
    bench_shape(c, SHAPE_3D, &backends);
    multiclass(c, MULTICLASS_2D, &backends, true);
    multiclass(c, MULTICLASS_3D, &backends, false);
    multiclass(c, MULTICLASS_MANY, &backends, false);
}

criterion_group!(benches, losses);
criterion_main!(benches);
