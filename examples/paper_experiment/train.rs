//! The paper's training protocol: Adam, cross-entropy first, then fine-tuning from that
//! checkpoint with each loss, keeping the model with the best validation loss.

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{DType, Device, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use segloss::SegLossError;
use segloss::losses::*;

use crate::data::{Rng, Sample};
use crate::model::UNet;

/// The losses compared in Table 1 of Bertels et al.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    CrossEntropy,
    WeightedCrossEntropy,
    SoftDice,
    SoftJaccard,
    LovaszSigmoid,
}

impl Loss {
    pub const ALL: [Loss; 5] = [
        Loss::CrossEntropy,
        Loss::WeightedCrossEntropy,
        Loss::SoftDice,
        Loss::SoftJaccard,
        Loss::LovaszSigmoid,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Loss::CrossEntropy => "CE",
            Loss::WeightedCrossEntropy => "wCE",
            Loss::SoftDice => "soft Dice",
            Loss::SoftJaccard => "soft Jaccard",
            Loss::LovaszSigmoid => "Lovasz-sigmoid",
        }
    }

    /// The segloss loss module of this entry of the table, as the crate's run-time choice of
    /// a loss: its config, then `init`. `prior` is the foreground fraction of the training
    /// set: wCE weighs foreground pixels `1/(2p)` and background pixels `1/(2-2p)`, as in the
    /// paper.
    pub fn module(self, prior: f64) -> Result<CompoundLoss, SegLossError> {
        let config = match self {
            Loss::CrossEntropy => {
                segloss::losses::Loss::BinaryCrossEntropy(BinaryCrossEntropyConfig::new())
            }
            Loss::WeightedCrossEntropy => segloss::losses::Loss::WeightedCrossEntropy(
                WeightedCrossEntropyConfig::new().with_prior(Prior::Fixed(prior)),
            ),
            Loss::SoftDice => segloss::losses::Loss::SoftDice(SoftDiceConfig::new()),
            Loss::SoftJaccard => segloss::losses::Loss::SoftJaccard(SoftJaccardConfig::new()),
            Loss::LovaszSigmoid => segloss::losses::Loss::LovaszSigmoid(LovaszSigmoidConfig::new()),
        };
        CompoundConfig::from(config).init()
    }
}

/// Stacks samples `indices` into `([B, 1, S, S] images, [B, 1, S, S] masks)` on `device`.
pub fn batch(
    samples: &[Sample],
    indices: &[usize],
    size: usize,
    device: &Device,
) -> (Tensor<4>, Tensor<4>) {
    let shape = [indices.len(), 1, size, size];
    let gather = |f: &dyn Fn(&Sample) -> &Vec<f32>| {
        let values: Vec<f32> = indices
            .iter()
            .flat_map(|&i| f(&samples[i]).iter().copied())
            .collect();
        Tensor::from_data(TensorData::new(values, shape), (device, DType::F32))
    };
    (gather(&|s| &s.image), gather(&|s| &s.mask))
}

/// The training and validation sets, and the training set's foreground prior (for wCE).
pub struct TrainingData<'a> {
    pub train: &'a [Sample],
    pub val: &'a [Sample],
    pub prior: f64,
}

/// Settings of one training run.
pub struct Schedule {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub size: usize,
}

/// Trains `model` with `loss` for `schedule.epochs` epochs (Adam), evaluating the same loss
/// on the validation set after every epoch; returns the model of the best epoch and its
/// validation loss.
pub fn train(
    mut model: UNet,
    loss: Loss,
    data: &TrainingData,
    schedule: &Schedule,
    device: &Device,
    rng: &mut Rng,
    label: &str,
) -> Result<(UNet, f64), SegLossError> {
    let (train_set, val_set) = (data.train, data.val);
    let objective = loss.module(data.prior)?;
    let mut optimizer = AdamConfig::new().init();
    let steps_per_epoch = train_set.len().div_ceil(schedule.batch_size);
    let bar = ProgressBar::new((schedule.epochs * steps_per_epoch) as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>28} [{bar:30}] {pos}/{len} steps {elapsed} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    let mut best = (model.clone(), f64::INFINITY);
    for epoch in 0..schedule.epochs {
        for chunk in rng.permutation(train_set.len()).chunks(schedule.batch_size) {
            let (x, y) = batch(train_set, chunk, schedule.size, device);
            let value = objective.try_forward(model.forward(x), y)?;
            let grads = GradientsParams::from_grads(value.backward(), &model);
            model = optimizer.step(schedule.learning_rate, model, grads);
            bar.inc(1);
        }
        let val = validation_loss(&model, &objective, val_set, schedule, device)?;
        if val < best.1 {
            best = (model.clone(), val);
        }
        bar.set_message(format!(
            "epoch {} val {val:.4} (best {:.4})",
            epoch + 1,
            best.1
        ));
    }
    bar.finish();
    Ok(best)
}

/// Mean of the batch losses over the validation set (no gradient kept).
fn validation_loss(
    model: &UNet,
    objective: &CompoundLoss,
    val_set: &[Sample],
    schedule: &Schedule,
    device: &Device,
) -> Result<f64, SegLossError> {
    let indices: Vec<usize> = (0..val_set.len()).collect();
    let mut total = 0.0;
    for chunk in indices.chunks(schedule.batch_size) {
        let (x, y) = batch(val_set, chunk, schedule.size, device);
        let logits = model.forward(x).detach();
        let value: f32 = objective.try_forward(logits, y)?.into_scalar();
        total += f64::from(value) * chunk.len() as f64;
    }
    Ok(total / val_set.len() as f64)
}
