//! Seeded synthetic masks: noisy grey-level images with one to three ellipses on a sloped
//! background. The binary target is the union of the ellipses; with `C >= 2` classes each
//! ellipse is of a class in `1..C`, told apart by its intensity (class 1 brighter than the
//! background, class 2 darker, ...), and the target is the class of each pixel's ellipse (the
//! last one drawn where they overlap), 0 elsewhere.

use std::f64::consts::{PI, TAU};

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::rng::Rng;

/// One image and its class map, `size * size` values each, row-major.
#[derive(Clone, Debug)]
pub struct Sample {
    image: Vec<f32>,
    labels: Vec<u8>,
}

/// `count` samples of `size x size` pixels with `classes` classes (1: binary masks).
pub fn generate(count: usize, size: usize, classes: usize, rng: &mut Rng) -> Vec<Sample> {
    (0..count).map(|_| sample(size, classes, rng)).collect()
}

/// The intensity of class `k`'s objects, in units of the image's contrast: `+1, -1, +2, -2,
/// ...` for classes `1, 2, 3, 4, ...` (0 for the background).
fn level(k: u8) -> f64 {
    let magnitude = f64::from(k.div_ceil(2));
    if k % 2 == 1 { magnitude } else { -magnitude }
}

fn sample(size: usize, classes: usize, rng: &mut Rng) -> Sample {
    let s = size as f64;
    let objects = 1 + (rng.next_u64() % 3) as usize;
    // (cx, cy, semi-axis a, semi-axis b, rotation) and the class: small and large objects
    // alike, so that Dice (which favours large objects) and Hamming (which barely sees small
    // ones) differ. The binary data draws no class, so it stays the same sequence of images.
    let ellipses: Vec<([f64; 5], u8)> = (0..objects)
        .map(|_| {
            let a = rng.range(0.06, 0.25) * s;
            let b = a * rng.range(0.5, 1.0);
            let ellipse = [
                rng.range(a, s - a),
                rng.range(a, s - a),
                a,
                b,
                rng.range(0.0, PI),
            ];
            let class = if classes >= 2 {
                1 + (rng.next_u64() % (classes as u64 - 1)) as u8
            } else {
                1
            };
            (ellipse, class)
        })
        .collect();
    let label = |x: f64, y: f64| {
        ellipses
            .iter()
            .rev()
            .find(|&&([cx, cy, a, b, rotation], _)| {
                let (sin, cos) = rotation.sin_cos();
                let (dx, dy) = (x - cx, y - cy);
                let (u, v) = (dx * cos + dy * sin, -dx * sin + dy * cos);
                (u / a).powi(2) + (v / b).powi(2) <= 1.0
            })
            .map_or(0, |&(_, class)| class)
    };

    // A background slope and noise of random strength: a plain threshold on the intensity
    // is not enough, so the network has to use the neighbourhood of each pixel.
    let slope = rng.range(-0.6, 0.6);
    let angle = rng.range(0.0, TAU);
    let contrast = rng.range(0.8, 1.6);
    let noise = rng.range(0.3, 0.7);
    let mut image = Vec::with_capacity(size * size);
    let mut labels = Vec::with_capacity(size * size);
    for row in 0..size {
        for col in 0..size {
            let (y, x) = (row as f64 + 0.5, col as f64 + 0.5);
            let class = label(x, y);
            let ramp = (x * angle.cos() + y * angle.sin()) / s - 0.5;
            let object = if class > 0 {
                contrast * level(class)
            } else {
                0.0
            };
            let value = slope * ramp + object + noise * rng.normal();
            image.push((value - 0.3) as f32);
            labels.push(class);
        }
    }
    Sample { image, labels }
}

/// A batch: images `[N, 1, H, W]`, their 0/1 foreground masks (binary targets, float) and
/// their class maps (multiclass targets, class indices), both `[N, 1, H, W]`.
#[derive(Clone, Debug)]
pub struct MaskBatch {
    pub images: Tensor<4>,
    pub masks: Tensor<4>,
    pub labels: Tensor<4, Int>,
}

/// Stacks [`Sample`]s on the device burn-train asks for (the autodiff device for training,
/// the plain one for validation).
pub struct MaskBatcher {
    pub size: usize,
}

impl Batcher<Sample, MaskBatch> for MaskBatcher {
    fn batch(&self, items: Vec<Sample>, device: &Device) -> MaskBatch {
        let shape = [items.len(), 1, self.size, self.size];
        let (images, labels): (Vec<Vec<f32>>, Vec<Vec<u8>>) =
            items.into_iter().map(|s| (s.image, s.labels)).unzip();
        let labels = labels.concat();
        let masks: Vec<f32> = labels.iter().map(|&l| f32::from(u8::from(l > 0))).collect();
        let labels: Vec<i64> = labels.into_iter().map(i64::from).collect();
        MaskBatch {
            images: Tensor::from_data(TensorData::new(images.concat(), shape), device),
            masks: Tensor::from_data(TensorData::new(masks, shape), device),
            labels: Tensor::from_data(TensorData::new(labels, shape), device),
        }
    }
}
