//! Memory a loss keeps after it returns: the resident set of this process after a large Lovász
//! call, against before it. One test in its own binary, so that no other test allocates or
//! frees while it measures.
#![cfg(all(feature = "flex", target_os = "linux"))]

use burn::tensor::{Device, Tensor, TensorData};
use segloss::Execution;
use segloss::losses::{LovaszHingeConfig, lovasz_hinge};

/// This process's resident set, in bytes (`VmRSS` of `/proc/self/status`, in kB).
fn resident_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("a VmRSS line");
    let kb: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in kB");
    kb * 1024
}

/// Fixes glibc's mmap and trim thresholds at their defaults (128 KiB): set, they no longer
/// rise with the size of freed blocks, so every freed block of 128 KiB or more goes back to
/// the system.
#[cfg(target_env = "gnu")]
fn fix_allocator_thresholds() {
    for option in [libc::M_MMAP_THRESHOLD, libc::M_TRIM_THRESHOLD] {
        // SAFETY: `mallopt` takes the allocator's own locks; it only sets a threshold.
        let set = unsafe { libc::mallopt(option, 128 * 1024) };
        assert_eq!(set, 1, "mallopt({option}) failed");
    }
}

/// Other C libraries: their own thresholds serve.
#[cfg(not(target_env = "gnu"))]
fn fix_allocator_thresholds() {}

/// Value and gradient of Lovász hinge on the host path, on `shape` `[N, 1, H, W]`: distinct
/// logits (a fixed sequence) and half the labels set. Everything it makes is dropped on return.
fn lovasz_call(shape: [usize; 4]) -> f64 {
    let len: usize = shape.iter().product();
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let x: Vec<f32> = (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 8.0 - 4.0
        })
        .collect();
    let y: Vec<f32> = (0..len).map(|i| (i % 2) as f32).collect();
    let device = Device::flex().autodiff();
    let x = Tensor::<4>::from_data(TensorData::new(x, shape), &device).require_grad();
    let y = Tensor::<4>::from_data(TensorData::new(y, shape), &device);
    let config = LovaszHingeConfig::new().with_execution(Execution::Host);
    let loss = lovasz_hinge(x.clone(), y, &config).unwrap();
    let grads = loss.backward();
    let grad = x.grad(&grads).unwrap();
    let value: Vec<f32> = loss.into_data().try_to_vec::<f32>().unwrap();
    let grad: Vec<f32> = grad.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(grad.len(), len);
    f64::from(value[0])
}

/// A Lovász call on two images of 2^20 pixels leaves at most 8 MiB resident behind it.
///
/// Kept between calls, the working buffers of one such problem are at least 16.5 MiB per
/// thread that solved one (errors and derivatives, 4 bytes a pixel each; the sort's buffer, 8;
/// its split tables, 512 KiB): at least 16.5 MiB with one thread, 33 MiB with two. The bound
/// is half of the one-thread figure, so a scratch kept on any one thread fails the test, and
/// leaves room for what the allocator and burn keep of the call's freed memory (glibc's
/// thresholds are fixed first, [`fix_allocator_thresholds`]).
#[test]
fn a_large_lovasz_call_leaves_no_buffers_behind() {
    fix_allocator_thresholds();
    // The thread pools, burn's device and every lazily made table exist before the
    // measurement (a small call keeps its small buffers, as every call may).
    assert!(lovasz_call([2, 1, 64, 64]).is_finite());
    let before = resident_bytes();
    assert!(lovasz_call([2, 1, 1024, 1024]).is_finite());
    let after = resident_bytes();
    let growth = after.saturating_sub(before);
    assert!(
        growth <= 8 << 20,
        "resident memory grew by {:.1} MiB over the call ({:.1} -> {:.1} MiB)",
        growth as f64 / (1 << 20) as f64,
        before as f64 / (1 << 20) as f64,
        after as f64 / (1 << 20) as f64,
    );
}
