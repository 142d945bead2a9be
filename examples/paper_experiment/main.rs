//! The paper's experiment (Bertels et al., MICCAI 2019, Sect. 4) on synthetic data: train a
//! small U-Net with cross-entropy, fine-tune it with each of CE, wCE, soft Dice, soft
//! Jaccard and Lovász-sigmoid, and compare the hard Dice and Jaccard of the five models on a
//! test set (Table 1 with paired bootstrap tests, Fig. 1 as Dice per decile of object size).
//!
//! ```sh
//! cargo run --release --example paper_experiment                 # the full run (< 10 min on 2 cores)
//! cargo run --release --example paper_experiment -- --quick      # a smoke test (seconds)
//! cargo run --release --example paper_experiment -- --help
//! ```
//!
//! Writes `results.md` (table, summary, settings), `scores.csv` (per-image scores) and
//! `dice_vs_area.png` into the output directory.

mod data;
mod evaluate;
mod model;
mod report;
mod rng;
mod text;
mod train;

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::Device;
use clap::{Parser, ValueEnum};

use data::{Rng, generate};
use evaluate::score;
use model::UNet;
use train::{Loss, Schedule, TrainingData, train};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Backend {
    /// burn's flex CPU backend (the default: the fastest CPU backend to train on).
    Flex,
    /// burn's ndarray CPU backend (about 18x slower to train than flex).
    Ndarray,
    /// burn's wgpu GPU backend (needs the `wgpu` feature).
    Wgpu,
}

/// The experiment of Bertels et al. (MICCAI 2019) on synthetic 2D images.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Output directory for results.md, scores.csv and dice_vs_area.png.
    #[arg(long, default_value = "paper_experiment_out")]
    out: PathBuf,
    /// Seed of the data, the initial weights and the shuffling.
    #[arg(long, default_value_t = 2019)]
    seed: u64,
    /// Image side in pixels (even).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Number of images, split 60% / 15% / 25% into train / validation / test.
    #[arg(long, default_value_t = 640)]
    images: usize,
    /// Epochs of the cross-entropy pre-training.
    #[arg(long, default_value_t = 15)]
    epochs: usize,
    /// Epochs of fine-tuning with each loss.
    #[arg(long, default_value_t = 6)]
    finetune_epochs: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3)]
    learning_rate: f64,
    /// A smoke test (seconds in a release build): 32x32 images, 160 of them, 2 + 1 epochs.
    #[arg(long)]
    quick: bool,
    /// The burn backend to train on.
    #[arg(long, value_enum, default_value_t = Backend::Flex)]
    device: Backend,
}

fn device(backend: Backend) -> Result<Device, Box<dyn std::error::Error>> {
    Ok(match backend {
        Backend::Flex => Device::flex(),
        #[allow(deprecated)] // burn-ndarray is deprecated upstream; the crate still supports it.
        Backend::Ndarray => Device::ndarray(),
        #[cfg(feature = "wgpu")]
        Backend::Wgpu => Device::wgpu_options().init()?,
        #[cfg(not(feature = "wgpu"))]
        Backend::Wgpu => return Err("this build has no wgpu: run with --features wgpu".into()),
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = Args::parse();
    if args.quick {
        args.size = 32;
        args.images = 160;
        args.epochs = 2;
        args.finetune_epochs = 1;
    }
    if args.size < 2 || args.size % 2 != 0 || args.images < 20 {
        return Err("--size must be even and >= 2, --images >= 20".into());
    }
    let start = Instant::now();
    let device = device(args.device)?.autodiff();
    std::fs::create_dir_all(&args.out)?;

    // Data: one seeded stream, split by position.
    let mut rng = Rng::new(args.seed);
    let all = generate(args.images, args.size, &mut rng);
    let (n_train, n_val) = (args.images * 60 / 100, args.images * 15 / 100);
    let (train_set, rest) = all.split_at(n_train);
    let (val_set, test_set) = rest.split_at(n_val);
    let prior = train_set.iter().map(|s| s.fg_fraction).sum::<f64>() / train_set.len() as f64;
    println!(
        "{} train / {} validation / {} test images of {s}x{s}; foreground prior {prior:.4} (wCE weights {:.2}, {:.2})",
        train_set.len(),
        val_set.len(),
        test_set.len(),
        0.5 / prior,
        0.5 / (1.0 - prior),
        s = args.size
    );

    let data = TrainingData {
        train: train_set,
        val: val_set,
        prior,
    };
    device.seed(args.seed);
    let model = UNet::new(16, &device);
    let schedule = |epochs| Schedule {
        epochs,
        batch_size: args.batch_size,
        learning_rate: args.learning_rate,
        size: args.size,
    };
    let (checkpoint, val) = train(
        model,
        Loss::CrossEntropy,
        &data,
        &schedule(args.epochs),
        &device,
        &mut rng,
        "pre-training with CE",
    )?;
    println!("checkpoint: validation CE {val:.4}");

    let mut results = Vec::new();
    for loss in Loss::ALL {
        let (model, _) = train(
            checkpoint.clone(),
            loss,
            &data,
            &schedule(args.finetune_epochs),
            &device,
            &mut rng,
            &format!("fine-tuning with {}", loss.name()),
        )?;
        results.push((
            loss,
            score(&model, test_set, args.size, args.batch_size, &device)?,
        ));
    }

    let dice: Vec<Vec<f64>> = results.iter().map(|(_, s)| s.dice.clone()).collect();
    let jaccard: Vec<Vec<f64>> = results.iter().map(|(_, s)| s.jaccard.clone()).collect();
    let p_dice = report::p_values(&dice, &mut rng);
    let p_jaccard = report::p_values(&jaccard, &mut rng);
    let table = report::table(&results, &p_dice, &p_jaccard);
    let summary = report::summary(&results, &p_dice, &p_jaccard, test_set);
    let elapsed = start.elapsed().as_secs_f64();
    let settings = format!(
        "Settings: {args:?}\nTest images: {}; significance: paired bootstrap, two-sided, p < {}; run time {elapsed:.0} s.\n",
        test_set.len(),
        report::ALPHA
    );
    std::fs::write(
        args.out.join("results.md"),
        format!("# Table 1 on synthetic data\n\n{table}\n## Findings\n\n{summary}\n{settings}"),
    )?;
    std::fs::write(args.out.join("scores.csv"), report::csv(&results, test_set))?;
    report::plot(&results, test_set, &args.out.join("dice_vs_area.png"))?;

    println!(
        "\n{table}\n{summary}\n{settings}Wrote results.md, scores.csv and dice_vs_area.png to {}",
        args.out.display()
    );
    Ok(())
}
