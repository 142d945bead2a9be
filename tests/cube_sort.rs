//! The cube row operations (`segloss::cube`) on wgpu against host references: the radix sort
//! against a stable comparison sort (`f32::total_cmp`, descending), the prefix sums against a
//! running sum. Run on Mesa's lavapipe in CI.
#![cfg(feature = "wgpu")]

mod common;

use burn::tensor::{Device, Int, Tensor, TensorData};
use segloss::SegLossError;
use segloss::cube::{cumsum_rows, sort_rows_descending};

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
    let Some(device) = device() else { return };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // (rows, len): single elements, two, a prime, one block (4096) and one more, several rows
    // of several blocks, and a row longer than 2^20.
    for (rows, len) in [
        (1, 1),
        (3, 1),
        (2, 2),
        (4, 97),
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

#[test]
fn row_prefix_sums_are_exact() {
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
    let Some(device) = device() else { return };
    let empty = Tensor::<2>::zeros([2, 0], &device);
    assert!(matches!(
        sort_rows_descending(empty),
        Err(SegLossError::EmptyTensor { name: "keys", .. })
    ));
}
