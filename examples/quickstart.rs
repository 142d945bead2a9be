//! Every loss (binary and multiclass, each as a run-time `Loss` value) and every hard metric of
//! `segloss` on four toy 2D masks: a disc, a thin bar, a tiny blob and an empty mask, with noisy
//! logits. Checks the Jaccard/Dice identity (Eq. 4 of
//! Bertels et al.) on the spot.
//!
//! ```sh
//! cargo run --example quickstart                  # flex (CPU)
//! cargo run --example quickstart --features wgpu  # flex, then the wgpu device
//! ```

use burn::tensor::{DType, Device, Tensor, TensorData};
use segloss::losses::*;
use segloss::metrics::{Confusion, DEFAULT_LOGIT_THRESHOLD};
use segloss::theory::jaccard_from_dice;
use segloss::{Aggregation, EmptyPolicy, Reduction, SegLossError};

const SIZE: usize = 32;
const NAMES: [&str; 4] = ["disc", "thin bar", "tiny blob", "empty"];

/// The four masks, `[4, 1, SIZE, SIZE]`, flattened.
fn masks() -> Vec<f32> {
    let mut out = Vec::with_capacity(4 * SIZE * SIZE);
    for kind in 0..4 {
        for r in 0..SIZE {
            for c in 0..SIZE {
                let (dr, dc) = (r as f32 - 15.5, c as f32 - 15.5);
                let inside = match kind {
                    0 => dr * dr + dc * dc <= 81.0, // disc of radius 9
                    1 => (15..17).contains(&c) && (4..28).contains(&r), // 2-pixel-wide bar
                    2 => (20..23).contains(&r) && (8..11).contains(&c), // 3x3 blob
                    _ => false,                     // empty
                };
                out.push(f32::from(u8::from(inside)));
            }
        }
    }
    out
}

/// Noisy logits: +-3 on the right side of the mask plus Gaussian noise of standard deviation
/// 2 (a fixed-seed generator, so every run prints the same numbers).
fn noisy_logits(masks: &[f32]) -> Vec<f32> {
    let mut state = 7_u64;
    let mut uniform = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    masks
        .iter()
        .map(|&y| {
            // Box-Muller.
            let g =
                (-2.0 * (1.0 - uniform()).ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos();
            (f64::from(2.0 * y - 1.0) * 3.0 + 2.0 * g) as f32
        })
        .collect()
}

fn per_image(loss: Result<Tensor<1>, SegLossError>) -> Result<Vec<f32>, SegLossError> {
    Ok(loss?
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("converted to f32"))
}

fn run(device: &Device) -> Result<(), SegLossError> {
    let shape = [4, 1, SIZE, SIZE];
    let y = masks();
    let x = noisy_logits(&y);
    let tensor = |v: &[f32]| {
        Tensor::<4>::from_data(TensorData::new(v.to_vec(), shape), (device, DType::F32))
    };
    let (logits, targets) = (tensor(&x), tensor(&y));

    // Every binary loss, one value per image (Reduction::None, per-image statistics).
    let none = Reduction::None;
    let binary = [
        (
            "CE",
            Loss::BinaryCrossEntropy(BinaryCrossEntropyConfig::new().with_reduction(none)),
        ),
        (
            "wCE",
            Loss::WeightedCrossEntropy(WeightedCrossEntropyConfig::new().with_reduction(none)),
        ),
        (
            "soft Dice",
            Loss::SoftDice(SoftDiceConfig::new().with_reduction(none)),
        ),
        (
            "soft Jaccard",
            Loss::SoftJaccard(SoftJaccardConfig::new().with_reduction(none)),
        ),
        (
            "Lovász-sigmoid",
            Loss::LovaszSigmoid(LovaszSigmoidConfig::new().with_reduction(none)),
        ),
        (
            "Lovász hinge",
            Loss::LovaszHinge(LovaszHingeConfig::new().with_reduction(none)),
        ),
        (
            "Tversky",
            Loss::Tversky(TverskyConfig::new().with_reduction(none)),
        ),
        (
            "focal",
            Loss::Focal(FocalConfig::new().with_reduction(none)),
        ),
        (
            "boundary",
            Loss::Boundary(BoundaryConfig::new().with_reduction(none)),
        ),
        (
            "Hausdorff DT",
            Loss::HausdorffDt(HausdorffDtConfig::new().with_reduction(none)),
        ),
        (
            "focal Tversky",
            Loss::Tversky(TverskyConfig::new().with_gamma(0.75).with_reduction(none)),
        ),
        (
            "clDice",
            Loss::ClDice(ClDiceConfig::new().with_reduction(none)),
        ),
        (
            "MCC",
            Loss::Mcc(
                MccConfig::new()
                    .with_aggregation(Aggregation::PerImage)
                    .with_reduction(none),
            ),
        ),
    ];
    let mut losses: Vec<(&str, Vec<f32>)> = Vec::new();
    for (name, loss) in &binary {
        losses.push((
            name,
            per_image(loss.compute(logits.clone(), targets.clone()))?,
        ));
    }
    let dice_ce = CompoundConfig::new()
        .with_term(1.0, binary[2].1.clone())
        .with_term(1.0, binary[0].1.clone());
    let value = compound(logits.clone(), targets.clone(), &dice_ce);
    losses.push(("Dice + CE", per_image(value)?));

    // Every multiclass loss on the same masks as two classes: logits (0, x) per pixel, whose
    // softmax is (1 - sigmoid(x), sigmoid(x)), and the masks as class indices.
    let class_logits = Tensor::cat(vec![logits.zeros_like(), logits.clone()], 1);
    let indices = targets.clone().int();
    let multiclass = [
        (
            "MC Dice",
            MulticlassLoss::Overlap(MulticlassOverlapConfig::new().with_reduction(none)),
        ),
        (
            "gen. Dice",
            MulticlassLoss::GeneralizedDice(GeneralizedDiceConfig::new().with_reduction(none)),
        ),
        (
            "Lovász-softmax",
            MulticlassLoss::LovaszSoftmax(
                LovaszSoftmaxConfig::new()
                    .with_aggregation(Aggregation::PerImage)
                    .with_reduction(none),
            ),
        ),
        (
            "MC focal",
            MulticlassLoss::Focal(MulticlassFocalConfig::new().with_reduction(none)),
        ),
        (
            "MC boundary",
            MulticlassLoss::Boundary(MulticlassBoundaryConfig::new().with_reduction(none)),
        ),
        (
            "MC Hausdorff DT",
            MulticlassLoss::HausdorffDt(MulticlassHausdorffDtConfig::new().with_reduction(none)),
        ),
        (
            "MC clDice",
            MulticlassLoss::ClDice(MulticlassClDiceConfig::new().with_reduction(none)),
        ),
        (
            "Wasserstein Dice",
            MulticlassLoss::WassersteinDice(WassersteinDiceConfig::new().with_reduction(none)),
        ),
        (
            "DiceCE preset",
            MulticlassLoss::DiceCe(
                DiceCeConfig::new()
                    .with_label_smoothing(0.1)
                    .with_reduction(none),
            ),
        ),
        (
            "DiceFocal preset",
            MulticlassLoss::DiceFocal(DiceFocalConfig::new().with_reduction(none)),
        ),
    ];
    for (name, loss) in &multiclass {
        let value = loss.compute(class_logits.clone(), indices.clone());
        losses.push((name, per_image(value)?));
    }
    let nnunet = MulticlassCompoundConfig::new()
        .with_term(1.0, multiclass[0].1.clone())
        .with_term(
            1.0,
            MulticlassLoss::Focal(
                MulticlassFocalConfig::new()
                    .with_gamma(0.0)
                    .with_reduction(none),
            ),
        );
    let value = multiclass_compound(class_logits.clone(), indices.clone(), &nnunet);
    losses.push(("MC Dice + CE", per_image(value)?));
    // Deep supervision over two decoder levels of the same size (weights 1 and 1/2).
    let supervised = DeepSupervisionConfig::new().with_loss(multiclass[0].1.clone());
    let value = deep_supervision(
        vec![class_logits.clone(), class_logits],
        indices,
        &supervised,
    );
    losses.push(("deep sup.", per_image(value)?));

    let counts = Confusion::from_logits(logits, targets, DEFAULT_LOGIT_THRESHOLD)?;
    let dice = counts.dice(EmptyPolicy::One);
    let jaccard = counts.jaccard(EmptyPolicy::One);
    let hamming = counts.hamming();
    let balanced = counts.weighted_hamming(0.5, EmptyPolicy::One)?;

    print!("{:<16}", "");
    for name in NAMES {
        print!("{name:>12}");
    }
    println!();
    let row = |label: &str, values: &mut dyn Iterator<Item = f64>| {
        print!("{label:<16}");
        for v in values {
            print!("{v:>12.4}");
        }
        println!();
    };
    println!("losses (per image)");
    for (name, values) in &losses {
        row(name, &mut values.iter().map(|&v| f64::from(v)));
    }
    println!("hard metrics (logits > 0)");
    row(
        "foreground px",
        &mut (0..4).map(|i| (counts.tp()[i] + counts.fn_()[i]) as f64),
    );
    row("Dice", &mut dice.iter().copied());
    row("Jaccard", &mut jaccard.iter().copied());
    row("Hamming", &mut hamming.iter().copied());
    row("w. Hamming 1/2", &mut balanced.iter().copied());

    // Eq. 4: J = D / (2 - D) for every image (both empty: D = J = 1 under EmptyPolicy::One).
    for (i, (d, j)) in dice.iter().zip(&jaccard).enumerate() {
        let gap = (jaccard_from_dice(*d) - j).abs();
        assert!(gap < 1e-12, "Eq. 4 fails on the {}: {gap}", NAMES[i]);
    }
    println!("Eq. 4 (J = D / (2 - D)) holds on all four masks to 1e-12.");
    Ok(())
}

fn main() -> Result<(), SegLossError> {
    println!("== flex (CPU)");
    run(&Device::flex())?;
    #[cfg(feature = "wgpu")]
    match Device::wgpu_options().init() {
        Ok(device) => {
            println!("\n== wgpu ({device:?})");
            run(&device)?;
        }
        Err(e) => println!("\nwgpu: no adapter ({e:?}), skipped"),
    }
    Ok(())
}
