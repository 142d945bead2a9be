//! The distance metrics against scipy and MONAI (`benches/surface_reference.py` times the
//! Python side on the same inputs):
//!
//! ```text
//! cargo bench --bench surface
//! ~/venv-ref/bin/python benches/surface_reference.py --threads 2
//! ```
//!
//! - `edt_256cubed`: [`distance_transform`] of a 256^3 grid whose sites are two balls
//!   (radius 60 at (128,128,128) and radius 40 at (60,70,80)): scipy's
//!   `distance_transform_edt(~sites)`.
//! - `edt_2048sq`: the same on a 2048^2 image (discs of radius 500 at (1024,1024) and 300 at
//!   (500,600)).
//! - `hd95_160cubed`: `SurfaceDistances::from_masks` + `hausdorff(95, MaxOfDirected)` on a pair
//!   of `[1,1,160,160,160]` flex masks (balls of radius 50 at (80,80,80) and 45 at
//!   (85,78,80)), from the device tensors to the number: MONAI's
//!   `compute_hausdorff_distance(percentile=95)` on the same masks.
//! - `nsd_160cubed`: the same with `nsd(1.0)`: MONAI's `compute_surface_dice`.
//! - `hd95_160cubed_stray`: `hd95_160cubed` with a stray blob in the prediction (a ball of
//!   radius 3 at (12,12,12), far from the target): the crop grows and a few distances are
//!   long.
//! - `hd95_160cubed_apart`: balls of radius 30 at (50,50,50) and (110,110,110): every distance
//!   is long (44 to 164 voxels), the worst case of the banded distances.
//!
//! Threads: rayon's pool (`RAYON_NUM_THREADS`, by default every core).

use std::time::Duration;

use burn::tensor::{Bool, Device, Tensor, TensorData};
use criterion::{Criterion, criterion_group, criterion_main};
use segloss::metrics::surface::{
    HausdorffMode, SurfaceConfig, SurfaceDistances, distance_transform,
};

/// Voxels within `radius` of any of the `(centre, radius)` balls, in a grid of `shape`.
fn balls(shape: &[usize], balls: &[(&[f64], f64)]) -> Vec<bool> {
    let len: usize = shape.iter().product();
    let mut coords = vec![0usize; shape.len()];
    (0..len)
        .map(|mut i| {
            for a in (0..shape.len()).rev() {
                coords[a] = i % shape[a];
                i /= shape[a];
            }
            balls.iter().any(|(centre, r)| {
                let d2: f64 = coords
                    .iter()
                    .zip(centre.iter())
                    .map(|(&c, &m)| (c as f64 - m).powi(2))
                    .sum();
                d2 <= r * r
            })
        })
        .collect()
}

fn surface(c: &mut Criterion) {
    let mut group = c.benchmark_group("surface");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

    let cube = [256, 256, 256];
    let sites = balls(
        &cube,
        &[(&[128.0, 128.0, 128.0], 60.0), (&[60.0, 70.0, 80.0], 40.0)],
    );
    group.bench_function("edt_256cubed", |b| {
        b.iter(|| distance_transform(&sites, &cube, None).unwrap())
    });
    let square = [2048, 2048];
    let sites = balls(
        &square,
        &[(&[1024.0, 1024.0], 500.0), (&[500.0, 600.0], 300.0)],
    );
    group.bench_function("edt_2048sq", |b| {
        b.iter(|| distance_transform(&sites, &square, None).unwrap())
    });
    drop(sites);

    let device = Device::flex();
    let shape = [160, 160, 160];
    let volume2 = |objects: &[(&[f64], f64)]| {
        let m = balls(&shape, objects);
        Tensor::<5, Bool>::from_data(TensorData::new(m, [1, 1, 160, 160, 160]), &device)
    };
    let volume = |centre: &[f64], r: f64| volume2(&[(centre, r)]);
    let pred = volume(&[80.0, 80.0, 80.0], 50.0);
    let target = volume(&[85.0, 78.0, 80.0], 45.0);
    let config = SurfaceConfig::new();
    let hd95 = |pred: &Tensor<5, Bool>, target: &Tensor<5, Bool>| {
        SurfaceDistances::from_masks(pred.clone(), target.clone(), &config)
            .unwrap()
            .hausdorff(95.0, HausdorffMode::MaxOfDirected)
    };
    group.bench_function("hd95_160cubed", |b| b.iter(|| hd95(&pred, &target)));
    group.bench_function("nsd_160cubed", |b| {
        b.iter(|| {
            SurfaceDistances::from_masks(pred.clone(), target.clone(), &config)
                .unwrap()
                .nsd(1.0)
        })
    });
    let stray = volume2(&[(&[80.0, 80.0, 80.0], 50.0), (&[12.0, 12.0, 12.0], 3.0)]);
    group.bench_function("hd95_160cubed_stray", |b| b.iter(|| hd95(&stray, &target)));
    let (a, b_) = (
        volume(&[50.0, 50.0, 50.0], 30.0),
        volume(&[110.0, 110.0, 110.0], 30.0),
    );
    group.bench_function("hd95_160cubed_apart", |b| b.iter(|| hd95(&a, &b_)));
    group.finish();
}

criterion_group!(benches, surface);
criterion_main!(benches);
