//! Helpers shared by the integration tests: devices, tensor construction, and one entry point
//! that runs any loss by name with options given as JSON (the fixtures' format).
#![allow(dead_code)]

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use segloss::losses::*;
use segloss::{Aggregation, Execution, Reduction, SegLossError};
use serde_json::Value;

/// The CPU devices enabled in this build, with a name for messages.
pub fn cpu_devices() -> Vec<(&'static str, Device)> {
    vec![
        #[cfg(feature = "flex")]
        ("flex", Device::flex()),
        #[cfg(feature = "ndarray")]
        ("ndarray", ndarray()),
    ]
}

/// Every device of this build: the CPU devices, then wgpu when the `wgpu` feature is on and
/// an adapter exists (see [`wgpu_device`]).
pub fn all_devices() -> Vec<(&'static str, Device)> {
    #[allow(unused_mut)]
    let mut devices = cpu_devices();
    #[cfg(feature = "wgpu")]
    if let Some(device) = wgpu_device() {
        devices.push(("wgpu", device));
    }
    devices
}

/// The float dtypes to test on a device: f32 everywhere, f64 on the CPU backends.
///
/// wgpu reports f64 support under Mesa's lavapipe, but burn 0.22.1's f64 kernels there are
/// wrong (`exp(-30)` comes back as 5.7e-315 and `log_sigmoid`'s gradient as -inf, measured
/// here), so f64 is not a configuration this crate can vouch for on wgpu.
pub fn float_dtypes(device: &Device) -> Vec<DType> {
    let mut dtypes = vec![DType::F32];
    if cpu_devices().iter().any(|(_, d)| d == device) {
        dtypes.push(DType::F64);
    }
    dtypes
}

/// The agreement expected between a backend and the first CPU backend: wgpu's f32 kernels
/// (fused, reordered sums, approximate `exp`) agree to 1e-4, the CPU backends to 1e-5.
pub fn parity_tolerance(backend: &str) -> f64 {
    if backend == "wgpu" { 1e-4 } else { 1e-5 }
}

/// The wgpu device, initialised once per test process (burn initialises a wgpu runtime once).
///
/// Without an adapter (no GPU and no Mesa `lavapipe`) the wgpu part of every test is skipped,
/// and the reason is written once per test binary straight to stderr (not through `eprintln!`,
/// which the test harness captures), so it shows in every `cargo test` run. With
/// `SEGLOSS_REQUIRE_WGPU=1`, as in CI, a missing adapter fails the tests instead.
#[cfg(feature = "wgpu")]
pub fn wgpu_device() -> Option<Device> {
    use std::io::Write;
    use std::sync::OnceLock;
    static DEVICE: OnceLock<Result<Device, String>> = OnceLock::new();
    let device = DEVICE.get_or_init(|| {
        let device = Device::wgpu_options().init().map_err(|e| {
            format!(
                "SKIPPED wgpu tests: no wgpu adapter ({e:?}); install mesa-vulkan-drivers for \
                 a software Vulkan adapter"
            )
        });
        if let Err(reason) = &device {
            let _ = writeln!(std::io::stderr(), "{reason}");
        }
        device
    });
    match device {
        Ok(device) => Some(device.clone()),
        Err(reason) => {
            assert!(
                std::env::var_os("SEGLOSS_REQUIRE_WGPU").is_none(),
                "{reason} (SEGLOSS_REQUIRE_WGPU is set)"
            );
            None
        }
    }
}

#[cfg(feature = "ndarray")]
#[allow(deprecated)] // burn-ndarray is deprecated upstream; the crate still supports it.
pub fn ndarray() -> Device {
    Device::ndarray()
}

/// The device for f64 checks: flex computes in f64 (ndarray's sigmoid runs in f32).
pub fn f64_device() -> Device {
    #[cfg(feature = "flex")]
    return Device::flex();
    #[cfg(all(not(feature = "flex"), feature = "ndarray"))]
    return ndarray();
    #[cfg(not(any(feature = "flex", feature = "ndarray")))]
    panic!("tests need the flex or ndarray feature");
}

pub fn tensor<const D: usize>(
    values: &[f64],
    shape: [usize; D],
    device: &Device,
    dtype: DType,
) -> Tensor<D> {
    let data = TensorData::new(values.to_vec(), shape).convert_dtype(dtype);
    Tensor::from_data(data, (device, dtype))
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .unwrap()
}

pub const ALL_LOSSES: [&str; 9] = [
    "binary_cross_entropy",
    "weighted_cross_entropy",
    "soft_dice",
    "soft_jaccard",
    "lovasz_sigmoid",
    "lovasz_hinge",
    "tversky",
    "focal",
    "compound",
];

/// The binary losses outside [`ALL_LOSSES`] (newer ones, with fixtures of their own).
pub const LATER_LOSSES: [&str; 2] = ["mcc", "cl_dice"];

/// The paths a loss can take, as named in JSON options (`"execution"`).
pub const EXECUTIONS: [&str; 2] = ["host", "device"];

/// `options` with `"execution"` set.
pub fn with_execution(options: &Value, execution: &str) -> Value {
    let mut options = options.clone();
    options["execution"] = Value::from(execution);
    options
}

/// Runs `loss` with the fixtures' JSON options (missing keys keep the config default;
/// `"execution"`: `"host"`, `"device"` or absent for `Auto`), through [`Loss::compute`], or
/// [`compound`] for `"compound"`.
pub fn run_loss<const D: usize>(
    loss: &str,
    options: &Value,
    reduction: Reduction,
    x: Tensor<D>,
    y: impl Into<BinaryTargets<D>>,
) -> Result<Tensor<1>, SegLossError> {
    if loss == "compound" {
        return compound(x, y, &compound_config(options, reduction));
    }
    loss_config(loss, options, reduction).compute(x, y)
}

/// The compound loss of the JSON options: `"terms": [{"weight", "loss", "options"}]` (each
/// term inheriting the top-level `from_logits` and `execution`), by default
/// `soft Dice + BCE`, nnU-Net's pair.
pub fn compound_config(options: &Value, reduction: Reduction) -> CompoundConfig {
    let default_terms = serde_json::json!([
        {"weight": 1.0, "loss": "soft_dice", "options": {}},
        {"weight": 1.0, "loss": "binary_cross_entropy", "options": {}},
    ]);
    let terms = options["terms"]
        .as_array()
        .unwrap_or_else(|| default_terms.as_array().unwrap());
    let mut config = CompoundConfig::new();
    for term in terms {
        let mut term_options = term["options"].clone();
        if term_options.is_null() {
            term_options = serde_json::json!({});
        }
        for key in ["from_logits", "execution"] {
            if term_options[key].is_null() && !options[key].is_null() {
                term_options[key] = options[key].clone();
            }
        }
        config = config.with_term(
            term["weight"].as_f64().unwrap(),
            loss_config(term["loss"].as_str().unwrap(), &term_options, reduction),
        );
    }
    config
}

/// The [`Loss`] (name and config) of the JSON options.
pub fn loss_config(loss: &str, options: &Value, reduction: Reduction) -> Loss {
    let from_logits = options["from_logits"].as_bool().unwrap_or(true);
    let f = |k: &str, d: f64| options[k].as_f64().unwrap_or(d);
    let flag = |k: &str| options[k].as_bool().unwrap_or(false);
    let execution = match options["execution"].as_str() {
        Some("host") => Execution::Host,
        Some("device") => Execution::Device,
        None => Execution::Auto,
        Some(other) => panic!("unknown execution {other}"),
    };
    let aggregation = match options["aggregation"].as_str() {
        Some("batch") => Aggregation::Batch,
        _ => Aggregation::PerImage,
    };
    match loss {
        "binary_cross_entropy" => Loss::BinaryCrossEntropy(
            BinaryCrossEntropyConfig::new()
                .with_from_logits(from_logits)
                .with_reduction(reduction)
                .with_execution(execution),
        ),
        "weighted_cross_entropy" => {
            let prior = match &options["prior"] {
                Value::Number(q) => Prior::Fixed(q.as_f64().unwrap()),
                _ => Prior::Batch,
            };
            Loss::WeightedCrossEntropy(
                WeightedCrossEntropyConfig::new()
                    .with_prior(prior)
                    .with_fg_weight(options["fg_weight"].as_f64())
                    .with_bg_weight(options["bg_weight"].as_f64())
                    .with_from_logits(from_logits)
                    .with_reduction(reduction)
                    .with_execution(execution),
            )
        }
        "soft_dice" => Loss::SoftDice(
            SoftDiceConfig::new()
                .with_smooth_nr(f("smooth_nr", 1e-5))
                .with_smooth_dr(f("smooth_dr", 1e-5))
                .with_squared(flag("squared"))
                .with_soft_label(flag("soft_label"))
                .with_log_loss(flag("log_loss"))
                .with_aggregation(aggregation)
                .with_from_logits(from_logits)
                .with_reduction(reduction)
                .with_execution(execution),
        ),
        "soft_jaccard" => Loss::SoftJaccard(
            SoftJaccardConfig::new()
                .with_smooth_nr(f("smooth_nr", 1e-5))
                .with_smooth_dr(f("smooth_dr", 1e-5))
                .with_squared(flag("squared"))
                .with_soft_label(flag("soft_label"))
                .with_log_loss(flag("log_loss"))
                .with_aggregation(aggregation)
                .with_from_logits(from_logits)
                .with_reduction(reduction)
                .with_execution(execution),
        ),
        "tversky" => Loss::Tversky(
            TverskyConfig::new()
                .with_alpha(f("alpha", 0.5))
                .with_beta(f("beta", 0.5))
                .with_gamma(f("gamma", 1.0))
                .with_smooth_nr(f("smooth_nr", 1e-5))
                .with_smooth_dr(f("smooth_dr", 1e-5))
                .with_soft_label(flag("soft_label"))
                .with_log_loss(flag("log_loss"))
                .with_aggregation(aggregation)
                .with_from_logits(from_logits)
                .with_reduction(reduction)
                .with_execution(execution),
        ),
        "focal" => Loss::Focal(
            FocalConfig::new()
                .with_gamma(f("gamma", 2.0))
                .with_alpha(options["alpha"].as_f64())
                .with_from_logits(from_logits)
                .with_reduction(reduction)
                .with_execution(execution),
        ),
        "lovasz_sigmoid" | "lovasz_hinge" => {
            // The fixtures name the option as Berman's code does (`per_image`).
            let aggregation = if options["per_image"].as_bool().unwrap_or(true) {
                Aggregation::PerImage
            } else {
                Aggregation::Batch
            };
            if loss == "lovasz_sigmoid" {
                Loss::LovaszSigmoid(
                    LovaszSigmoidConfig::new()
                        .with_aggregation(aggregation)
                        .with_from_logits(from_logits)
                        .with_reduction(reduction)
                        .with_execution(execution),
                )
            } else {
                Loss::LovaszHinge(
                    LovaszHingeConfig::new()
                        .with_aggregation(aggregation)
                        .with_from_logits(from_logits)
                        .with_reduction(reduction)
                        .with_execution(execution),
                )
            }
        }
        "mcc" => Loss::Mcc(
            MccConfig::new()
                .with_eps(f("eps", 1e-5))
                .with_aggregation(match options["aggregation"].as_str() {
                    Some("per_image") => Aggregation::PerImage,
                    _ => Aggregation::Batch,
                })
                .with_from_logits(from_logits)
                .with_reduction(reduction)
                .with_execution(execution),
        ),
        "cl_dice" => Loss::ClDice(
            ClDiceConfig::new()
                .with_iterations(options["iterations"].as_u64().unwrap_or(3) as usize)
                .with_smooth_nr(f("smooth_nr", 1.0))
                .with_smooth_dr(f("smooth_dr", 1.0))
                .with_smooth(f("smooth", 1e-4))
                .with_from_logits(from_logits)
                .with_reduction(reduction)
                .with_execution(execution),
        ),
        other => panic!("unknown loss {other}"),
    }
}

/// Value and gradient of the mean-reduced loss at `x`, computed on `device.autodiff()`.
pub fn value_and_grad<const D: usize>(
    loss: &str,
    options: &Value,
    x: &[f64],
    y: &[f64],
    shape: [usize; D],
    device: &Device,
    dtype: DType,
) -> (f64, Vec<f64>) {
    let ad = device.clone().autodiff();
    let xt = tensor(x, shape, &ad, dtype).require_grad();
    let yt = tensor(y, shape, &ad, dtype);
    let l = run_loss(loss, options, Reduction::Mean, xt.clone(), yt).unwrap();
    let grads = l.backward();
    let g = to_vec(xt.grad(&grads).expect("input has a gradient"));
    (to_vec(l)[0], g)
}

/// Checks a fixture case against `loss(reduction, logits, device)`: its values under each
/// reduction (`per_item`, `mean`, `sum`; a null one is skipped: a preset's anchor has MONAI's
/// mean alone) at `tol` (relative, with an absolute floor of 1e-6), and the gradient of the mean
/// with respect to the logits `x` (`grad_mean`), computed on `device`'s autodiff twin.
pub fn check_fixture_case<const D: usize>(
    case: &Value,
    x: &[f64],
    shape: [usize; D],
    device: &Device,
    tol: f64,
    what: &str,
    loss: impl Fn(Reduction, Tensor<D>, &Device) -> Tensor<1>,
) {
    for (reduction, expected) in [
        (Reduction::None, &case["per_item"]),
        (Reduction::Mean, &case["mean"]),
        (Reduction::Sum, &case["sum"]),
    ] {
        let expected = match expected {
            Value::Null => continue,
            Value::Array(_) => floats(expected),
            number => vec![number.as_f64().unwrap()],
        };
        let got = to_vec(loss(
            reduction,
            tensor(x, shape, device, DType::F32),
            device,
        ));
        assert_close(&got, &expected, tol, 1e-6, &format!("{what} {reduction:?}"));
    }
    let ad = device.clone().autodiff();
    let xt = tensor(x, shape, &ad, DType::F32).require_grad();
    let value = loss(Reduction::Mean, xt.clone(), &ad);
    let grad = to_vec(
        xt.grad(&value.backward())
            .expect("the logits have a gradient"),
    );
    assert_close(
        &grad,
        &floats(&case["grad_mean"]),
        tol,
        0.0,
        &format!("{what} gradient"),
    );
}

/// A fixture's shape (a JSON array of sizes) as a rank-`D` shape.
pub fn shape_of<const D: usize>(v: &Value) -> [usize; D] {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect::<Vec<_>>()
        .try_into()
        .unwrap()
}

/// Class indices (a JSON array of integers) as an i64 tensor of `shape` on `device`.
pub fn indices<const D: usize>(
    values: &Value,
    shape: [usize; D],
    device: &Device,
) -> Tensor<D, Int> {
    let v: Vec<i64> = values
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_i64().unwrap())
        .collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// A JSON array of numbers as `f64`; `null` (JSON has no NaN) reads as NaN.
pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

/// `|a - b| <= tol * scale` elementwise, where `scale` is the largest |b| (at least `floor`):
/// a relative tolerance for the vector as a whole, so tiny entries are not held to a tighter
/// absolute bound than the big ones.
pub fn assert_close(actual: &[f64], expected: &[f64], tol: f64, floor: f64, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    let scale = expected.iter().fold(floor, |m, v| m.max(v.abs()));
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            a.is_finite() && (a - e).abs() <= tol * scale,
            "{what}[{i}]: got {a}, expected {e} (tolerance {} = {tol} x {scale})",
            tol * scale
        );
    }
}

/// A small deterministic generator (SplitMix64) for test inputs.
pub struct TestRng(u64);

impl TestRng {
    pub fn new(seed: u64) -> Self {
        TestRng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }
    /// `n` hard labels, each 1 with probability `p`.
    pub fn mask(&mut self, n: usize, p: f64) -> Vec<f64> {
        (0..n)
            .map(|_| f64::from(u8::from(self.uniform() < p)))
            .collect()
    }
    /// `n` logits uniform in `[-spread, spread)` and `n` hard labels, each 1 with
    /// probability `p`.
    pub fn logits_and_mask(&mut self, n: usize, spread: f64, p: f64) -> (Vec<f64>, Vec<f64>) {
        let x = (0..n).map(|_| self.range(-spread, spread)).collect();
        (x, self.mask(n, p))
    }
}
