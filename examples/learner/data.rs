//! Seeded synthetic masks: noisy grey-level images with one to three ellipses on a sloped
//! background. The target is the union of the ellipses.

use std::f64::consts::{PI, TAU};

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{Device, Tensor, TensorData};

use crate::rng::Rng;

/// One image and its mask, `size * size` values each, row-major.
#[derive(Clone, Debug)]
pub struct Sample {
    image: Vec<f32>,
    mask: Vec<f32>,
}

/// `count` samples of `size x size` pixels.
pub fn generate(count: usize, size: usize, rng: &mut Rng) -> Vec<Sample> {
    (0..count).map(|_| sample(size, rng)).collect()
}

fn sample(size: usize, rng: &mut Rng) -> Sample {
    let s = size as f64;
    let objects = 1 + (rng.next_u64() % 3) as usize;
    // (cx, cy, semi-axis a, semi-axis b, rotation): small and large objects alike, so that
    // Dice (which favours large objects) and Hamming (which barely sees small ones) differ.
    let ellipses: Vec<[f64; 5]> = (0..objects)
        .map(|_| {
            let a = rng.range(0.06, 0.25) * s;
            let b = a * rng.range(0.5, 1.0);
            [
                rng.range(a, s - a),
                rng.range(a, s - a),
                a,
                b,
                rng.range(0.0, PI),
            ]
        })
        .collect();
    let inside = |x: f64, y: f64| {
        ellipses.iter().any(|&[cx, cy, a, b, rotation]| {
            let (sin, cos) = rotation.sin_cos();
            let (dx, dy) = (x - cx, y - cy);
            let (u, v) = (dx * cos + dy * sin, -dx * sin + dy * cos);
            (u / a).powi(2) + (v / b).powi(2) <= 1.0
        })
    };

    // A background slope and noise of random strength: a plain threshold on the intensity
    // is not enough, so the network has to use the neighbourhood of each pixel.
    let slope = rng.range(-0.6, 0.6);
    let angle = rng.range(0.0, TAU);
    let contrast = rng.range(0.8, 1.6);
    let noise = rng.range(0.3, 0.7);
    let mut image = Vec::with_capacity(size * size);
    let mut mask = Vec::with_capacity(size * size);
    for row in 0..size {
        for col in 0..size {
            let (y, x) = (row as f64 + 0.5, col as f64 + 0.5);
            let fg = inside(x, y);
            let ramp = (x * angle.cos() + y * angle.sin()) / s - 0.5;
            let value = slope * ramp + if fg { contrast } else { 0.0 } + noise * rng.normal();
            image.push((value - 0.3) as f32);
            mask.push(f32::from(u8::from(fg)));
        }
    }
    Sample { image, mask }
}

/// A batch: images and their 0/1 masks, both `[N, 1, H, W]`.
#[derive(Clone, Debug)]
pub struct MaskBatch {
    pub images: Tensor<4>,
    pub masks: Tensor<4>,
}

/// Stacks [`Sample`]s on the device burn-train asks for (the autodiff device for training,
/// the plain one for validation).
pub struct MaskBatcher {
    pub size: usize,
}

impl Batcher<Sample, MaskBatch> for MaskBatcher {
    fn batch(&self, items: Vec<Sample>, device: &Device) -> MaskBatch {
        let shape = [items.len(), 1, self.size, self.size];
        let (images, masks): (Vec<Vec<f32>>, Vec<Vec<f32>>) =
            items.into_iter().map(|s| (s.image, s.mask)).unzip();
        MaskBatch {
            images: Tensor::from_data(TensorData::new(images.concat(), shape), device),
            masks: Tensor::from_data(TensorData::new(masks.concat(), shape), device),
        }
    }
}
