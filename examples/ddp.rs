//! nnU-Net's batch Dice + CE under burn-train's data-parallel `Learner`, exact across
//! devices: the Dice statistics of every step are summed over the workers (segloss's
//! `DeviceAllReduce`, on burn's NCCL `all_reduce`), so each GPU optimises the Dice of the
//! global batch instead of the Dice of its shard.
//!
//! ```sh
//! cargo run --release --features train --example ddp            # one worker, flex
//! cargo run --features train --example ddp -- --quick             # seconds, as in CI
//! ```
//!
//! One worker runs anywhere (burn-train's single-device strategy, segloss's `SingleWorker`:
//! the same loss code). Several workers need NVIDIA GPUs and burn's CUDA backend: burn 0.22.1
//! runs collectives on CUDA only (NCCL), and its CUDA backend downloads LLVM when it builds,
//! which this crate's CI cannot, so that configuration is not built or run here. To run it,
//! build with `--features train,burn/cuda` and list the GPUs in [`devices`]
//! (`(0..n).map(Device::cuda).collect()`); nothing else changes.
//!
//! What a user adds to their own data-parallel training, besides burn-train's
//! `ExecutionStrategy::ddp(devices, DistributedConfig { all_reduce_op })`:
//!
//! ```ignore
//! let shared = SharedStatistics::new(
//!     Arc::new(DeviceAllReduce::new(devices.clone())?),
//!     GradientReduction::Mean, // burn-train's all_reduce_op: ReduceOperation::Mean
//! );
//! // A field of the model (cloned to every worker with it):
//! let loss: MulticlassCompoundLoss = dice_ce.init()?.with_shared(shared);
//! // In TrainStep::step:
//! let value = self.loss.forward(logits, targets);
//! ```

// The learner example's synthetic masks.
#[allow(dead_code)]
#[path = "learner/data.rs"]
mod data;
// The paper experiment's two-level U-Net, shared.
#[path = "paper_experiment/model.rs"]
mod model;
// The learner example's plain-text progress.
#[path = "learner/plain.rs"]
mod plain;
#[allow(dead_code)]
#[path = "paper_experiment/rng.rs"]
mod rng;

use std::sync::Arc;

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::InMemDataset;
use burn::module::Module;
use burn::optim::AdamConfig;
use burn::tensor::distributed::{DistributedConfig, ReduceOperation};
use burn::tensor::{Device, Int, Tensor};
use burn::train::metric::LossMetric;
use burn::train::renderer::MetricsRenderer;
use burn::train::{
    ExecutionStrategy, InferenceStep, Learner, SupervisedTraining, TrainOutput, TrainStep,
    TrainingStrategy,
};
use clap::Parser;
use segloss::distributed::{
    DeviceAllReduce, GradientReduction, SharedStatistics, SingleWorker, StatsReducer,
};
use segloss::losses::{
    MulticlassCompoundConfig, MulticlassCompoundLoss, MulticlassFocalConfig, MulticlassLoss,
    MulticlassOverlapConfig,
};
use segloss::metrics::train::{SegmentationMetric, SegmentationOutput};
use segloss::{Aggregation, SegLossError};

use data::{MaskBatch, MaskBatcher, generate};
use model::UNet;
use plain::PlainRenderer;
use rng::Rng;

/// Train the U-Net with batch Dice + CE on several GPUs, the Dice exact across them.
#[derive(Parser, Debug)]
struct Args {
    /// Workers (devices) to train on.
    #[arg(long, default_value_t = 1)]
    devices: usize,
    /// Artifact directory.
    #[arg(long, default_value = "target/ddp")]
    out: std::path::PathBuf,
    /// Training epochs.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Training images (validation: a quarter as many more).
    #[arg(long, default_value_t = 512)]
    images: usize,
    /// Images per batch on each device.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Smoke test for CI: one epoch of 64 images (seconds).
    #[arg(long)]
    quick: bool,
}

/// The network and its loss: nnU-Net's batch Dice + CE, a module whose batch statistics are
/// summed over the workers (`with_shared`).
#[derive(Module, Debug)]
struct Segmenter {
    unet: UNet,
    loss: MulticlassCompoundLoss,
}

/// nnU-Net's loss: batch Dice (statistics summed over the global batch) + CE, its batch
/// statistics shared across the workers by `shared`.
fn batch_dice_ce(shared: SharedStatistics) -> Result<MulticlassCompoundLoss, SegLossError> {
    let dice_ce = MulticlassCompoundConfig::new()
        .with_term(
            1.0,
            MulticlassLoss::Overlap(
                MulticlassOverlapConfig::new().with_aggregation(Aggregation::Batch),
            ),
        )
        .with_term(
            1.0,
            MulticlassLoss::Focal(MulticlassFocalConfig::new().with_gamma(0.0)),
        );
    Ok(dice_ce.init()?.with_shared(shared))
}

impl Segmenter {
    /// Two-class logits `[N, 2, H, W]`: the object channel from the U-Net, background 0.
    fn logits(&self, images: Tensor<4>) -> Tensor<4> {
        let object = self.unet.forward(images);
        Tensor::cat(vec![object.zeros_like(), object], 1)
    }

    fn forward_segmentation(&self, batch: MaskBatch) -> SegmentationOutput {
        let logits = self.logits(batch.images);
        let classes: Tensor<4, Int> = batch.masks.clone().greater_elem(0.5).int();
        let loss = self.loss.forward(logits.clone(), classes);
        // The metrics score the object channel's logit against the background's (0).
        let object = logits.narrow(1, 1, 1);
        SegmentationOutput::new(loss, object, batch.masks)
    }
}

impl TrainStep for Segmenter {
    type Input = MaskBatch;
    type Output = SegmentationOutput;

    fn step(&self, batch: MaskBatch) -> TrainOutput<SegmentationOutput> {
        let output = self.forward_segmentation(batch);
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = Args::parse();
    if args.quick {
        args.epochs = 1;
        args.images = 64;
        args.batch_size = 8;
    }
    let devices = devices(args.devices)?;
    let size = 32;
    let mut rng = Rng::new(7);
    let train_loader = DataLoaderBuilder::new(MaskBatcher { size })
        .batch_size(args.batch_size)
        .shuffle(7)
        .build(InMemDataset::new(generate(args.images, size, 1, &mut rng)));
    let valid_loader = DataLoaderBuilder::new(MaskBatcher { size })
        .batch_size(args.batch_size)
        .build(InMemDataset::new(generate(
            args.images / 4,
            size,
            1,
            &mut rng,
        )));

    // burn-train averages the workers' gradients (ReduceOperation::Mean), so each worker's
    // batch-Dice gradient is scaled by the number of workers (GradientReduction::Mean).
    let (strategy, reducer): (ExecutionStrategy, Arc<dyn StatsReducer>) = if devices.len() == 1 {
        (
            ExecutionStrategy::SingleDevice(devices[0].clone()),
            Arc::new(SingleWorker),
        )
    } else {
        let strategy = ExecutionStrategy::ddp(
            devices.clone(),
            DistributedConfig {
                all_reduce_op: ReduceOperation::Mean,
            },
        );
        (strategy, Arc::new(DeviceAllReduce::new(devices.clone())?))
    };
    let shared = SharedStatistics::new(reducer, GradientReduction::Mean);
    let training = SupervisedTraining::new(&args.out, train_loader, valid_loader)
        .metrics((LossMetric::new(), SegmentationMetric::dice()))
        .with_training_strategy(TrainingStrategy::Default(strategy))
        .renderer(Box::new(PlainRenderer::new()) as Box<dyn MetricsRenderer>)
        .num_epochs(args.epochs);
    let model = Segmenter {
        unet: UNet::new(8, &devices[0].clone().autodiff()),
        loss: batch_dice_ce(shared)?,
    };
    let learner = Learner::new(model, AdamConfig::new().init(), 3e-3);
    let result = training.launch(learner);
    if let Some(error) = result.error {
        return Err(format!("training failed: {error}").into());
    }
    println!(
        "trained {} epoch(s) on {} worker(s) with batch Dice + CE shared across them; logs in {}",
        args.epochs,
        devices.len(),
        args.out.display()
    );
    Ok(())
}

/// The devices of the run: for one worker, flex, or burn's default device when `BURN_DEVICE`
/// names one (`BURN_DEVICE=cuda` with a `burn/cuda` build). Several
/// workers need GPUs with burn's CUDA backend, listed here as `(0..n).map(Device::cuda)`, which
/// only a build with `burn/cuda` has (see the module docs).
fn devices(workers: usize) -> Result<Vec<Device>, String> {
    match workers {
        0 => Err("--devices must be at least 1".into()),
        1 if std::env::var_os("BURN_DEVICE").is_some() => Ok(vec![Device::default()]),
        1 => Ok(vec![Device::flex()]),
        n => Err(format!(
            "{n} workers need NVIDIA GPUs: build with `--features train,burn/cuda` and list them \
             in `devices()` as `(0..n).map(Device::cuda).collect()`"
        )),
    }
}
