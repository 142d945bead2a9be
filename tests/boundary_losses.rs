//! The boundary losses and their distance maps against the fixtures of
//! `tests/reference/surface.json` (`tests/reference/generate_surface.py`: scipy, MONAI's
//! `HausdorffDTLoss`, Kervadec et al.'s `one_hot2dist` and `SurfaceLoss`), on every backend,
//! with and without autodiff; composition with the compound losses; options and errors.

mod common;

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use common::{all_devices, assert_close, cpu_devices, floats, tensor, to_vec};
use segloss::SegLossError;
use segloss::losses::*;
use segloss::metrics::surface::distance_transform;
use serde_json::Value;

fn fixtures() -> Value {
    serde_json::from_str(include_str!("reference/surface.json")).unwrap()
}

fn shape(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
}

fn bools(v: &Value) -> Vec<bool> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap() != 0)
        .collect()
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

/// Runs `f` with the rank of `dims` (4 or 5) fixed at compile time.
macro_rules! with_rank {
    ($dims:expr, |$d:ident| $body:expr) => {
        match $dims.len() {
            4 => {
                let $d: [usize; 4] = $dims.clone().try_into().unwrap();
                $body
            }
            5 => {
                let $d: [usize; 5] = $dims.clone().try_into().unwrap();
                $body
            }
            rank => panic!("rank {rank}"),
        }
    };
}

/// Value and gradient with respect to the logits of `loss` at `x`, on `device.autodiff()`.
fn value_and_grad<const D: usize>(
    x: &[f64],
    dims: [usize; D],
    device: &Device,
    dtype: DType,
    loss: impl Fn(Tensor<D>) -> Result<Tensor<1>, SegLossError>,
) -> (f64, Vec<f64>) {
    let ad = device.clone().autodiff();
    let xt = tensor(x, dims, &ad, dtype).require_grad();
    let l = loss(xt.clone()).unwrap();
    let grads = l.backward();
    (to_vec(l)[0], to_vec(xt.grad(&grads).unwrap()))
}

/// f64 to 1e-9 of the float64 reference; f32 everywhere to 1e-4. burn 0.22.1's ndarray
/// computes `sigmoid` of an f64 tensor to f32 accuracy (`sigmoid(0.3)` = 0.5744425058 against
/// 0.5744425168, measured), so the sigmoid losses there are held to 1e-6.
fn tolerance(device_name: &str, dtype: DType) -> f64 {
    match (device_name, dtype) {
        ("ndarray", DType::F64) => 1e-6,
        (_, DType::F64) => 1e-9,
        _ => 1e-4,
    }
}

#[test]
fn distance_transform_matches_scipy() {
    for case in fixtures()["edt_cases"].as_array().unwrap() {
        let grid = shape(&case["shape"]);
        let spacing = floats(&case["spacing"]);
        let ours = distance_transform(&bools(&case["sites"]), &grid, Some(&spacing)).unwrap();
        assert_close(
            &ours,
            &floats(&case["distance"]),
            1e-12,
            1.0,
            &case["name"].to_string(),
        );
    }
}

#[test]
fn signed_distance_map_is_kervadec_one_hot2dist() {
    for (device_name, device) in all_devices() {
        for case in fixtures()["boundary_loss"].as_array().unwrap() {
            let grid = shape(&case["shape"]);
            let spacing = floats(&case["spacing"]);
            let mask: Vec<f64> = bools(&case["mask"])
                .iter()
                .map(|&m| f64::from(u8::from(m)))
                .collect();
            // One image [1, 1, ...grid]; the spacing of the axes after the channel.
            let mut dims = vec![1, 1];
            dims.extend(&grid);
            let map = with_rank!(dims, |d| to_vec(
                signed_distance_map(tensor(&mask, d, &device, DType::F32), Some(&spacing)).unwrap()
            ));
            let expected = floats(&case["kervadec_sdm"]);
            assert_close(
                &map,
                &expected,
                1e-6,
                1.0,
                &format!("{device_name} {}", case["name"]),
            );
        }
    }
}

#[test]
fn binary_boundary_loss_is_the_mean_of_probability_times_map() {
    let fixtures = fixtures();
    for (device_name, device) in cpu_devices() {
        for dtype in [DType::F32, DType::F64] {
            for case in fixtures["boundary_loss"].as_array().unwrap() {
                let grid = shape(&case["shape"]);
                let spacing = floats(&case["spacing"]);
                let mask: Vec<f64> = bools(&case["mask"])
                    .iter()
                    .map(|&m| f64::from(u8::from(m)))
                    .collect();
                let map = floats(&case["kervadec_sdm"]);
                let pixels = mask.len();
                let mut rng = common::TestRng::new(pixels as u64);
                let x: Vec<f64> = (0..pixels).map(|_| rng.range(-3.0, 3.0)).collect();
                let mut dims = vec![1, 1];
                dims.extend(&grid);
                let config = BoundaryConfig::new().with_spacing(Some(spacing.clone()));
                let (value, grad) =
                    with_rank!(dims, |d| value_and_grad(&x, d, &device, dtype, |xt| {
                        boundary_loss(xt, tensor(&mask, d, &device, dtype), &config)
                    }));
                // Closed form from the reference map: mean(sigmoid(x) * phi), gradient
                // phi * p (1 - p) / P.
                let p: Vec<f64> = x.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect();
                let expected = p.iter().zip(&map).map(|(p, m)| p * m).sum::<f64>() / pixels as f64;
                let expected_grad: Vec<f64> = p
                    .iter()
                    .zip(&map)
                    .map(|(p, m)| m * p * (1.0 - p) / pixels as f64)
                    .collect();
                let what = format!("{device_name} {dtype:?} {}", case["name"]);
                let tol = tolerance(device_name, dtype).max(1e-6);
                assert_close(&[value], &[expected], tol, 1.0, &what);
                assert_close(&grad, &expected_grad, tol, 1e-3, &what);
            }
        }
    }
}

#[test]
fn hausdorff_dt_loss_matches_monai() {
    let fixtures = fixtures();
    for (device_name, device) in all_devices() {
        for &dtype in &common::float_dtypes(&device) {
            for case in fixtures["hausdorff_dt_loss"].as_array().unwrap() {
                let dims = shape(&case["shape"]);
                let (x, y) = (floats(&case["logits"]), floats(&case["target"]));
                let config = HausdorffDtConfig::new().with_alpha(case["alpha"].as_f64().unwrap());
                let (value, grad) =
                    with_rank!(dims, |d| value_and_grad(&x, d, &device, dtype, |xt| {
                        hausdorff_dt_loss(xt, tensor(&y, d, &device, dtype), &config)
                    }));
                let what = format!("{device_name} {dtype:?} {}", case["name"]);
                let tol = tolerance(device_name, dtype);
                assert_close(
                    &[value],
                    &[case["loss_exact_f64"].as_f64().unwrap()],
                    tol,
                    1.0,
                    &what,
                );
                assert_close(
                    &grad,
                    &floats(&case["gradient_exact_f64"]),
                    tol,
                    1e-3,
                    &what,
                );
                // MONAI itself (float32 distance fields): 1e-6.
                assert_close(
                    &[value],
                    &[case["loss"].as_f64().unwrap()],
                    tol.max(1e-6),
                    1.0,
                    &what,
                );
                assert_close(
                    &grad,
                    &floats(&case["gradient"]),
                    tol.max(1e-6),
                    1e-3,
                    &what,
                );
            }
        }
    }
}

/// The multiclass fixtures: logits `[N, C, ...]`, class-index targets `[N, 1, ...]`.
fn class_case<const D: usize>(
    case: &Value,
    dims: [usize; D],
    device: &Device,
    dtype: DType,
) -> (Vec<f64>, Tensor<D, Int>) {
    let mut target_dims = dims;
    target_dims[1] = 1;
    let y =
        Tensor::<D, Int>::from_data(TensorData::new(ints(&case["target"]), target_dims), device);
    let _ = dtype;
    (floats(&case["logits"]), y)
}

#[test]
fn multiclass_boundary_losses_match_their_references() {
    let fixtures = fixtures();
    for (device_name, device) in all_devices() {
        for &dtype in &common::float_dtypes(&device) {
            for (list, kind) in [
                ("multiclass_boundary_loss", "boundary"),
                ("multiclass_hausdorff_dt_loss", "hausdorff"),
            ] {
                for case in fixtures[list].as_array().unwrap() {
                    let dims = shape(&case["shape"]);
                    let background = case["include_background"].as_bool().unwrap();
                    let (value, grad) = with_rank!(dims, |d| {
                        let (x, y) = class_case(case, d, &device, dtype);
                        value_and_grad(&x, d, &device, dtype, |xt| match kind {
                            "boundary" => multiclass_boundary_loss(
                                xt,
                                y.clone(),
                                &MulticlassBoundaryConfig::new()
                                    .with_include_background(background)
                                    .with_spacing(Some(floats(&case["spacing"]))),
                            ),
                            _ => multiclass_hausdorff_dt_loss(
                                xt,
                                y.clone(),
                                &MulticlassHausdorffDtConfig::new()
                                    .with_include_background(background)
                                    .with_alpha(case["alpha"].as_f64().unwrap()),
                            ),
                        })
                    });
                    let what = format!(
                        "{device_name} {dtype:?} {list} {} background {background}",
                        case["name"]
                    );
                    let tol = tolerance(device_name, dtype);
                    let exact = |key: &str, fallback: &str| {
                        if case[key].is_null() {
                            case[fallback].clone()
                        } else {
                            case[key].clone()
                        }
                    };
                    assert_close(
                        &[value],
                        &[exact("loss_exact_f64", "loss").as_f64().unwrap()],
                        tol,
                        1.0,
                        &what,
                    );
                    assert_close(
                        &grad,
                        &floats(&exact("gradient_exact_f64", "gradient")),
                        tol,
                        1e-3,
                        &what,
                    );
                }
            }
        }
    }
}

#[test]
fn boundary_terms_compose_with_the_compound_losses() {
    let device = common::f64_device();
    let mut rng = common::TestRng::new(3);
    let (x, y) = rng.logits_and_mask(2 * 16 * 16, 3.0, 0.3);
    let xt = tensor(&x, [2, 1, 16, 16], &device, DType::F64);
    let yt = tensor(&y, [2, 1, 16, 16], &device, DType::F64);
    let value = |t: Tensor<1>| to_vec(t)[0];
    // Kervadec et al.'s recipe: a regional loss plus a small weight on the boundary loss.
    let alpha = 0.01;
    let config = CompoundConfig::new()
        .with_term(1.0, Loss::SoftDice(SoftDiceConfig::new()))
        .with_term(alpha, Loss::Boundary(BoundaryConfig::new()))
        .with_term(0.5, Loss::HausdorffDt(HausdorffDtConfig::new()));
    let total = value(compound(xt.clone(), yt.clone(), &config).unwrap());
    let parts = value(soft_dice(xt.clone(), yt.clone(), &SoftDiceConfig::new()).unwrap())
        + alpha * value(boundary_loss(xt.clone(), yt.clone(), &BoundaryConfig::new()).unwrap())
        + 0.5 * value(hausdorff_dt_loss(xt, yt, &HausdorffDtConfig::new()).unwrap());
    assert!(
        (total - parts).abs() <= 1e-12 * parts.abs().max(1.0),
        "{total} vs {parts}"
    );

    let logits = tensor(
        &(0..2 * 3 * 64)
            .map(|_| rng.range(-2.0, 2.0))
            .collect::<Vec<_>>(),
        [2, 3, 8, 8],
        &device,
        DType::F64,
    );
    let classes: Vec<i64> = (0..2 * 64).map(|i| ((i / 8) % 8 / 3) as i64).collect();
    let targets = Tensor::<4, Int>::from_data(TensorData::new(classes, [2, 1, 8, 8]), &device);
    let config = MulticlassCompoundConfig::new()
        .with_term(
            1.0,
            MulticlassLoss::GeneralizedDice(GeneralizedDiceConfig::new()),
        )
        .with_term(
            alpha,
            MulticlassLoss::Boundary(MulticlassBoundaryConfig::new()),
        )
        .with_term(
            0.5,
            MulticlassLoss::HausdorffDt(MulticlassHausdorffDtConfig::new()),
        );
    let total = value(multiclass_compound(logits.clone(), targets.clone(), &config).unwrap());
    let parts = value(
        generalized_dice(
            logits.clone(),
            targets.clone(),
            &GeneralizedDiceConfig::new(),
        )
        .unwrap(),
    ) + alpha
        * value(
            multiclass_boundary_loss(
                logits.clone(),
                targets.clone(),
                &MulticlassBoundaryConfig::new(),
            )
            .unwrap(),
        )
        + 0.5
            * value(
                multiclass_hausdorff_dt_loss(logits, targets, &MulticlassHausdorffDtConfig::new())
                    .unwrap(),
            );
    assert!(
        (total - parts).abs() <= 1e-12 * parts.abs().max(1.0),
        "{total} vs {parts}"
    );
}

#[test]
fn a_precomputed_map_gives_the_same_loss() {
    let device = common::f64_device();
    let mut rng = common::TestRng::new(9);
    let (x, y) = rng.logits_and_mask(3 * 10 * 12, 3.0, 0.4);
    let xt = tensor(&x, [3, 1, 10, 12], &device, DType::F64);
    let yt = tensor(&y, [3, 1, 10, 12], &device, DType::F64);
    let spacing = [0.5, 2.0];
    let config = BoundaryConfig::new()
        .with_spacing(Some(spacing.to_vec()))
        .with_reduction(segloss::Reduction::None);
    let direct = to_vec(boundary_loss(xt.clone(), yt.clone(), &config).unwrap());
    let map = signed_distance_map(yt, Some(&spacing)).unwrap();
    let precomputed = to_vec(boundary_loss_with_map(xt, map, &config).unwrap());
    assert_eq!(direct, precomputed);
    assert_eq!(direct.len(), 3);
}

#[test]
fn nan_logits_give_nan_losses() {
    for (name, device) in cpu_devices() {
        let mut x = vec![0.5; 2 * 8 * 8];
        x[5] = f64::NAN;
        let y: Vec<f64> = (0..2 * 64)
            .map(|i| f64::from(u8::from(i % 8 < 4)))
            .collect();
        let xt = || tensor(&x, [2, 1, 8, 8], &device, DType::F32);
        let yt = || tensor(&y, [2, 1, 8, 8], &device, DType::F32);
        let b = to_vec(boundary_loss(xt(), yt(), &BoundaryConfig::new()).unwrap())[0];
        let h = to_vec(hausdorff_dt_loss(xt(), yt(), &HausdorffDtConfig::new()).unwrap())[0];
        assert!(b.is_nan() && h.is_nan(), "{name}: {b} {h}");
    }
}

#[test]
fn bad_options_are_errors() {
    let device = common::f64_device();
    let x = tensor(&[0.0; 16], [1, 1, 4, 4], &device, DType::F64);
    let bad = |r: Result<Tensor<1>, SegLossError>| r.unwrap_err();
    let err = bad(boundary_loss(
        x.clone(),
        x.clone(),
        &BoundaryConfig::new().with_spacing(Some(vec![1.0, 1.0, 1.0, 1.0])),
    ));
    assert!(matches!(err, SegLossError::InvalidOption { .. }), "{err}");
    let err = bad(boundary_loss(
        x.clone(),
        x.clone(),
        &BoundaryConfig::new().with_spacing(Some(vec![1.0, -1.0])),
    ));
    assert!(
        matches!(err, SegLossError::InvalidParameter { .. }),
        "{err}"
    );
    let err = bad(hausdorff_dt_loss(
        x.clone(),
        x.clone(),
        &HausdorffDtConfig::new().with_alpha(-1.0),
    ));
    assert!(
        matches!(err, SegLossError::InvalidParameter { .. }),
        "{err}"
    );
    assert!(
        HausdorffDtConfig::new()
            .with_alpha(f64::NAN)
            .init()
            .is_err()
    );
    let other = tensor(&[0.0; 20], [1, 1, 4, 5], &device, DType::F64);
    let err = bad(boundary_loss(x.clone(), other, &BoundaryConfig::new()));
    assert!(matches!(err, SegLossError::ShapeMismatch { .. }), "{err}");
    let targets = Tensor::<4, Int>::zeros([1, 1, 4, 4], &device);
    let err = bad(multiclass_boundary_loss(
        x,
        targets,
        &MulticlassBoundaryConfig::new(),
    ));
    assert!(matches!(err, SegLossError::InvalidOption { .. }), "{err}");
}
