//! The cube row operations (`segloss::cube`) on wgpu against host references: the radix sort
//! against a stable comparison sort (`f32::total_cmp`, descending), the prefix sums against a
//! running sum. Run on Mesa's lavapipe in CI.
#![cfg(feature = "wgpu")]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use burn::backend::fusion::observer::{BlockOperations, FusionObservation, FusionObserver};
use burn::backend::ir::OperationIr;
use burn::tensor::{Device, Int, Tensor, TensorData};
use segloss::Aggregation;
use segloss::SegLossError;
use segloss::cube::{cumsum_rows, lovasz_weights, sort_rows_descending};
use segloss::losses::{LovaszHingeConfig, LovaszSigmoidConfig, lovasz_hinge, lovasz_sigmoid};

/// A small deterministic generator (xorshift64*), so every case is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One test at a time in this binary: the fusion observer of
/// [`lovasz_on_wgpu_queues_everything_and_reads_nothing`] sees every operation of the process.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn device() -> Option<Device> {
    common::wgpu_device()
}

/// Sorts `keys` (`rows` rows) on the device and checks the indices and the sorted bits against
/// a stable descending comparison sort of each row.
fn check_sort(device: &Device, keys: Vec<f32>, rows: usize, what: &str) {
    let len = keys.len() / rows;
    let tensor = Tensor::<2>::from_data(TensorData::new(keys.clone(), [rows, len]), device);
    let (sorted, indices) = sort_rows_descending(tensor).unwrap();
    let sorted: Vec<f32> = sorted.into_data().try_to_vec::<f32>().unwrap();
    let indices: Vec<i64> = indices
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .unwrap();
    for (r, row) in keys.chunks(len).enumerate() {
        let mut order: Vec<usize> = (0..len).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        for (k, &i) in order.iter().enumerate() {
            let at = r * len + k;
            assert_eq!(
                indices[at], i as i64,
                "{what}: row {r}, rank {k}: index {} instead of {i}",
                indices[at]
            );
            assert_eq!(
                sorted[at].to_bits(),
                row[i].to_bits(),
                "{what}: row {r}, rank {k}: key {} instead of {}",
                sorted[at],
                row[i]
            );
        }
    }
}

#[test]
fn radix_sort_matches_a_stable_descending_sort() {
    let _serial = serial();
    let Some(device) = device() else { return };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // (rows, len): single elements, two, a prime, one sort block (3840) and one more, one
    // scan block (4096) and one more, several rows of several blocks, and a row longer than
    // 2^20.
    for (rows, len) in [
        (1, 1),
        (3, 1),
        (2, 2),
        (4, 97),
        (2, 3840),
        (2, 3841),
        (2, 4096),
        (3, 4097),
        (5, 10_007),
        (1, (1 << 20) + 3),
    ] {
        let keys: Vec<f32> = (0..rows * len)
            .map(|_| (rng.below(1 << 24) as f32 / (1 << 23) as f32) - 1.0)
            .collect();
        check_sort(&device, keys, rows, &format!("random [{rows}, {len}]"));
    }
}

#[test]
fn radix_sort_keeps_ties_in_index_order() {
    let _serial = serial();
    let Some(device) = device() else { return };
    let mut rng = Rng(7);
    for (rows, len, distinct) in [(2, 9000, 3), (3, 5000, 1), (1, 70_001, 17)] {
        let keys: Vec<f32> = (0..rows * len)
            .map(|_| rng.below(distinct) as f32 * 0.5)
            .collect();
        check_sort(
            &device,
            keys,
            rows,
            &format!("ties [{rows}, {len}] of {distinct}"),
        );
    }
}

#[test]
fn radix_sort_orders_edge_values() {
    let _serial = serial();
    let Some(device) = device() else { return };
    let edges = [
        0.0,
        -0.0,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        f32::from_bits(1), // the smallest subnormal
        -f32::from_bits(1),
        f32::from_bits(0x007F_FFFF), // the largest subnormal
        1.0,
        -1.0,
        f32::MAX,
        f32::MIN,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    let mut rng = Rng(11);
    let keys: Vec<f32> = (0..3 * 5003)
        .map(|_| edges[rng.below(edges.len() as u64) as usize])
        .collect();
    check_sort(&device, keys, 3, "edge values");
}

/// The sort's block (15 keys for each of 256 units) and the scans' block (16 for each of 256)
/// in the kernels.
const SORT_BLOCK: usize = 3840;
const SCAN_BLOCK: usize = 4096;

/// `lovasz_grad` of one row (DESIGN.md: `G = sum(g)`, `I_k = G - cumsum(g)_k`,
/// `U_k = G + cumsum(1 - g)_k`, `J_k = 1 - I_k / U_k`, weights `J_k - J_(k-1)`), in the order
/// of a stable descending sort of `errors`, at each pixel's own position. Each difference is
/// taken exactly, as integers over `U_k U_(k-1)`, and rounded once: the f64 difference of two
/// `J`s near 1 has an error of about `1e-16`, a relative `2e-3` on the last weights of a row
/// of 4M pixels (about `1 / U^2 = 6e-14`).
fn lovasz_grad(errors: &[f32], labels: &[f32]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..errors.len()).collect();
    order.sort_by(|&a, &b| errors[b].total_cmp(&errors[a]));
    let total = labels.iter().filter(|&&g| g == 1.0).count() as i128;
    let (mut cum_fg, mut cum_bg) = (0i128, 0i128);
    // J_(k-1) = numerator / denominator: J_(-1) = 0 / 1.
    let (mut numerator, mut denominator) = (0i128, 1i128);
    let mut weights = vec![f64::NAN; errors.len()];
    for &i in &order {
        let g = i128::from(labels[i] == 1.0);
        cum_fg += g;
        cum_bg += 1 - g;
        let (intersection, union) = (total - cum_fg, total + cum_bg);
        // J_k = 1 - I_k / U_k = (U_k - I_k) / U_k.
        let (n, d) = (union - intersection, union);
        weights[i] = (n * denominator - numerator * d) as f64 / (d * denominator) as f64;
        (numerator, denominator) = (n, d);
    }
    weights
}

/// The weights of `lovasz_weights` on the device for `rows` rows of `errors` and `labels`,
/// each within `1e-3` of its own value in the exact reference.
fn check_weights(device: &Device, errors: &[f32], labels: &[f32], rows: usize, what: &str) {
    let len = errors.len() / rows;
    let tensor =
        |v: &[f32]| Tensor::<2>::from_data(TensorData::new(v.to_vec(), [rows, len]), device);
    let weights: Vec<f32> = lovasz_weights(tensor(errors), tensor(labels))
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    for (r, (e, g)) in errors.chunks(len).zip(labels.chunks(len)).enumerate() {
        for (i, expected) in lovasz_grad(e, g).into_iter().enumerate() {
            let got = f64::from(weights[r * len + i]);
            assert!(
                (got - expected).abs() <= 1e-3 * expected.abs(),
                "{what}: row {r}, pixel {i}: weight {got} on the device, {expected} exactly"
            );
        }
    }
}

/// A launch whose rows end just before, at and just after a block boundary of the sort
/// (3840 keys) and of the scans (4096), in several rows (so rows also start mid-grid): the
/// sort against a stable host sort, and the Lovász weights (a sort and a scan) against the
/// exact reference.
#[test]
fn row_operations_are_exact_around_block_boundaries() {
    let _serial = serial();
    let Some(device) = device() else { return };
    let mut rng = Rng(17);
    let rows = 3;
    for block in [SORT_BLOCK, SCAN_BLOCK] {
        for len in [
            2 * block - 1,
            2 * block,
            2 * block + 1,
            3 * block - 1,
            3 * block,
            3 * block + 1,
        ] {
            let keys: Vec<f32> = (0..rows * len)
                .map(|_| rng.below(1 << 12) as f32 / 1024.0 - 2.0)
                .collect();
            let labels: Vec<f32> = (0..rows * len).map(|_| rng.below(2) as f32).collect();
            let what = format!("[{rows}, {len}]");
            check_sort(&device, keys.clone(), rows, &what);
            check_weights(&device, &keys, &labels, rows, &what);
        }
    }
}

/// One row of 2^22 distinct errors, half of them labelled: 2^21 foreground pixels, where the
/// late weights (down to `1 / U^2`, about `6e-14`) are far below f32's spacing near 1 and a
/// difference of two Jaccard values in f32 gives noise. Every weight is within `1e-3` of its
/// own value.
#[test]
fn lovasz_weights_keep_their_precision_on_a_row_of_4m_pixels() {
    let _serial = serial();
    let Some(device) = device() else { return };
    let mut rng = Rng(19);
    let len = 1usize << 22;
    // The errors k / 2^22 (all exact and distinct, so the order is unambiguous), shuffled;
    // the first half of another shuffle labelled.
    let shuffled = |rng: &mut Rng| {
        let mut v: Vec<usize> = (0..len).collect();
        for i in (1..len).rev() {
            v.swap(i, rng.below(i as u64 + 1) as usize);
        }
        v
    };
    let errors: Vec<f32> = shuffled(&mut rng)
        .into_iter()
        .map(|k| k as f32 / len as f32)
        .collect();
    let mut labels = vec![0.0f32; len];
    for i in shuffled(&mut rng).into_iter().take(len / 2) {
        labels[i] = 1.0;
    }
    check_weights(&device, &errors, &labels, 1, "[1, 2^22]");
}

/// Inputs whose buffers would pass the kernels' 32-bit indices are refused before anything
/// is launched. The inputs are broadcast views of one element (nothing of their size is
/// allocated, and nothing runs on them).
#[test]
fn row_operations_refuse_inputs_past_32_bit_indices() {
    let _serial = serial();
    let Some(device) = device() else { return };
    let too_large = |result: Result<(), SegLossError>, what: &str| match result {
        Err(SegLossError::TooLarge { count, limit, .. }) => {
            assert_eq!((count, limit), (1 << 31, i32::MAX as u64), "{what}");
        }
        other => panic!("{what}: {other:?} instead of TooLarge"),
    };
    let float = |shape: [usize; 2]| Tensor::<2>::zeros([1, 1], &device).expand(shape);
    let int = |shape: [usize; 2]| Tensor::<2, Int>::zeros([1, 1], &device).expand(shape);
    // 2^31 elements in two rows.
    let rows = [2, 1 << 30];
    too_large(sort_rows_descending(float(rows)).map(|_| ()), "sort");
    too_large(cumsum_rows(int(rows)).map(|_| ()), "cumsum");
    too_large(
        lovasz_weights(float(rows), float(rows)).map(|_| ()),
        "weights",
    );
    // 2^27 rows of one element: 2^31 digit counts in the sort (16 per row), none in the
    // prefix sums.
    let short = [1 << 27, 1];
    too_large(sort_rows_descending(float(short)).map(|_| ()), "short sort");
    too_large(
        lovasz_weights(float(short), float(short)).map(|_| ()),
        "short weights",
    );
    device.sync().unwrap();
}

#[test]
fn row_prefix_sums_are_exact() {
    let _serial = serial();
    let Some(device) = device() else { return };
    let mut rng = Rng(3);
    for (rows, len, most) in [
        (1, 1, 5),
        (2, 2, 5),
        (3, 97, 1000),
        (2, 4096, 2),
        (4, 4097, 2),
        (2, 10_007, 100),
        (1, (1 << 20) + 3, 2),
    ] {
        let values: Vec<i32> = (0..rows * len).map(|_| rng.below(most) as i32).collect();
        let tensor =
            Tensor::<2, Int>::from_data(TensorData::new(values.clone(), [rows, len]), &device);
        let sums: Vec<i64> = cumsum_rows(tensor)
            .unwrap()
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap();
        for (r, row) in values.chunks(len).enumerate() {
            let mut running = 0i64;
            for (k, &v) in row.iter().enumerate() {
                running += i64::from(v);
                assert_eq!(
                    sums[r * len + k],
                    running,
                    "[{rows}, {len}]: row {r}, column {k}"
                );
            }
        }
    }
}

#[test]
fn row_operations_refuse_cpu_tensors_and_empty_rows() {
    for (_, device) in common::cpu_devices() {
        let keys = Tensor::<2>::from_floats([[1.0, 2.0]], &device);
        assert!(matches!(
            sort_rows_descending(keys),
            Err(SegLossError::InvalidOption { name: "keys", .. })
        ));
        let values = Tensor::<2, Int>::from_ints([[1, 2]], &device);
        assert!(matches!(
            cumsum_rows(values),
            Err(SegLossError::InvalidOption { name: "values", .. })
        ));
    }
    let _serial = serial();
    let Some(device) = device() else { return };
    let empty = Tensor::<2>::zeros([2, 0], &device);
    assert!(matches!(
        sort_rows_descending(empty),
        Err(SegLossError::EmptyTensor { name: "keys", .. })
    ));
}

/// Watches the fusion server: operations registered, uploads among them, blocks run.
#[derive(Default)]
struct Watch {
    registered: AtomicUsize,
    uploads: AtomicUsize,
    blocks: AtomicUsize,
}

impl FusionObserver for Watch {
    fn registered(&self, operation: &OperationIr) {
        self.registered.fetch_add(1, Ordering::SeqCst);
        if matches!(operation, OperationIr::Init(_)) {
            self.uploads.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn block_starts(&self, _: BlockOperations<'_>) {
        self.blocks.fetch_add(1, Ordering::SeqCst);
    }
    fn block_ran(&self) {}
}

/// The Lovász device path makes no host round trip: over a whole forward and backward pass
/// on wgpu, the fusion server registers no upload (`OperationIr::Init`; the host-sorting path
/// uploads its weights, and this test fails on it), and every operation of the loss is queued
/// on the device (registered there; blocks of them run when fusion decides or the result is
/// read). The reads cannot be counted from outside burn; that the path makes none is by
/// structure: `device_jaccard_weights` takes and returns device tensors, and calls only burn
/// tensor operations and `segloss::cube`'s two kernels-only operations.
#[test]
fn lovasz_on_wgpu_queues_everything_and_uploads_nothing() {
    let _serial = serial();
    let Some(device) = device() else { return };
    let mut rng = Rng(5);
    let (n, p) = (2, 3000);
    let x: Vec<f32> = (0..n * p)
        .map(|_| rng.below(2000) as f32 / 500.0 - 2.0)
        .collect();
    let y: Vec<f32> = (0..n * p).map(|_| rng.below(2) as f32).collect();
    let x = Tensor::<2>::from_data(TensorData::new(x, [n, p]), &device.clone().autodiff())
        .require_grad();
    let y = Tensor::<2>::from_data(TensorData::new(y, [n, p]), &device.clone().autodiff());
    // The uploads of the inputs, and whatever earlier tests left queued, are done before
    // watching.
    let _ = (x.clone().into_data(), y.clone().into_data());
    device.sync().unwrap();
    let watch = Arc::new(Watch::default());
    let observation = FusionObservation::new(watch.clone());
    for per_image in [true, false] {
        let config = LovaszHingeConfig::new().with_aggregation(if per_image {
            Aggregation::PerImage
        } else {
            Aggregation::Batch
        });
        let loss = lovasz_hinge(x.clone(), y.clone(), &config).unwrap();
        let grads = loss.backward();
        let _ = x.grad(&grads).unwrap().into_data();
    }
    let (registered, uploads, blocks) = (
        watch.registered.load(Ordering::SeqCst),
        watch.uploads.load(Ordering::SeqCst),
        watch.blocks.load(Ordering::SeqCst),
    );
    drop(observation);
    assert!(
        registered > 0 && blocks > 0,
        "the fusion server was watched"
    );
    assert_eq!(uploads, 0, "the losses and their gradients upload nothing");
}

/// Loss and input gradient of a binary Lovász loss by name, read to the host.
fn binary_lovasz(
    loss: &str,
    per_image: bool,
    x: &[f64],
    y: &[f64],
    shape: [usize; 4],
    device: &Device,
) -> (f64, Vec<f64>) {
    let device = device.clone().autodiff();
    let x = common::tensor(x, shape, &device, burn::tensor::DType::F32).require_grad();
    let y = common::tensor(y, shape, &device, burn::tensor::DType::F32);
    let aggregation = if per_image {
        Aggregation::PerImage
    } else {
        Aggregation::Batch
    };
    let value = match loss {
        "lovasz_hinge" => lovasz_hinge(
            x.clone(),
            y,
            &LovaszHingeConfig::new().with_aggregation(aggregation),
        ),
        _ => lovasz_sigmoid(
            x.clone(),
            y,
            &LovaszSigmoidConfig::new().with_aggregation(aggregation),
        ),
    }
    .unwrap();
    let grads = value.backward();
    let grad = x.grad(&grads).unwrap().into_data().convert::<f64>();
    (
        value
            .into_data()
            .convert::<f64>()
            .try_to_vec::<f64>()
            .unwrap()[0],
        grad.try_to_vec::<f64>().unwrap(),
    )
}

#[test]
fn lovasz_on_wgpu_matches_the_host_kernels_on_images_of_several_blocks() {
    let _serial = serial();
    let Some(device) = device() else { return };
    let Some((_, host)) = common::cpu_devices().into_iter().next() else {
        return;
    };
    let mut rng = Rng(13);
    // 2 images of 96 x 96 = 9216 pixels (three blocks of the sort), logits on a coarse grid
    // so that many errors tie. The hinge's grid is symmetric: its errors `1 - x (2y - 1)` of
    // `(x, y) = (a, 1)` and `(-a, 0)` are equal and exact, so labels tie across classes. The
    // sigmoid's errors `|y - sigmoid(x)|` of those two are equal only in exact arithmetic,
    // and each backend's sigmoid rounds them its own way (the order of such a pair, and so
    // its pixels' gradients, legitimately differs), so its grid is offset to have no such
    // pair: its ties are pixels of equal `(x, y)`, bit-identical on each backend.
    let shape = [2, 1, 96, 96];
    let count = shape.iter().product::<usize>();
    let grid: Vec<f64> = (0..count).map(|_| rng.below(41) as f64 / 10.0).collect();
    let y: Vec<f64> = (0..count).map(|_| rng.below(2) as f64).collect();
    for loss in ["lovasz_hinge", "lovasz_sigmoid"] {
        let offset = if loss == "lovasz_hinge" { 2.0 } else { 1.97 };
        let x: Vec<f64> = grid.iter().map(|g| g - offset).collect();
        for per_image in [true, false] {
            let (v_host, g_host) = binary_lovasz(loss, per_image, &x, &y, shape, &host);
            let (v_gpu, g_gpu) = binary_lovasz(loss, per_image, &x, &y, shape, &device);
            assert!(
                (v_host - v_gpu).abs() <= 1e-4 * v_host.abs().max(1.0),
                "{loss} per_image={per_image}: {v_gpu} on wgpu, {v_host} on the host"
            );
            // Relative to the largest magnitude: the gradients scale as 1 / pixels.
            let largest = g_host.iter().fold(0.0f64, |m, g| m.max(g.abs()));
            assert!(
                largest > 0.0,
                "{loss} per_image={per_image}: a zero gradient"
            );
            for (i, (a, b)) in g_host.iter().zip(&g_gpu).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4 * largest,
                    "{loss} per_image={per_image}: gradient {i}: {b} on wgpu, {a} on the host \
                     (largest {largest})"
                );
            }
        }
    }
}

#[test]
fn a_non_binary_target_makes_the_lovasz_loss_nan_on_wgpu() {
    let _serial = serial();
    let Some(device) = device() else { return };
    let x = Tensor::<2>::from_floats([[0.5, -1.0, 2.0, 0.0]], &device);
    let y = Tensor::<2>::from_floats([[1.0, 0.5, 0.0, 1.0]], &device);
    for per_image in [true, false] {
        let aggregation = if per_image {
            Aggregation::PerImage
        } else {
            Aggregation::Batch
        };
        let config = LovaszHingeConfig::new().with_aggregation(aggregation);
        let hinge: f32 = lovasz_hinge(x.clone(), y.clone(), &config)
            .unwrap()
            .into_scalar();
        let config = LovaszSigmoidConfig::new().with_aggregation(aggregation);
        let sigmoid: f32 = lovasz_sigmoid(x.clone(), y.clone(), &config)
            .unwrap()
            .into_scalar();
        assert!(hinge.is_nan() && sigmoid.is_nan(), "{hinge}, {sigmoid}");
    }
}
