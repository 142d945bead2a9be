//! Seeded synthetic data: grey-level images with one to three blob-shaped objects whose
//! total area spans 0.1% to 50% of the image (log-uniform), on a sloped background, with
//! Gaussian noise of varying strength. The target is the union of the objects.

use std::f64::consts::{PI, TAU};

pub use crate::rng::Rng;

/// One image and its mask, `size * size` values each, row-major.
pub struct Sample {
    pub image: Vec<f32>,
    pub mask: Vec<f32>,
    /// Foreground pixels / all pixels.
    pub fg_fraction: f64,
}

/// Relative foreground area range of the generator.
pub const MIN_AREA: f64 = 0.001;
pub const MAX_AREA: f64 = 0.5;

/// `count` samples of `size x size` pixels.
pub fn generate(count: usize, size: usize, rng: &mut Rng) -> Vec<Sample> {
    (0..count).map(|_| sample(size, rng)).collect()
}

fn sample(size: usize, rng: &mut Rng) -> Sample {
    let pixels = (size * size) as f64;
    // Total object area: log-uniform in [0.1%, 50%] of the image, at least 3 pixels.
    let area = (rng.range(MIN_AREA.ln(), MAX_AREA.ln()).exp() * pixels).max(3.0);
    let objects = match rng.uniform() {
        u if u < 0.6 => 1,
        u if u < 0.9 => 2,
        _ => 3,
    };
    let shares: Vec<f64> = (0..objects).map(|_| rng.range(0.3, 1.0)).collect();
    let total: f64 = shares.iter().sum();
    let blobs: Vec<Blob> = shares
        .iter()
        .map(|s| Blob::random(area * s / total, size as f64, rng))
        .collect();

    // Background: a level, a linear slope, then objects brighter by a random contrast, then
    // noise of a random strength.
    let level = rng.range(0.3, 0.6);
    let slope = rng.range(-0.15, 0.15);
    let angle = rng.range(0.0, TAU);
    let contrast = rng.range(0.15, 0.4);
    let noise = rng.range(0.08, 0.22);
    let mut image = Vec::with_capacity(size * size);
    let mut mask = Vec::with_capacity(size * size);
    for r in 0..size {
        for c in 0..size {
            let (y, x) = (r as f64 + 0.5, c as f64 + 0.5);
            let inside = blobs.iter().any(|b| b.contains(x, y));
            let u = (x * angle.cos() + y * angle.sin()) / size as f64 - 0.5;
            let v = level + slope * u + if inside { contrast } else { 0.0 } + noise * rng.normal();
            // Standardised: mean about 0, spread about 1.
            image.push(((v - 0.5) / 0.25) as f32);
            mask.push(f32::from(u8::from(inside)));
        }
    }
    let fg = mask.iter().filter(|&&m| m > 0.5).count();
    Sample {
        image,
        mask,
        fg_fraction: fg as f64 / pixels,
    }
}

/// An ellipse of a given area whose radius wobbles with the angle (a blob).
struct Blob {
    cx: f64,
    cy: f64,
    a: f64,
    b: f64,
    rotation: f64,
    wobble: f64,
    lobes: f64,
    phase: f64,
}

impl Blob {
    fn random(area: f64, size: f64, rng: &mut Rng) -> Self {
        let aspect = rng.range(0.5_f64.ln(), 2.0_f64.ln()).exp();
        let a = (area * aspect / PI).sqrt();
        let b = (area / (aspect * PI)).sqrt();
        let margin = a.max(b).min(size / 2.0);
        Blob {
            cx: rng.range(margin, size - margin),
            cy: rng.range(margin, size - margin),
            a,
            b,
            rotation: rng.range(0.0, PI),
            wobble: rng.range(0.0, 0.25),
            lobes: f64::from(2 + (rng.next_u64() % 4) as u32),
            phase: rng.range(0.0, TAU),
        }
    }

    fn contains(&self, x: f64, y: f64) -> bool {
        let (dx, dy) = (x - self.cx, y - self.cy);
        let (s, c) = self.rotation.sin_cos();
        let (u, v) = (dx * c + dy * s, -dx * s + dy * c);
        let radius = (u / self.a).powi(2) + (v / self.b).powi(2);
        let theta = v.atan2(u);
        let scale = 1.0 + self.wobble * (self.lobes * theta + self.phase).sin();
        radius.sqrt() <= scale
    }
}
