//! Peak resident memory (RSS) of one forward+backward pass per loss on [16,1,512,512] (the
//! multiclass losses on [8,4,256,256] with i64 class indices), on the CPU backends. Linux
//! only (reads `/proc/self/status`).
//!
//! ```text
//! cargo bench --bench peak_memory
//! ```
//!
//! Each (loss, backend) runs in a fresh child process of this binary, so allocator caches and
//! earlier runs do not blur the numbers. The child records its RSS after initialising the
//! backend (the baseline), creates the inputs, runs forward+backward twice (the second pass
//! sees warm pools, as in training) and reports its peak RSS (`VmHWM`). The table gives the
//! peak above the baseline, which includes the inputs themselves, in MB and as a multiple of
//! the input bytes (binary: logits + targets, f32; multiclass: logits + indices + the
//! gradient, the least any forward+backward must hold). wgpu is left out: its buffers live in device
//! memory, which RSS does not measure.

mod support;

use std::process::Command;

use burn::tensor::{Device, Tensor};
use segloss::Execution;
use support::*;

const SHAPE: [usize; 4] = [16, 1, 512, 512];
const CHILD_FLAG: &str = "--peak-memory-child";

/// A line of `/proc/self/status` in bytes (`VmRSS`, `VmHWM`, ...).
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} missing from /proc/self/status"));
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("a number of kB");
    kb * 1024
}

fn child(loss: &str, backend: &str) {
    let device: Device = support::backend(backend)
        .expect("a backend of this build")
        .autodiff();
    // Initialise the backend (thread pools, allocators) before the baseline.
    let _ = Tensor::<1>::ones([16], &device).sum().into_data();
    let baseline = status_bytes("VmRSS:");
    if MULTICLASS_LOSSES.contains(&loss) {
        let (x, y) = multiclass_inputs(MULTICLASS_2D, &device);
        let (x, y) = (x.require_grad(), class_targets_of(loss, y));
        for _ in 0..2 {
            multiclass_step(loss, Execution::Auto, &x, &y, true);
        }
    } else {
        let (x, y) = inputs(SHAPE, &device);
        let (x, y) = (x.require_grad(), targets_of(loss, y));
        for _ in 0..2 {
            drop(forward_backward(loss, Execution::Auto, &x, &y));
        }
    }
    println!("{} {}", baseline, status_bytes("VmHWM:"));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == CHILD_FLAG) {
        child(&args[at + 1], &args[at + 2]);
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let mb = |b: u64| b as f64 / 1e6;
    let elements: usize = SHAPE.iter().product();
    let binary_bytes = 2 * elements * size_of::<f32>();
    let logits: usize = MULTICLASS_2D.iter().product();
    let pixels = logits / MULTICLASS_2D[1];
    let multiclass_bytes = 2 * logits * size_of::<f32>() + pixels * size_of::<i64>();
    for (losses, shape, input_bytes, inputs) in [
        (
            &LOSSES[..],
            shape_name(&SHAPE),
            binary_bytes,
            "logits + targets",
        ),
        (
            &MULTICLASS_LOSSES[..],
            shape_name(&MULTICLASS_2D),
            multiclass_bytes,
            "logits + i64 indices + gradient",
        ),
    ] {
        println!(
            "peak RSS above baseline, forward+backward on {shape} ({inputs}: {:.1} MB)",
            mb(input_bytes as u64)
        );
        println!("| loss | backend | peak above baseline (MB) | x input bytes |");
        println!("|---|---|---:|---:|");
        for loss in losses {
            for backend in ["flex", "ndarray"] {
                if support::backend(backend).is_none() {
                    continue;
                }
                let out = Command::new(&exe)
                    .args([CHILD_FLAG, loss, backend])
                    .output()
                    .expect("child process");
                assert!(out.status.success(), "{loss} on {backend}: {out:?}");
                let text = String::from_utf8_lossy(&out.stdout);
                let numbers: Vec<u64> = text
                    .split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect();
                let above = numbers[1].saturating_sub(numbers[0]);
                println!(
                    "| {loss} | {backend} | {:.1} | {:.2} |",
                    mb(above),
                    above as f64 / input_bytes as f64
                );
            }
        }
        println!();
    }
}
