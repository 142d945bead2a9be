//! segloss inside burn-train's own training loop: a small U-Net learns synthetic 2D binary
//! masks with burn-train's `SupervisedTraining` and `Learner`. Its loss is a segloss
//! [`CompoundLoss`] (soft Dice plus binary cross-entropy) held in the model, and segloss's hard
//! Dice, Jaccard and Hamming scores sit on burn-train's dashboard next to its `LossMetric`.
//!
//! With `--classes 3` the U-Net learns class maps instead (background and two classes of
//! objects, told apart by their intensity) with MONAI's Dice + cross-entropy ([`DiceCeLoss`]),
//! and the dashboard shows segloss's multiclass metrics: macro Dice, Jaccard (IoU), HD95 and
//! NSD, and Dice and HD95 per class.
//!
//! ```sh
//! cargo run --release --features train --example learner              # 10 epochs of 480 48x48 images (a few minutes on 2 cores)
//! cargo run --release --features train --example learner -- --classes 3
//! cargo run --release --features train --example learner -- --quick   # a smoke test for CI (seconds): binary, then 3 classes
//! cargo run --release --features train --example learner -- --help
//! ```
//!
//! In a terminal, burn-train's TUI dashboard draws the metrics live (`q`, then `s`, stops the
//! training). When stdout is not a terminal (CI, a pipe), or with `--no-tui`, a plain-text
//! renderer prints one line per epoch and split instead. Either way burn-train writes its
//! logs, metric files and checkpoints (`checkpoint/model-N.bpk`: the last two epochs and the
//! one with the best validation loss) under `--out` (default `target/learner`), and prints a
//! summary at the end.
//!
//! # What a user adds to their own `TrainStep`
//!
//! About ten lines, marked `segloss (1/3)` to `(3/3)` in the code below:
//!
//! ```ignore
//! use segloss::losses::{BinaryCrossEntropyConfig, CompoundConfig, CompoundLoss, Loss, SoftDiceConfig};
//! use segloss::metrics::train::{SegmentationMetric, SegmentationOutput};
//!
//! // (1/3) The loss is a field of the model (a burn Module without parameters)...
//! loss: CompoundLoss,
//! // ...built once, with the model; `init` checks the options:
//! let loss = CompoundConfig::new()
//!     .with_term(1.0, Loss::SoftDice(SoftDiceConfig::new()))
//!     .with_term(1.0, Loss::BinaryCrossEntropy(BinaryCrossEntropyConfig::new()))
//!     .init()?;
//!
//! // (2/3) The step's output (`type Output = SegmentationOutput` in both step traits):
//! let loss = self.loss.forward(logits.clone(), masks.clone());
//! let output = SegmentationOutput::new(loss, logits, masks);
//! // InferenceStep::step returns `output`; TrainStep::step adds the gradients:
//! TrainOutput::new(self, output.loss.backward(), output)
//!
//! // (3/3) On the SupervisedTraining builder, for both splits:
//! .metrics((LossMetric::new(), SegmentationMetric::dice(),
//!           SegmentationMetric::jaccard(), SegmentationMetric::hamming()))
//! ```
//!
//! The multiclass run differs in the loss, the output and the metrics (class-index targets
//! `[N, 1, H, W]`, logits `[N, C, H, W]`; the predictions are their argmax):
//!
//! ```ignore
//! use segloss::losses::{DiceCeConfig, DiceCeLoss};
//! use segloss::metrics::train::{
//!     MulticlassSegmentationMetric, MulticlassSegmentationOutput, MulticlassSurfaceMetric,
//! };
//!
//! loss: DiceCeLoss, // DiceCeConfig::new().init()?
//! let loss = self.loss.forward(logits.clone(), labels.clone());
//! let output = MulticlassSegmentationOutput::new(loss, logits, labels);
//! .metrics((LossMetric::new(), MulticlassSegmentationMetric::dice(),   // macro
//!           MulticlassSegmentationMetric::jaccard(), MulticlassSurfaceMetric::hd95(),
//!           MulticlassSurfaceMetric::nsd(1.0)))
//! // and one metric per class, e.g. MulticlassSegmentationMetric::dice().with_class(1)
//! ```

mod data;
// The paper experiment's two-level U-Net (16/32 channels at the default width), shared.
#[path = "../paper_experiment/model.rs"]
mod model;
mod plain;
// The paper experiment's seeded generator; the learner uses part of its API.
#[allow(dead_code)]
#[path = "../paper_experiment/rng.rs"]
mod rng;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::InMemDataset;
use burn::module::Module;
use burn::optim::AdamConfig;
use burn::tensor::Device;
use burn::train::metric::LossMetric;
use burn::train::renderer::MetricsRenderer;
use burn::train::renderer::tui::TuiMetricsRendererWrapper;
use burn::train::{
    InferenceStep, Learner, LearnerModel, SupervisedTraining, TrainOutput, TrainStep,
};
use clap::Parser;
use segloss::losses::{
    BinaryCrossEntropyConfig, CompoundConfig, CompoundLoss, DiceCeConfig, DiceCeLoss, Loss,
    SoftDiceConfig,
};
use segloss::metrics::train::{
    MulticlassSegmentationMetric, MulticlassSegmentationOutput, MulticlassSurfaceMetric,
    SegmentationMetric, SegmentationOutput,
};

use data::{MaskBatch, MaskBatcher, Sample, generate};
use model::UNet;
use plain::PlainRenderer;
use rng::Rng;

/// Train a small U-Net on synthetic masks with burn-train's Learner and segloss's losses
/// and metrics.
#[derive(Parser, Debug)]
struct Args {
    /// Artifact directory: burn-train's logs, metric files and checkpoints (with --quick and
    /// no --classes: one folder per run under it, `binary` and `classes-3`).
    #[arg(long, default_value = "target/learner")]
    out: PathBuf,
    /// Classes: 1 trains the binary model (one logit per pixel, Dice + BCE); C >= 2 a softmax
    /// model over C classes (class 0 the background, objects of classes 1..C-1; Dice + CE)
    /// with the multiclass metrics. Default: 1, or with --quick a binary run and then a
    /// 3-class run.
    #[arg(long)]
    classes: Option<usize>,
    /// Training epochs.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Training images (validation: a quarter as many more).
    #[arg(long, default_value_t = 480)]
    images: usize,
    /// Image side in pixels (even: the U-Net halves it once).
    #[arg(long, default_value_t = 48)]
    size: usize,
    /// Channels of the U-Net at full resolution (twice as many at half resolution).
    #[arg(long, default_value_t = 16)]
    width: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 3e-3)]
    learning_rate: f64,
    /// Seed of the data, the initial weights and the shuffling.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Smoke test for CI: 256 images of 32x32, a narrower U-Net, 4 epochs (binary) or 8
    /// (multiclass: its first class is found around epoch 5); the binary model and then 3
    /// classes unless --classes picks one (seconds each).
    #[arg(long)]
    quick: bool,
    /// Plain-text progress even in a terminal.
    #[arg(long)]
    no_tui: bool,
}

/// What burn-train trains: the network and its loss. The loss lives in the model so that
/// `TrainStep` and `InferenceStep`, which only get `&self` and a batch, can reach it; it has
/// no parameters, so checkpoints hold the U-Net's weights alone.
#[derive(Module, Debug)]
struct Segmenter {
    unet: UNet,
    // segloss (1/3): the loss as a field of the model.
    loss: CompoundLoss,
}

impl Segmenter {
    fn new(width: usize, device: &Device) -> Result<Self, segloss::SegLossError> {
        // segloss (1/3): Dice for the overlap, BCE for well-behaved gradients from the first
        // step on (soft Dice alone learns slowly while the predictions are all ~0.5).
        let loss = CompoundConfig::new()
            .with_term(1.0, Loss::SoftDice(SoftDiceConfig::new()))
            .with_term(
                1.0,
                Loss::BinaryCrossEntropy(BinaryCrossEntropyConfig::new()),
            )
            .init()?;
        Ok(Segmenter {
            unet: UNet::new(width, device),
            loss,
        })
    }

    /// The step shared by training and validation (as burn's own examples do it).
    fn forward_segmentation(&self, batch: MaskBatch) -> SegmentationOutput {
        let logits = self.unet.forward(batch.images);
        // segloss (2/3): the loss, and the output that feeds both burn-train's LossMetric and
        // segloss's Dice/Jaccard/Hamming metrics.
        let loss = self.loss.forward(logits.clone(), batch.masks.clone());
        SegmentationOutput::new(loss, logits, batch.masks)
    }
}

impl TrainStep for Segmenter {
    type Input = MaskBatch;
    type Output = SegmentationOutput;

    fn step(&self, batch: MaskBatch) -> TrainOutput<SegmentationOutput> {
        let output = self.forward_segmentation(batch);
        // segloss (2/3): backward through the segloss loss like any burn loss.
        TrainOutput::new(self, output.loss.backward(), output)
    }
}

impl InferenceStep for Segmenter {
    type Input = MaskBatch;
    type Output = SegmentationOutput;

    fn step(&self, batch: MaskBatch) -> SegmentationOutput {
        self.forward_segmentation(batch)
    }
}

/// The multiclass model: the same U-Net with one output channel per class, and MONAI's Dice +
/// cross-entropy on class-index targets.
#[derive(Module, Debug)]
struct MulticlassSegmenter {
    unet: UNet,
    loss: DiceCeLoss,
}

impl MulticlassSegmenter {
    fn new(width: usize, classes: usize, device: &Device) -> Result<Self, segloss::SegLossError> {
        Ok(MulticlassSegmenter {
            unet: UNet::with_outputs(width, classes, device),
            loss: DiceCeConfig::new().init()?,
        })
    }

    fn forward_segmentation(&self, batch: MaskBatch) -> MulticlassSegmentationOutput {
        let logits = self.unet.forward(batch.images);
        let loss = self.loss.forward(logits.clone(), batch.labels.clone());
        MulticlassSegmentationOutput::new(loss, logits, batch.labels)
    }
}

impl TrainStep for MulticlassSegmenter {
    type Input = MaskBatch;
    type Output = MulticlassSegmentationOutput;

    fn step(&self, batch: MaskBatch) -> TrainOutput<MulticlassSegmentationOutput> {
        let output = self.forward_segmentation(batch);
        TrainOutput::new(self, output.loss.backward(), output)
    }
}

impl InferenceStep for MulticlassSegmenter {
    type Input = MaskBatch;
    type Output = MulticlassSegmentationOutput;

    fn step(&self, batch: MaskBatch) -> MulticlassSegmentationOutput {
        self.forward_segmentation(batch)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = Args::parse();
    if args.quick {
        args.epochs = 4;
        args.images = 256;
        args.size = 32;
        args.width = 8;
        args.batch_size = 8;
    }
    if args.size < 2 || args.size % 2 != 0 || args.images == 0 || args.batch_size == 0 {
        return Err("--size must be even and >= 2; --images and --batch-size >= 1".into());
    }
    let runs = match (args.classes, args.quick) {
        (Some(0), _) => return Err("--classes must be at least 1".into()),
        (Some(classes), _) => vec![(classes, args.out.clone())],
        (None, false) => vec![(1, args.out.clone())],
        // CI's smoke test runs both models, each in its own folder.
        (None, true) => vec![
            (1, args.out.join("binary")),
            (3, args.out.join("classes-3")),
        ],
    };
    let start = Instant::now();
    for (classes, out) in runs {
        run(&args, classes, &out)?;
    }
    if args.quick {
        println!("all runs: {:.1} s", start.elapsed().as_secs_f64());
    }
    Ok(())
}

/// One training run with `classes` classes (1: binary), its artifacts under `out`.
fn run(args: &Args, classes: usize, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    // The multiclass model finds its bright class (class 1) only after a few epochs: its quick
    // run is longer, so that the per-class metrics show it learned.
    let epochs = if args.quick && classes > 1 {
        8
    } else {
        args.epochs
    };
    // flex: burn's pure-Rust CPU backend, the fastest of the CPU backends to train on. Any
    // burn device works here (e.g. `Device::wgpu_options().init()?` with the `wgpu` feature):
    // nothing below names a backend.
    let device = Device::flex().autodiff();
    device.seed(args.seed);

    // Each run starts from clean logs: burn-train's summary reads every epoch folder it finds
    // under the artifact directory, including those of an earlier, longer run.
    for stale in ["train", "valid", "checkpoint"] {
        let path = out.join(stale);
        if path.exists() {
            std::fs::remove_dir_all(path)?;
        }
    }
    std::fs::create_dir_all(out)?;

    let mut rng = Rng::new(args.seed);
    let train_set = generate(args.images, args.size, classes, &mut rng);
    let valid_set = generate(args.images.div_ceil(4), args.size, classes, &mut rng);
    println!(
        "{} training / {} validation images of {s}x{s}, {}, U-Net width {}, batch {}, {} epochs",
        train_set.len(),
        valid_set.len(),
        if classes == 1 {
            "binary".to_string()
        } else {
            format!("{classes} classes")
        },
        args.width,
        args.batch_size,
        epochs,
        s = args.size
    );
    if classes == 1 {
        let training = training(args, epochs, out, train_set, valid_set)
            // segloss (3/3): the metrics, on both splits; burn-train's LossMetric reads the
            // step's loss through SegmentationOutput too.
            .metrics((
                LossMetric::new(),
                SegmentationMetric::dice(),
                SegmentationMetric::jaccard(),
                SegmentationMetric::hamming(),
            ));
        launch(args, training, Segmenter::new(args.width, &device)?)?;
    } else {
        // The multiclass metrics: macro Dice and Jaccard (background included, as MONAI's
        // DiceMetric), macro HD95 and NSD (background excluded, as MONAI's
        // HausdorffDistanceMetric), and Dice and HD95 of each object class. Every metric of a
        // batch reads the same counts and distances, computed once.
        let mut training = training(args, epochs, out, train_set, valid_set).metrics((
            LossMetric::new(),
            MulticlassSegmentationMetric::dice(),
            MulticlassSegmentationMetric::jaccard(),
            MulticlassSurfaceMetric::hd95(),
            MulticlassSurfaceMetric::nsd(1.0),
        ));
        for class in 1..classes {
            training = training.metrics((
                MulticlassSegmentationMetric::dice().with_class(class),
                MulticlassSurfaceMetric::hd95().with_class(class),
            ));
        }
        let model = MulticlassSegmenter::new(args.width, classes, &device)?;
        launch(args, training, model)?;
    }
    println!(
        "checkpoints: {}",
        list_checkpoints(&out.join("checkpoint"))?.join(", ")
    );
    println!(
        "logs and metric files: {} ({:.1} s in all)",
        out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// burn-train's supervised training of either model over `train_set` and `valid_set` for
/// `epochs` epochs, its artifacts under `out`; the caller adds the metrics.
fn training<M>(
    args: &Args,
    epochs: usize,
    out: &Path,
    train_set: Vec<Sample>,
    valid_set: Vec<Sample>,
) -> SupervisedTraining<M>
where
    M: LearnerModel + TrainStep<Input = MaskBatch> + InferenceStep<Input = MaskBatch>,
{
    let train_loader = DataLoaderBuilder::new(MaskBatcher { size: args.size })
        .batch_size(args.batch_size)
        .shuffle(args.seed)
        .build(InMemDataset::new(train_set));
    let valid_loader = DataLoaderBuilder::new(MaskBatcher { size: args.size })
        .batch_size(args.batch_size)
        .build(InMemDataset::new(valid_set));
    SupervisedTraining::new(out, train_loader, valid_loader)
        // burn-train's FileCheckpointer under `<out>/checkpoint`; its default strategy keeps
        // the last two epochs and the one with the lowest validation loss.
        .with_default_checkpointers()
        .num_epochs(epochs)
        .summary()
}

/// Trains `model` with Adam, drawing the dashboard (TUI) or plain-text progress.
fn launch<M: LearnerModel>(
    args: &Args,
    training: SupervisedTraining<M>,
    model: M,
) -> Result<(), Box<dyn std::error::Error>> {
    // The TUI takes over the terminal and needs one to draw on: in CI its escape codes would
    // only garble the log. The TUI's `q` must stop this training, so it shares its interrupter.
    let renderer: Box<dyn MetricsRenderer> = if std::io::stdout().is_terminal() && !args.no_tui {
        Box::new(TuiMetricsRendererWrapper::new(training.interrupter(), None))
    } else {
        Box::new(PlainRenderer::new())
    };
    let learner = Learner::new(model, AdamConfig::new().init(), args.learning_rate);
    let result = training.renderer(renderer).launch(learner);
    // Dropping the renderer closes the TUI (and prints its summary) before the lines below.
    drop(result.renderer);
    // Only the plain renderer leaves the error here: the TUI resets the interrupter, error
    // included, when training ends; burn-train also logs it to `<out>/experiment.log`.
    if let Some(error) = result.error {
        return Err(format!("training failed: {error}").into());
    }
    Ok(())
}

/// The model checkpoints burn-train left, sorted by epoch.
fn list_checkpoints(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut files: Vec<(usize, String)> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.to_string();
            let epoch = name
                .strip_prefix("model-")?
                .strip_suffix(".bpk")?
                .parse()
                .ok()?;
            Some((epoch, path.display().to_string()))
        })
        .collect();
    files.sort();
    Ok(files.into_iter().map(|(_, path)| path).collect())
}
