//! Backend parity: the same inputs give the same values and gradients on every enabled backend
//! (ndarray, flex, and wgpu with the `wgpu` feature), with and without autodiff.

mod common;

use burn::tensor::DType;
use common::*;
use segloss::Reduction;
use serde_json::json;

#[test]
fn backends_and_autodiff_agree() {
    const SHAPE: [usize; 4] = [3, 1, 16, 12];
    let n: usize = SHAPE.iter().product();
    let mut rng = TestRng::new(3);
    let x: Vec<f64> = (0..n).map(|_| rng.range(-4.0, 4.0)).collect();
    let y = rng.mask(n, 0.3);
    let option_sets = [
        json!({}),
        json!({"aggregation": "batch", "squared": true}),
        json!({"per_image": false}),
        json!({"prior": 0.25}),
    ];
    let devices = all_devices();
    for loss in ALL_LOSSES {
        for options in &option_sets {
            let mut reference: Option<(Vec<f64>, Vec<f64>)> = None;
            for (backend, device) in &devices {
                let plain = to_vec(
                    run_loss(
                        loss,
                        options,
                        Reduction::None,
                        tensor(&x, SHAPE, device, DType::F32),
                        tensor(&y, SHAPE, device, DType::F32),
                    )
                    .unwrap(),
                );
                let ad = device.clone().autodiff();
                let tracked = to_vec(
                    run_loss(
                        loss,
                        options,
                        Reduction::None,
                        tensor(&x, SHAPE, &ad, DType::F32),
                        tensor(&y, SHAPE, &ad, DType::F32),
                    )
                    .unwrap(),
                );
                let what = format!("{backend} {loss} {options}");
                assert_close(
                    &tracked,
                    &plain,
                    1e-6,
                    1e-6,
                    &format!("{what}: autodiff vs plain"),
                );
                let (_, grad) = value_and_grad(loss, options, &x, &y, SHAPE, device, DType::F32);
                match &reference {
                    None => reference = Some((plain, grad)),
                    Some((v, g)) => {
                        let tol = parity_tolerance(backend);
                        assert_close(
                            &plain,
                            v,
                            tol,
                            1e-6,
                            &format!("{what}: value vs {}", devices[0].0),
                        );
                        assert_close(
                            &grad,
                            g,
                            tol,
                            0.0,
                            &format!("{what}: gradient vs {}", devices[0].0),
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn targets_on_the_plain_device_combine_with_autodiff_logits() {
    for (backend, device) in all_devices() {
        let x = tensor(
            &[0.5, -1.0, 2.0, 0.0],
            [1, 4],
            &device.clone().autodiff(),
            DType::F32,
        )
        .require_grad();
        let y = tensor(&[1.0, 0.0, 1.0, 0.0], [1, 4], &device, DType::F32);
        for loss in ALL_LOSSES {
            let l = run_loss(loss, &json!({}), Reduction::Mean, x.clone(), y.clone())
                .unwrap_or_else(|e| panic!("{backend} {loss}: {e}"));
            let grads = l.backward();
            assert!(x.grad(&grads).is_some(), "{backend} {loss}: no gradient");
        }
    }
}

#[test]
fn f64_targets_combine_with_f32_logits() {
    // wgpu has no f64 tensors to begin with.
    for (backend, device) in cpu_devices() {
        let x = tensor(&[0.5, -1.0, 2.0, 0.0], [1, 4], &device, DType::F32);
        let y = tensor(&[1.0, 0.0, 1.0, 0.0], [1, 4], &device, DType::F64);
        for loss in ALL_LOSSES {
            let l = run_loss(loss, &json!({}), Reduction::Mean, x.clone(), y.clone());
            assert!(l.is_ok(), "{backend} {loss}: {l:?}");
        }
    }
}

#[test]
fn lovasz_ties_are_broken_by_ascending_pixel_index_on_every_backend() {
    // All logits 0: every hinge error is 1, a complete tie. Sorted by pixel index the labels
    // read [1, 0, 1, 0], so lovasz_grad = [1/2, 1/6, 1/3, 0] and d loss / d x_i = -s_i w_i.
    let expected = [-0.5, 1.0 / 6.0, -1.0 / 3.0, 0.0];
    for (backend, device) in all_devices() {
        let dtype = *float_dtypes(&device).last().unwrap();
        let (value, grad) = value_and_grad(
            "lovasz_hinge",
            &json!({}),
            &[0.0; 4],
            &[1.0, 0.0, 1.0, 0.0],
            [1, 4],
            &device,
            dtype,
        );
        // Exact in f64; f32 (wgpu has no f64) rounds 1/6 and 1/3.
        let tol = if dtype == DType::F64 { 1e-12 } else { 1e-6 };
        assert!((value - 1.0).abs() < tol, "{backend}: {value}");
        assert_close(
            &grad,
            &expected,
            tol,
            1.0,
            &format!("{backend} tie-break gradient"),
        );
    }
}
