//! Every surface metric of `segloss` on a few synthetic 3D objects (a CT-like anisotropic
//! volume, spacing 2.5 x 0.8 x 0.8 mm): a sphere predicted slightly shifted, an ellipsoid
//! predicted too small, a sphere with a spurious far-away blob (which moves the Hausdorff
//! distance but hardly the HD95 or the ASSD), and a missed object (an empty prediction). Then
//! the same for a three-class label map, and the boundary losses of the first pair.
//!
//! ```sh
//! cargo run --example surface_metrics
//! ```

use burn::tensor::{Bool, DType, Device, Int, Tensor, TensorData};
use segloss::EmptyPolicy;
use segloss::SegLossError;
use segloss::losses::{BoundaryConfig, HausdorffDtConfig, boundary_loss, hausdorff_dt_loss};
use segloss::metrics::Confusion;
use segloss::metrics::surface::{
    ClassSurfaceDistances, Direction, HausdorffMode, OneEmpty, SurfaceConfig, SurfaceDistances,
};

/// Slices, rows, columns of each volume.
const SHAPE: [usize; 3] = [24, 64, 64];
const SPACING: [f64; 3] = [2.5, 0.8, 0.8];

/// Voxels inside the ellipsoid of centre `c` and semi-axes `r` (millimetres).
fn ellipsoid(c: [f64; 3], r: [f64; 3]) -> Vec<bool> {
    let mut out = Vec::with_capacity(SHAPE.iter().product());
    for z in 0..SHAPE[0] {
        for y in 0..SHAPE[1] {
            for x in 0..SHAPE[2] {
                let p = [z as f64, y as f64, x as f64];
                let d: f64 = (0..3)
                    .map(|a| ((p[a] * SPACING[a] - c[a]) / r[a]).powi(2))
                    .sum();
                out.push(d <= 1.0);
            }
        }
    }
    out
}

fn or(a: &[bool], b: &[bool]) -> Vec<bool> {
    a.iter().zip(b).map(|(x, y)| *x || *y).collect()
}

fn main() -> Result<(), SegLossError> {
    let device = Device::flex();
    let centre = [30.0, 25.6, 25.6];
    let sphere = ellipsoid(centre, [12.0; 3]);
    let cases: Vec<(&str, Vec<bool>, Vec<bool>)> = vec![
        (
            "shifted sphere",
            ellipsoid([30.0, 28.0, 25.6], [12.0; 3]),
            sphere.clone(),
        ),
        (
            "small ellipsoid",
            ellipsoid(centre, [9.0, 10.0, 10.0]),
            ellipsoid(centre, [12.0, 14.0, 14.0]),
        ),
        (
            "spurious blob",
            or(&sphere, &ellipsoid([50.0, 45.0, 45.0], [2.5, 2.0, 2.0])),
            sphere.clone(),
        ),
        ("missed object", vec![false; sphere.len()], sphere.clone()),
    ];
    let batch = |predicted: bool| {
        let values: Vec<bool> = cases
            .iter()
            .flat_map(|c| if predicted { c.1.clone() } else { c.2.clone() })
            .collect();
        let shape = [cases.len(), 1, SHAPE[0], SHAPE[1], SHAPE[2]];
        Tensor::<5, Bool>::from_data(TensorData::new(values, shape), &device)
    };
    let (pred, target) = (batch(true), batch(false));

    // MONAI's conventions (an empty prediction gives +inf), and a finite worst case instead.
    let config = SurfaceConfig::new().with_spacing(Some(SPACING.to_vec()));
    let d = SurfaceDistances::from_masks(pred.clone(), target.clone(), &config)?;
    let worst = SurfaceDistances::from_masks(
        pred.clone(),
        target.clone(),
        &config.clone().with_one_empty(OneEmpty::Diagonal),
    )?;
    let dice = Confusion::from_masks(pred, target)?.dice(EmptyPolicy::One);
    let columns = [
        ("Dice", dice),
        ("HD (mm)", d.hausdorff(100.0, HausdorffMode::MaxOfDirected)),
        (
            "HD95 MONAI",
            d.hausdorff(95.0, HausdorffMode::MaxOfDirected),
        ),
        ("HD95 MedPy", d.hausdorff(95.0, HausdorffMode::Pooled)),
        (
            "HD95 diag",
            worst.hausdorff(95.0, HausdorffMode::MaxOfDirected),
        ),
        ("ASSD", d.assd()),
        ("MASD", d.masd()),
        ("ASD p->t", d.directed_asd(Direction::PredToTarget)),
        ("NSD 1mm", d.nsd(1.0)),
        ("NSD 2mm", d.nsd(2.0)),
    ];
    println!("Binary masks, {SHAPE:?} voxels of {SPACING:?} mm:\n");
    print!("{:<16}", "");
    for (name, _) in &columns {
        print!("{name:>11}");
    }
    println!();
    for (i, (name, ..)) in cases.iter().enumerate() {
        print!("{name:<16}");
        for (_, values) in &columns {
            print!("{:>11.3}", values[i]);
        }
        println!();
    }

    // A label map: background 0, the sphere 1, a slab 2; the prediction shifts the sphere.
    let labels = |sphere: &[bool]| -> Vec<i64> {
        (0..sphere.len())
            .map(|i| {
                let z = i / (SHAPE[1] * SHAPE[2]);
                if sphere[i] {
                    1
                } else if z >= 20 {
                    2
                } else {
                    0
                }
            })
            .collect()
    };
    let map = |v: Vec<i64>| {
        Tensor::<5, Int>::from_data(
            TensorData::new(v, [1, 1, SHAPE[0], SHAPE[1], SHAPE[2]]),
            &device,
        )
    };
    let classes = ClassSurfaceDistances::from_indices(
        map(labels(&cases[0].1)),
        map(labels(&sphere)),
        3,
        None,
        &config,
    )?;
    println!("\nLabel map (classes 0, 1, 2), image 0:");
    println!(
        "  HD95 per class: {:.3?}",
        classes.hausdorff(95.0, HausdorffMode::MaxOfDirected)[0]
    );
    println!("  NSD 1mm per class: {:.3?}", classes.nsd(1.0)[0]);

    // The boundary losses of the first pair, with logits +-4 from the predicted mask.
    let first = |v: &[bool]| -> Vec<f32> { v.iter().map(|&b| if b { 1.0 } else { 0.0 }).collect() };
    let shape = [1, 1, SHAPE[0], SHAPE[1], SHAPE[2]];
    let tensor = |v: Vec<f32>| {
        Tensor::<5>::from_data(TensorData::new(v, shape).convert_dtype(DType::F32), &device)
    };
    let logits = tensor(first(&cases[0].1).iter().map(|y| 8.0 * y - 4.0).collect());
    let targets = tensor(first(&cases[0].2));
    let boundary = boundary_loss(
        logits.clone(),
        targets.clone(),
        &BoundaryConfig::new().with_spacing(Some(SPACING.to_vec())),
    )?;
    let hausdorff = hausdorff_dt_loss(logits, targets, &HausdorffDtConfig::new())?;
    println!(
        "\nBoundary losses of the shifted sphere: boundary {:.4}, Hausdorff DT {:.4}",
        boundary.into_scalar::<f32>(),
        hausdorff.into_scalar::<f32>()
    );
    Ok(())
}
