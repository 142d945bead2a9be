//! Batch statistics shared across simulated data-parallel workers (issue 17): W workers on one
//! flex device, each scoring its shard through a `StatsReducer` that sums the shards'
//! statistics, give every worker the full batch's loss, and gradients that add up (or average,
//! per `GradientReduction`) to the full batch's gradient. Issue 26: a backend without
//! collectives is a typed error, and a worker whose inputs fail their checks still takes part
//! in every collective (threads as workers, under a deadline), so no worker waits for ever.

mod common;

use std::sync::{Arc, Mutex};

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use common::{TestRng, assert_close, f64_device, tensor, to_vec};
use segloss::distributed::{
    DeviceAllReduce, GradientReduction, SharedStatistics, SingleWorker, StatsReducer,
};
use segloss::losses::*;
use segloss::{Aggregation, Execution, SegLossError};

/// First pass: records each worker's statistics and returns them unchanged.
#[derive(Debug, Default)]
struct Recorder {
    seen: Mutex<Vec<Vec<f64>>>,
    shape: Mutex<[usize; 2]>,
}

impl StatsReducer for Recorder {
    fn sum(&self, statistics: Tensor<2>) -> Result<Tensor<2>, SegLossError> {
        *self.shape.lock().unwrap() = statistics.dims();
        self.seen.lock().unwrap().push(to_vec(statistics.clone()));
        Ok(statistics)
    }
    fn workers(&self) -> usize {
        self.seen.lock().unwrap().len().max(1)
    }
}

/// Second pass: every worker gets the sum of all the workers' recorded statistics, as an
/// all-reduce would give it.
#[derive(Debug)]
struct Summed {
    total: Vec<f64>,
    shape: [usize; 2],
    workers: usize,
}

impl StatsReducer for Summed {
    fn sum(&self, statistics: Tensor<2>) -> Result<Tensor<2>, SegLossError> {
        let dtype = statistics.dtype();
        let data = TensorData::new(self.total.clone(), self.shape).convert_dtype(dtype);
        Ok(Tensor::from_data(data, (&statistics.device(), dtype)))
    }
    fn workers(&self) -> usize {
        self.workers
    }
}

/// The shared statistics run as burn operations; the full-batch references take the same
/// path, so values agree to rounding (the host kernels agree with it to 1e-7 in f64, elsewhere
/// tested).
const DEVICE: Execution = Execution::Device;

/// The shard sizes tried for a batch of 7 images: W = 1, 2, 3, 4, unequal.
const SPLITS: [&[usize]; 4] = [&[7], &[3, 4], &[1, 2, 4], &[2, 1, 3, 1]];

type LossFn =
    dyn Fn(Tensor<4>, Targets, Option<&SharedStatistics>) -> Result<Tensor<1>, SegLossError>;

/// Binary targets or class indices of a shard, with their pixel weights when they have any.
#[derive(Clone)]
enum Targets {
    Binary(BinaryTargets<4>),
    Classes(WeightedClassTargets<4>),
}

impl Targets {
    fn shard(&self, start: usize, len: usize) -> Targets {
        let weights = |w: &Option<Tensor<4>>| w.clone().map(|w| w.narrow(0, start, len));
        match self {
            Targets::Binary(t) => Targets::Binary(PixelWeighted {
                targets: t.targets.clone().narrow(0, start, len),
                pixel_weights: weights(&t.pixel_weights),
            }),
            Targets::Classes(t) => {
                let ClassTargets::Indices(indices) = &t.targets else {
                    unreachable!("the tests shard class indices")
                };
                Targets::Classes(PixelWeighted {
                    targets: ClassTargets::Indices(indices.clone().narrow(0, start, len)),
                    pixel_weights: weights(&t.pixel_weights),
                })
            }
        }
    }

    /// The class indices of unweighted class targets.
    fn indices(self) -> Tensor<4, Int> {
        match self {
            Targets::Classes(PixelWeighted {
                targets: ClassTargets::Indices(indices),
                pixel_weights: None,
            }) => indices,
            _ => unreachable!("unweighted class indices"),
        }
    }

    /// The values of unweighted binary targets.
    fn values(self) -> Tensor<4> {
        match self {
            Targets::Binary(PixelWeighted {
                targets,
                pixel_weights: None,
            }) => targets,
            _ => unreachable!("unweighted binary targets"),
        }
    }

    /// These targets with the pixel weights `w` (`[N, 1, ...]`).
    fn weighted(self, w: Tensor<4>) -> Targets {
        match self {
            Targets::Binary(t) => Targets::Binary(t.with_pixel_weights(w)),
            Targets::Classes(t) => Targets::Classes(t.with_pixel_weights(w)),
        }
    }
}

/// Checks one loss for every split and both gradient reductions.
fn check(name: &str, x: &[f64], dims: [usize; 4], targets: Targets, loss: &LossFn) {
    let device = f64_device().autodiff();
    let full_x = tensor(x, dims, &device, DType::F64).require_grad();
    let full = loss(full_x.clone(), targets.clone(), None).unwrap();
    let full_value = to_vec(full.clone())[0];
    let full_grad = to_vec(full_x.grad(&full.backward()).unwrap());
    let per_image: usize = dims[1..].iter().product();
    for split in SPLITS {
        let workers = split.len();
        let starts: Vec<usize> = split
            .iter()
            .scan(0, |s, &n| {
                let start = *s;
                *s += n;
                Some(start)
            })
            .collect();
        let shard_x = |w: usize| {
            let (start, n) = (starts[w], split[w]);
            let values = &x[start * per_image..(start + n) * per_image];
            tensor(values, [n, dims[1], dims[2], dims[3]], &device, DType::F64).require_grad()
        };
        // Pass 1: each worker's own statistics.
        let recorder = Arc::new(Recorder::default());
        for w in 0..workers {
            let shared = SharedStatistics::new(recorder.clone(), GradientReduction::Sum);
            loss(
                shard_x(w),
                targets.shard(starts[w], split[w]),
                Some(&shared),
            )
            .unwrap();
        }
        let seen = recorder.seen.lock().unwrap().clone();
        assert_eq!(
            seen.len(),
            workers,
            "{name}: one reduction per worker and step"
        );
        let total: Vec<f64> = (0..seen[0].len())
            .map(|i| seen.iter().map(|s| s[i]).sum())
            .collect();
        let shape = *recorder.shape.lock().unwrap();
        for gradient in [GradientReduction::Sum, GradientReduction::Mean] {
            let reducer = Arc::new(Summed {
                total: total.clone(),
                shape,
                workers,
            });
            let shared = SharedStatistics::new(reducer, gradient);
            let mut grads = Vec::new();
            for w in 0..workers {
                let xw = shard_x(w);
                let value = loss(
                    xw.clone(),
                    targets.shard(starts[w], split[w]),
                    Some(&shared),
                )
                .unwrap();
                let what = format!("{name}, shards {split:?}, {gradient:?}, worker {w}");
                // (a) every worker's loss is the full batch's loss.
                assert_close(&[to_vec(value.clone())[0]], &[full_value], 1e-9, 1.0, &what);
                grads.extend(to_vec(xw.grad(&value.backward()).unwrap()));
            }
            // (b) what the training loop makes of the workers' gradients is the full gradient.
            let combined: Vec<f64> = match gradient {
                GradientReduction::Sum => grads,
                GradientReduction::Mean => grads.iter().map(|g| g / workers as f64).collect(),
            };
            let what = format!("{name}, shards {split:?}, {gradient:?}: gradient");
            assert_close(&combined, &full_grad, 1e-6, 1e-12, &what);
        }
    }
}

fn binary_inputs(rng: &mut TestRng) -> (Vec<f64>, [usize; 4], Targets) {
    let dims = [7, 1, 6, 5];
    let (x, mut y) = rng.logits_and_mask(dims.iter().product(), 3.0, 0.3);
    // Image 2 has an empty target.
    y[60..90].fill(0.0);
    let device = f64_device().autodiff();
    (
        x,
        dims,
        Targets::Binary(tensor(&y, dims, &device, DType::F64).into()),
    )
}

fn class_inputs(rng: &mut TestRng) -> (Vec<f64>, [usize; 4], Targets) {
    let dims = [7, 4, 5, 6];
    let x: Vec<f64> = (0..dims.iter().product())
        .map(|_| rng.range(-3.0, 3.0))
        .collect();
    let pixels = 30;
    let y: Vec<i64> = (0..7 * pixels)
        .map(|i| {
            // Class 3 absent from image 1; a few ignored pixels.
            let c = (rng.uniform() * 4.0) as i64;
            if i % 11 == 0 {
                255
            } else if i / pixels == 1 && c == 3 {
                0
            } else {
                c
            }
        })
        .collect();
    let device = f64_device().autodiff();
    let t = Tensor::<4, Int>::from_data(TensorData::new(y, [7, 1, 5, 6]), &device);
    (x, dims, Targets::Classes(t.into()))
}

fn binary(loss: Loss) -> Box<LossFn> {
    Box::new(move |x, y, shared| {
        let Targets::Binary(y) = y else {
            unreachable!()
        };
        match shared {
            Some(s) => loss.compute_shared(x, y, s),
            None => loss.compute(x, y),
        }
    })
}

fn multiclass(loss: MulticlassLoss) -> Box<LossFn> {
    Box::new(move |x, y, shared| {
        let Targets::Classes(y) = y else {
            unreachable!()
        };
        match shared {
            Some(s) => loss.compute_shared(x, y, s),
            None => loss.compute(x, y),
        }
    })
}

#[test]
fn binary_batch_losses_are_exact_across_workers() {
    let mut rng = TestRng::new(17);
    let (x, dims, y) = binary_inputs(&mut rng);
    let batch = Aggregation::Batch;
    check(
        "soft Dice",
        &x,
        dims,
        y.clone(),
        &binary(Loss::SoftDice(
            SoftDiceConfig::new()
                .with_aggregation(batch)
                .with_execution(DEVICE),
        )),
    );
    check(
        "soft Dice, squared, no smoothing",
        &x,
        dims,
        y.clone(),
        &binary(Loss::SoftDice(
            SoftDiceConfig::new()
                .with_aggregation(batch)
                .with_execution(DEVICE)
                .with_squared(true)
                .with_smooth_nr(0.0)
                .with_smooth_dr(0.0),
        )),
    );
    check(
        "soft Jaccard, log",
        &x,
        dims,
        y.clone(),
        &binary(Loss::SoftJaccard(
            SoftJaccardConfig::new()
                .with_aggregation(batch)
                .with_execution(DEVICE)
                .with_log_loss(true),
        )),
    );
    check(
        "Tversky",
        &x,
        dims,
        y,
        &binary(Loss::Tversky(
            TverskyConfig::new()
                .with_alpha(0.3)
                .with_beta(0.7)
                .with_aggregation(batch)
                .with_execution(DEVICE),
        )),
    );
}

#[test]
fn multiclass_batch_losses_are_exact_across_workers() {
    let mut rng = TestRng::new(29);
    let (x, dims, y) = class_inputs(&mut rng);
    let batch = Aggregation::Batch;
    check(
        "multiclass Dice, ignore_index, class weights",
        &x,
        dims,
        y.clone(),
        &multiclass(MulticlassLoss::Overlap(
            MulticlassOverlapConfig::new()
                .with_aggregation(batch)
                .with_execution(DEVICE)
                .with_ignore_index(Some(255))
                .with_class_weights(Some(vec![0.5, 1.0, 2.0, 1.5])),
        )),
    );
    check(
        "multiclass Jaccard, present classes, no background",
        &x,
        dims,
        y.clone(),
        &multiclass(MulticlassLoss::Overlap(
            MulticlassOverlapConfig::new()
                .with_aggregation(batch)
                .with_execution(DEVICE)
                .with_score(OverlapScore::Jaccard)
                .with_average(ClassAverage::Present)
                .with_include_background(false)
                .with_ignore_index(Some(255)),
        )),
    );
    check(
        "generalized Dice, ignore_index",
        &x,
        dims,
        y,
        &multiclass(MulticlassLoss::GeneralizedDice(
            GeneralizedDiceConfig::new()
                .with_aggregation(batch)
                .with_execution(DEVICE)
                .with_ignore_index(Some(255)),
        )),
    );
}

#[test]
fn weighted_batch_losses_are_exact_across_workers() {
    // Pixel weights enter the shared sums: the weighted batch losses stay exact too.
    let mut rng = TestRng::new(31);
    let device = f64_device().autodiff();
    let weights = |rng: &mut TestRng, dims: [usize; 4]| {
        let w: Vec<f64> = (0..dims.iter().product())
            .map(|_| rng.range(0.0, 2.0))
            .collect();
        tensor(&w, dims, &device, DType::F64)
    };
    let (x, dims, y) = binary_inputs(&mut rng);
    let y = y.weighted(weights(&mut rng, dims));
    let batch = Aggregation::Batch;
    check(
        "weighted soft Dice",
        &x,
        dims,
        y,
        &binary(Loss::SoftDice(
            SoftDiceConfig::new()
                .with_aggregation(batch)
                .with_execution(DEVICE),
        )),
    );
    let (x, dims, y) = class_inputs(&mut rng);
    let y = y.weighted(weights(&mut rng, [dims[0], 1, dims[2], dims[3]]));
    check(
        "weighted multiclass Dice, ignore_index",
        &x,
        dims,
        y.clone(),
        &multiclass(MulticlassLoss::Overlap(
            MulticlassOverlapConfig::new()
                .with_aggregation(batch)
                .with_execution(DEVICE)
                .with_ignore_index(Some(255)),
        )),
    );
    check(
        "weighted generalized Dice",
        &x,
        dims,
        y,
        &multiclass(MulticlassLoss::GeneralizedDice(
            GeneralizedDiceConfig::new()
                .with_aggregation(batch)
                .with_execution(DEVICE)
                .with_ignore_index(Some(255)),
        )),
    );
}

#[test]
fn nnunet_batch_dice_plus_ce_under_data_parallelism() {
    // Equal shards: the cross-entropy's per-shard mean averages to the global mean, so the
    // whole compound is exact with GradientReduction::Mean (and its value is the mean of the
    // workers' values).
    let mut rng = TestRng::new(31);
    let (x, dims, y) = class_inputs(&mut rng);
    let y = y.indices();
    let config = MulticlassCompoundConfig::new()
        .with_term(
            1.0,
            MulticlassLoss::Overlap(
                MulticlassOverlapConfig::new()
                    .with_aggregation(Aggregation::Batch)
                    .with_ignore_index(Some(255)),
            ),
        )
        .with_term(
            1.0,
            MulticlassLoss::Focal(MulticlassFocalConfig::new().with_gamma(0.0)),
        );
    let device = f64_device().autodiff();
    let dims6 = [6, dims[1], dims[2], dims[3]];
    let per_image = dims[1] * dims[2] * dims[3];
    let x6 = &x[..6 * per_image];
    let y6 = y.narrow(0, 0, 6);
    let full_x = tensor(x6, dims6, &device, DType::F64).require_grad();
    let dice = multiclass_overlap(
        full_x.clone(),
        y6.clone(),
        &MulticlassOverlapConfig::new()
            .with_aggregation(Aggregation::Batch)
            .with_ignore_index(Some(255)),
    )
    .unwrap();
    let full = multiclass_compound(full_x.clone(), y6.clone(), &config).unwrap();
    let full_grad = to_vec(full_x.grad(&full.backward()).unwrap());
    let workers = 3;
    let shard = |w: usize| {
        tensor(
            &x6[2 * w * per_image..2 * (w + 1) * per_image],
            [2, dims[1], dims[2], dims[3]],
            &device,
            DType::F64,
        )
        .require_grad()
    };
    let recorder = Arc::new(Recorder::default());
    for w in 0..workers {
        let shared = SharedStatistics::new(recorder.clone(), GradientReduction::Mean);
        multiclass_compound_shared(shard(w), y6.clone().narrow(0, 2 * w, 2), &config, &shared)
            .unwrap();
    }
    let seen = recorder.seen.lock().unwrap().clone();
    let total: Vec<f64> = (0..seen[0].len())
        .map(|i| seen.iter().map(|s| s[i]).sum())
        .collect();
    let shape = *recorder.shape.lock().unwrap();
    let shared = SharedStatistics::new(
        Arc::new(Summed {
            total,
            shape,
            workers,
        }),
        GradientReduction::Mean,
    );
    let (mut values, mut grads) = (Vec::new(), Vec::new());
    for w in 0..workers {
        let xw = shard(w);
        let value = multiclass_compound_shared(
            xw.clone(),
            y6.clone().narrow(0, 2 * w, 2),
            &config,
            &shared,
        )
        .unwrap();
        values.push(to_vec(value.clone())[0]);
        grads.extend(
            to_vec(xw.grad(&value.backward()).unwrap())
                .into_iter()
                .map(|g| g / workers as f64),
        );
    }
    let mean = values.iter().sum::<f64>() / workers as f64;
    assert_close(&[mean], &[to_vec(full)[0]], 1e-9, 1.0, "Dice + CE value");
    assert_close(&grads, &full_grad, 1e-6, 1e-12, "Dice + CE gradient");
    // The batch Dice term is not trivially solved by these inputs (so it weighs in above).
    assert!(to_vec(dice)[0] > 0.0);
}

/// A binary batch on the plain (non-autodiff) device.
fn plain_binary_batch(seed: u64) -> (Tensor<4>, Tensor<4>) {
    let (x, dims, y) = binary_inputs(&mut TestRng::new(seed));
    let device = f64_device();
    (
        tensor(&x, dims, &device, DType::F64),
        Tensor::from_data(y.values().into_data(), &device),
    )
}

#[test]
fn one_worker_changes_nothing() {
    let (x, y) = plain_binary_batch(5);
    let loss = Loss::SoftDice(SoftDiceConfig::new().with_aggregation(Aggregation::Batch));
    let shared = SharedStatistics::new(Arc::new(SingleWorker), GradientReduction::Mean);
    let plain = to_vec(loss.compute(x.clone(), y.clone()).unwrap())[0];
    let one = to_vec(loss.compute_shared(x, y, &shared).unwrap())[0];
    assert!((plain - one).abs() <= 1e-12, "{plain} vs {one}");
}

/// Half-precision logits compute in f32, so their statistics travel in f32, and a worker
/// whose f16 shard fails its checks sends f32 zeros too: the workers' sums never mix dtypes.
#[test]
fn half_precision_workers_share_f32_statistics_even_when_they_fail() {
    #[derive(Debug, Default)]
    struct Dtypes(Mutex<Vec<DType>>);
    impl StatsReducer for Dtypes {
        fn sum(&self, statistics: Tensor<2>) -> Result<Tensor<2>, SegLossError> {
            self.0.lock().unwrap().push(statistics.dtype());
            Ok(statistics)
        }
        fn workers(&self) -> usize {
            1
        }
    }
    let device = Device::flex();
    let reducer = Arc::new(Dtypes::default());
    let shared = SharedStatistics::new(reducer.clone(), GradientReduction::Sum);
    let loss = Loss::SoftDice(SoftDiceConfig::new().with_aggregation(Aggregation::Batch));
    let x = tensor(&[0.5, -1.0, 2.0, 0.0], [1, 1, 2, 2], &device, DType::F16);
    let good = tensor(&[1.0, 0.0, 1.0, 0.0], [1, 1, 2, 2], &device, DType::F16);
    let bad = tensor(&[1.0, 0.0, 1.0], [1, 1, 1, 3], &device, DType::F16);
    assert!(loss.compute_shared(x.clone(), good, &shared).is_ok());
    assert!(matches!(
        loss.compute_shared(x, bad, &shared),
        Err(SegLossError::ShapeMismatch { .. })
    ));
    assert_eq!(*reducer.0.lock().unwrap(), [DType::F32, DType::F32]);
}

#[test]
fn per_image_losses_ignore_the_reducer() {
    let (x, y) = plain_binary_batch(7);
    let recorder = Arc::new(Recorder::default());
    let shared = SharedStatistics::new(recorder.clone(), GradientReduction::Sum);
    for loss in [
        Loss::SoftDice(SoftDiceConfig::new()),
        Loss::BinaryCrossEntropy(BinaryCrossEntropyConfig::new()),
        Loss::LovaszHinge(LovaszHingeConfig::new()),
    ] {
        let plain = to_vec(loss.compute(x.clone(), y.clone()).unwrap());
        assert_eq!(
            to_vec(loss.compute_shared(x.clone(), y.clone(), &shared).unwrap()),
            plain
        );
    }
    assert!(recorder.seen.lock().unwrap().is_empty());
}

#[test]
fn a_reducer_that_changes_the_shape_is_an_error() {
    #[derive(Debug)]
    struct Wrong;
    impl StatsReducer for Wrong {
        fn sum(&self, statistics: Tensor<2>) -> Result<Tensor<2>, SegLossError> {
            Ok(statistics
                .clone()
                .narrow(1, 0, 1)
                .repeat_dim(1, 2)
                .narrow(0, 0, 2))
        }
        fn workers(&self) -> usize {
            2
        }
    }
    let device = f64_device();
    let x = tensor(&[0.5; 8], [2, 1, 2, 2], &device, DType::F64);
    let shared = SharedStatistics::new(Arc::new(Wrong), GradientReduction::Sum);
    let loss = Loss::SoftDice(SoftDiceConfig::new().with_aggregation(Aggregation::Batch));
    let err = loss.compute_shared(x.clone(), x, &shared).unwrap_err();
    assert!(matches!(err, SegLossError::ShapeMismatch { .. }), "{err}");
    assert!(DeviceAllReduce::new(Vec::<Device>::new()).is_err());
}

// Issue 26, item 3: a collective on a backend without one is a typed error, not burn's panic.

#[test]
fn device_all_reduce_turns_away_backends_without_collectives() {
    let mut devices = common::cpu_devices();
    #[cfg(feature = "wgpu")]
    if let Some(device) = common::wgpu_device() {
        devices.push(("wgpu", device));
    }
    for (name, device) in devices {
        for device in [device.clone(), device.autodiff()] {
            assert!(!DeviceAllReduce::supports(&device), "{name}");
            let err = DeviceAllReduce::new(vec![device.clone(), device]).unwrap_err();
            assert!(
                matches!(err, SegLossError::Unsupported { .. }),
                "{name}: {err}"
            );
        }
    }
}

/// The other side of the check, on device values that need no hardware: a CUDA device (NCCL)
/// is accepted, wrapped in autodiff or not, and the CPU runtime of cubecl is not; one reducer
/// over a CUDA device and a flex one is not either.
#[cfg(feature = "wgpu")]
#[test]
fn device_all_reduce_accepts_cuda_devices() {
    use burn_cubecl::CubeDevice;
    use burn_cubecl::cubecl::device::{CpuDevice, CudaDevice};
    let cuda = |index| Device::new(CubeDevice::Cuda(CudaDevice { index }));
    assert!(DeviceAllReduce::supports(&cuda(0)));
    assert!(DeviceAllReduce::supports(&cuda(1).autodiff()));
    let reducer = DeviceAllReduce::new(vec![cuda(0), cuda(1)]).unwrap();
    assert_eq!(reducer.workers(), 2);
    let cpu_runtime = Device::new(CubeDevice::Cpu(CpuDevice));
    assert!(!DeviceAllReduce::supports(&cpu_runtime));
    #[cfg(feature = "flex")]
    assert!(matches!(
        DeviceAllReduce::new(vec![cuda(0), Device::flex()]),
        Err(SegLossError::Unsupported { .. })
    ));
}

// Issue 26, item 4: a worker whose inputs fail its checks still takes part in every collective
// (with zeros) and then returns its error, so the other workers never wait for ever.

/// An all-reduce between threads: each call adds its statistics to a shared sum, waits for
/// every worker, and returns the sum. Statistics of different shapes make every worker's call
/// an error (as a careful transport would), rather than a wrong sum.
#[derive(Debug)]
struct ThreadSum {
    workers: usize,
    barrier: std::sync::Barrier,
    round: Mutex<Round>,
}

#[derive(Debug, Default)]
struct Round {
    shape: Option<[usize; 2]>,
    sum: Vec<f64>,
    mismatch: bool,
    calls: usize,
}

impl ThreadSum {
    fn new(workers: usize) -> Self {
        ThreadSum {
            workers,
            barrier: std::sync::Barrier::new(workers),
            round: Mutex::new(Round::default()),
        }
    }
}

impl StatsReducer for ThreadSum {
    fn sum(&self, statistics: Tensor<2>) -> Result<Tensor<2>, SegLossError> {
        let (shape, dtype, device) = (statistics.dims(), statistics.dtype(), statistics.device());
        let values = to_vec(statistics);
        {
            let mut round = self.round.lock().unwrap();
            round.calls += 1;
            match round.shape {
                None => {
                    round.shape = Some(shape);
                    round.sum = values;
                }
                Some(s) if s == shape => {
                    for (a, v) in round.sum.iter_mut().zip(values) {
                        *a += v;
                    }
                }
                Some(_) => round.mismatch = true,
            }
        }
        // Every worker has added its part...
        self.barrier.wait();
        let (sum, mismatch) = {
            let round = self.round.lock().unwrap();
            (round.sum.clone(), round.mismatch)
        };
        // ...every worker has read the sum: one of them clears it for the next collective...
        if self.barrier.wait().is_leader() {
            let mut round = self.round.lock().unwrap();
            let calls = round.calls;
            *round = Round {
                calls,
                ..Round::default()
            };
        }
        // ...before any worker adds to it again.
        self.barrier.wait();
        if mismatch {
            return Err(SegLossError::InvalidOption {
                name: "statistics",
                value: "shapes differ between workers".into(),
                allowed: "the same shape on every worker",
            });
        }
        let data = TensorData::new(sum, shape).convert_dtype(dtype);
        Ok(Tensor::from_data(data, (&device, dtype)))
    }

    fn workers(&self) -> usize {
        self.workers
    }
}

/// What a worker thread gives back: its loss value, or its error, or that it panicked.
type Outcome = Result<Result<f64, SegLossError>, String>;

/// Runs `worker(w, shared)` on `workers` threads sharing one [`ThreadSum`], and returns each
/// worker's outcome and the number of collectives each took part in (in all). Fails the test
/// if any worker is still running after two minutes (the calls take milliseconds): a worker
/// that left a collective leaves the others waiting in it, and the waiting threads are then
/// left behind.
fn run_workers<F>(workers: usize, worker: F) -> (Vec<Outcome>, usize)
where
    F: Fn(usize, &SharedStatistics) -> Result<Tensor<1>, SegLossError> + Send + Sync + 'static,
{
    use std::sync::mpsc;
    use std::time::{Duration, Instant};
    let reducer = Arc::new(ThreadSum::new(workers));
    let worker = Arc::new(worker);
    let (sender, receiver) = mpsc::channel();
    for w in 0..workers {
        let (sender, worker) = (sender.clone(), worker.clone());
        let shared = SharedStatistics::new(reducer.clone(), GradientReduction::Sum);
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                worker(w, &shared).map(|loss| to_vec(loss)[0])
            }))
            .map_err(|panic| {
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            });
            let _ = sender.send((w, outcome));
        });
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut outcomes: Vec<Option<Outcome>> = (0..workers).map(|_| None).collect();
    for _ in 0..workers {
        match receiver.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((w, outcome)) => outcomes[w] = Some(outcome),
            Err(_) => {
                let waiting: Vec<usize> = (0..workers).filter(|&w| outcomes[w].is_none()).collect();
                panic!(
                    "workers {waiting:?} are still waiting after two minutes: a worker left the collective"
                );
            }
        }
    }
    let calls = reducer.round.lock().unwrap().calls;
    (outcomes.into_iter().flatten().collect(), calls)
}

/// Three shards of a binary batch: `[2, 1, 6, 5]` logits and targets each, as host values.
fn binary_shards(seed: u64) -> Vec<(Vec<f64>, Vec<f64>)> {
    let mut rng = TestRng::new(seed);
    let n = 2 * 6 * 5;
    (0..3).map(|_| rng.logits_and_mask(n, 3.0, 0.3)).collect()
}

const SHARD: [usize; 4] = [2, 1, 6, 5];

/// The loss of the good shards alone (`good`), as one batch: what the good workers must get
/// when the bad one sends zeros.
fn binary_reference(shards: &[(Vec<f64>, Vec<f64>)], good: &[usize], loss: &Loss) -> f64 {
    let device = f64_device();
    let x: Vec<f64> = good.iter().flat_map(|&w| shards[w].0.clone()).collect();
    let y: Vec<f64> = good.iter().flat_map(|&w| shards[w].1.clone()).collect();
    let dims = [2 * good.len(), 1, 6, 5];
    let x = tensor(&x, dims, &device, DType::F64);
    let y = tensor(&y, dims, &device, DType::F64);
    to_vec(loss.compute(x, y).unwrap())[0]
}

/// The outcomes of a run where worker `bad` failed: its error is the `expected` one, and
/// every other worker `w` finished with the value `reference(w)`.
fn assert_outcomes(
    what: &str,
    outcomes: &[Outcome],
    bad: usize,
    expected: fn(&SegLossError) -> bool,
    reference: impl Fn(usize) -> f64,
) {
    for (w, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Err(panic) => panic!("{what}: worker {w} panicked: {panic}"),
            Ok(Err(e)) if w == bad => assert!(expected(e), "{what}: worker {w}: {e}"),
            Ok(Ok(v)) if w == bad => panic!("{what}: worker {w} should have failed, gave {v}"),
            Ok(Err(e)) => panic!("{what}: good worker {w} failed: {e}"),
            Ok(Ok(v)) => assert_close(&[*v], &[reference(w)], 1e-9, 1.0, &format!("{what}, {w}")),
        }
    }
}

#[test]
fn a_bad_shard_does_not_leave_the_other_workers_waiting() {
    let shards = Arc::new(binary_shards(41));
    let dice = Loss::SoftDice(
        SoftDiceConfig::new()
            .with_aggregation(Aggregation::Batch)
            .with_execution(DEVICE),
    );
    let reference = binary_reference(&shards, &[0, 2], &dice);
    // Worker 1's targets have another shape than its logits.
    let (s, loss) = (shards.clone(), dice.clone());
    let (outcomes, calls) = run_workers(3, move |w, shared| {
        let device = f64_device();
        let x = tensor(&s[w].0, SHARD, &device, DType::F64);
        let y = if w == 1 {
            tensor(&s[w].1[..30], [1, 1, 6, 5], &device, DType::F64)
        } else {
            tensor(&s[w].1, SHARD, &device, DType::F64)
        };
        loss.compute_shared(x, y, shared)
    });
    let mismatch = |e: &SegLossError| matches!(e, SegLossError::ShapeMismatch { .. });
    assert_outcomes("targets' shape", &outcomes, 1, mismatch, |_| reference);
    assert_eq!(calls, 3, "one collective per worker");

    // Worker 1 has a bad option: a negative smoothing term.
    let s = shards.clone();
    let (outcomes, calls) = run_workers(3, move |w, shared| {
        let device = f64_device();
        let smooth = if w == 1 { -1.0 } else { 1e-5 };
        let loss = Loss::SoftDice(
            SoftDiceConfig::new()
                .with_aggregation(Aggregation::Batch)
                .with_execution(DEVICE)
                .with_smooth_nr(smooth),
        );
        let x = tensor(&s[w].0, SHARD, &device, DType::F64);
        let y = tensor(&s[w].1, SHARD, &device, DType::F64);
        loss.compute_shared(x, y, shared)
    });
    let invalid = |e: &SegLossError| matches!(e, SegLossError::InvalidParameter { .. });
    assert_outcomes("negative smoothing", &outcomes, 1, invalid, |_| reference);
    assert_eq!(calls, 3);
}

/// A compound with two shared terms and a host term that reads the targets: a worker whose
/// targets the host term rejects (a Lovász loss given 0.5) finds out before the first
/// collective, sends zeros to both, and returns the error.
#[test]
fn a_compound_checks_every_term_before_its_collectives() {
    let mut shards = binary_shards(43);
    shards[0].1[7] = 0.5;
    let shards = Arc::new(shards);
    let batch = Aggregation::Batch;
    let config = CompoundConfig::new()
        .with_term(
            1.0,
            Loss::SoftDice(
                SoftDiceConfig::new()
                    .with_aggregation(batch)
                    .with_execution(DEVICE),
            ),
        )
        .with_term(1.0, Loss::LovaszHinge(LovaszHingeConfig::new()))
        .with_term(
            0.5,
            Loss::Tversky(
                TverskyConfig::new()
                    .with_aggregation(batch)
                    .with_execution(DEVICE),
            ),
        );
    // The good workers' value: the shared terms over shards 1 and 2 (what they sum), the
    // Lovász term over each worker's own shard.
    let device = f64_device();
    let lovasz = |w: usize| {
        let x = tensor(&shards[w].0, SHARD, &device, DType::F64);
        let y = tensor(&shards[w].1, SHARD, &device, DType::F64);
        to_vec(lovasz_hinge(x, y, &LovaszHingeConfig::new()).unwrap())[0]
    };
    let [dice, tversky] = [&config.terms[0].loss, &config.terms[2].loss]
        .map(|loss| binary_reference(&shards, &[1, 2], loss));
    let (s, c) = (shards.clone(), config.clone());
    let (outcomes, calls) = run_workers(3, move |w, shared| {
        let device = f64_device();
        let x = tensor(&s[w].0, SHARD, &device, DType::F64);
        let y = tensor(&s[w].1, SHARD, &device, DType::F64);
        compound_shared(x, y, &c, shared)
    });
    assert_eq!(calls, 6, "two collectives per worker");
    let invalid = |e: &SegLossError| matches!(e, SegLossError::InvalidTargets { .. });
    let reference = |w| dice + lovasz(w) + 0.5 * tversky;
    assert_outcomes("compound", &outcomes, 0, invalid, reference);
}

/// Multiclass: the bad worker's class indices have another shape than its logits, in an
/// nnU-Net Dice + CE; its class count is right, so it sends zeros of the agreed `[3, C]`.
#[test]
fn a_bad_multiclass_shard_sends_zeros_of_the_agreed_shape() {
    let mut rng = TestRng::new(47);
    let (x, dims, y) = class_inputs(&mut rng);
    let per_image = dims[1] * dims[2] * dims[3];
    let labels: Vec<i64> = y
        .indices()
        .into_data()
        .convert::<i64>()
        .try_into_vec()
        .unwrap();
    let pixels = dims[2] * dims[3];
    let batch = Aggregation::Batch;
    let dice = MulticlassLoss::Overlap(
        MulticlassOverlapConfig::new()
            .with_aggregation(batch)
            .with_execution(DEVICE)
            .with_ignore_index(Some(255)),
    );
    let gdice = MulticlassLoss::GeneralizedDice(
        GeneralizedDiceConfig::new()
            .with_aggregation(batch)
            .with_execution(DEVICE)
            .with_include_background(false)
            .with_ignore_index(Some(255)),
    );
    let config = MulticlassCompoundConfig::new()
        .with_term(1.0, dice.clone())
        .with_term(
            1.0,
            MulticlassLoss::Focal(MulticlassFocalConfig::new().with_gamma(0.0)),
        )
        .with_term(1.0, gdice.clone());
    // Shards of 2 images: workers 0, 1, 2 take images 0-1, 2-3, 4-5.
    let device = f64_device();
    let shard = move |w: usize, images: usize| {
        let x = tensor(
            &x[2 * w * per_image..(2 * w + images) * per_image],
            [images, dims[1], dims[2], dims[3]],
            &device,
            DType::F64,
        );
        let y = Tensor::<4, Int>::from_data(
            TensorData::new(
                labels[2 * w * pixels..(2 * w + images) * pixels].to_vec(),
                [images, 1, dims[2], dims[3]],
            ),
            &device,
        );
        (x, y)
    };
    let shard = Arc::new(shard);
    // The good workers 0 and 2: the batch terms over images 0-1 and 4-5, the cross-entropy
    // over each worker's own images.
    let reference = |w: usize| {
        let (x0, y0) = shard(0, 2);
        let (x2, y2) = shard(2, 2);
        let x = Tensor::cat(vec![x0, x2], 0);
        let y = Tensor::cat(vec![y0, y2], 0);
        let batch_terms = to_vec(dice.compute(x.clone(), y.clone()).unwrap())[0]
            + to_vec(gdice.compute(x, y).unwrap())[0];
        let (xw, yw) = shard(w, 2);
        let ce = MulticlassFocalConfig::new().with_gamma(0.0);
        batch_terms + to_vec(multiclass_focal(xw, yw, &ce).unwrap())[0]
    };
    let (s, c) = (shard.clone(), config.clone());
    let (outcomes, calls) = run_workers(3, move |w, shared| {
        let (x, y) = s(w, 2);
        // Worker 1's indices: one image for its two images of logits.
        let y = if w == 1 { y.narrow(0, 0, 1) } else { y };
        multiclass_compound_shared(x, y, &c, shared)
    });
    assert_eq!(calls, 6, "two collectives per worker");
    let mismatch = |e: &SegLossError| matches!(e, SegLossError::ShapeMismatch { .. });
    assert_outcomes("multiclass compound", &outcomes, 1, mismatch, reference);
}

#[test]
fn a_reducer_that_answers_on_another_device_is_an_error() {
    #[derive(Debug)]
    struct Elsewhere(Device);
    impl StatsReducer for Elsewhere {
        fn sum(&self, statistics: Tensor<2>) -> Result<Tensor<2>, SegLossError> {
            Ok(statistics.to_device(&self.0))
        }
        fn workers(&self) -> usize {
            1
        }
    }
    let devices = common::cpu_devices();
    for (a, b) in [(0, 1), (1, 0)] {
        let (Some((_, here)), Some((name, there))) = (devices.get(a), devices.get(b)) else {
            return; // one CPU backend only in this build
        };
        let x = tensor(&[0.5, -1.0, 2.0, 0.0], [1, 1, 2, 2], here, DType::F32);
        let y = tensor(&[1.0, 0.0, 1.0, 0.0], [1, 1, 2, 2], here, DType::F32);
        let shared =
            SharedStatistics::new(Arc::new(Elsewhere(there.clone())), GradientReduction::Sum);
        let loss = Loss::SoftDice(SoftDiceConfig::new().with_aggregation(Aggregation::Batch));
        let err = loss.compute_shared(x, y, &shared).unwrap_err();
        assert!(
            matches!(err, SegLossError::DeviceMismatch { .. }),
            "sums on {name}: {err}"
        );
    }
}

/// The module form: a loss module `with_shared` gives what the `*_shared` function gives, so a
/// model can hold its data-parallel loss as a field (binary and multiclass; a compound module
/// runs the same `compute_shared` as `compound_shared`, tested above).
#[test]
fn modules_with_shared_statistics_are_exact_across_workers() {
    let batch = Aggregation::Batch;
    let mut rng = TestRng::new(41);
    let (x, dims, y) = binary_inputs(&mut rng);
    let dice = SoftDiceConfig::new()
        .with_aggregation(batch)
        .with_execution(DEVICE);
    let module = dice.init().unwrap();
    check(
        "SoftDiceLoss::with_shared",
        &x,
        dims,
        y,
        &move |x, y, shared| {
            let Targets::Binary(y) = y else {
                unreachable!()
            };
            match shared {
                Some(s) => module.clone().with_shared(s.clone()).try_forward(x, y),
                None => module.try_forward(x, y),
            }
        },
    );
    let (x, dims, y) = class_inputs(&mut rng);
    let module = MulticlassOverlapConfig::new()
        .with_aggregation(batch)
        .with_execution(DEVICE)
        .init()
        .unwrap();
    check(
        "MulticlassOverlapLoss::with_shared",
        &x,
        dims,
        y,
        &move |x, y, shared| {
            let Targets::Classes(y) = y else {
                unreachable!()
            };
            match shared {
                Some(s) => module.clone().with_shared(s.clone()).try_forward(x, y),
                None => module.try_forward(x, y),
            }
        },
    );
}
