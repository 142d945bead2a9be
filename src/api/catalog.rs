//! The list of losses. Each line names a loss's file under `src/loss/`, its config, its module
//! and its free function, and the anchor its module matches; from that line come the public
//! names, the module (`crate::api::modules`), and the variant of [`Loss`] or [`MulticlassLoss`]
//! (the run-time choice and the compound terms). Adding a loss is its file plus its line here
//! (`docs/ARCHITECTURE.md`).

use burn::tensor::Tensor;

use crate::api::distributed::{SharedStatistics, compute_shared};
use crate::api::modules::loss_module;
use crate::engine::Plan;
use crate::error::SegLossError;
use crate::loss::classes::ClassTargets;
use crate::loss::description::{LossDescription, compute};
use crate::loss::pixel_weights::{BinaryTargets, WeightedClassTargets};

/// The public names, modules and run-time enums of the binary losses (`binary { ... }`) and
/// the multiclass ones (`multiclass { ... }`), one line each:
/// `Variant: file::Config => Module, function, "anchor";`.
macro_rules! catalog {
    (
        binary {
            $($bv:ident: $bfile:ident :: $bconfig:ident => $bmodule:ident, $bfn:ident, $banchor:literal;)*
        }
        multiclass {
            $($mv:ident: $mfile:ident :: $mconfig:ident => $mmodule:ident, $mfn:ident, $manchor:literal;)*
        }
    ) => {
        $(pub use crate::loss::$bfile::{$bconfig, $bfn};)*
        $(pub use crate::loss::$mfile::{$mconfig, $mfn};)*

        /// Any binary loss of the crate with its options: a term of a
        /// [`CompoundConfig`](crate::losses::CompoundConfig), and the way to choose a loss at
        /// run time (from a config file, say): its module is the compound of that one term,
        /// `CompoundConfig::from(loss).init()?`.
        #[derive(burn::config::Config, Debug)]
        pub enum Loss {
            $(#[doc = concat!("[`", stringify!($bfn), "`].")] $bv($bconfig),)*
        }

        /// Any multiclass loss of the crate with its options: a term of a
        /// [`MulticlassCompoundConfig`](crate::losses::MulticlassCompoundConfig), and the way
        /// to choose a multiclass loss at run time, as [`Loss`].
        #[derive(burn::config::Config, Debug)]
        pub enum MulticlassLoss {
            $(#[doc = concat!("[`", stringify!($mfn), "`].")] $mv($mconfig),)*
        }

        impl Loss {
            /// Computes this loss with its options: the same as calling its function.
            ///
            /// # Errors
            /// Those of the loss's function.
            pub fn compute<const D: usize>(
                &self,
                logits: Tensor<D>,
                targets: impl Into<BinaryTargets<D>>,
            ) -> Result<Tensor<1>, SegLossError> {
                compute(self, logits, targets.into())
            }

            /// [`Loss::compute`] with batch statistics shared across data-parallel workers:
            /// soft Dice, soft Jaccard and Tversky with
            /// [`Aggregation::Batch`](crate::Aggregation) score the global batch (see
            /// [`crate::distributed`]); every other loss is computed as by [`Loss::compute`].
            ///
            /// # Errors
            /// Those of the loss's function, and those of the reducer. A worker whose inputs
            /// fail still takes part in the collective, with zeros, before it returns its
            /// error (see [`crate::distributed`]).
            pub fn compute_shared<const D: usize>(
                &self,
                logits: Tensor<D>,
                targets: impl Into<BinaryTargets<D>>,
                shared: &SharedStatistics,
            ) -> Result<Tensor<1>, SegLossError> {
                compute_shared(self, logits, targets.into(), shared)
            }
        }

        impl MulticlassLoss {
            /// Computes this loss with its options: the same as calling its function.
            ///
            /// # Errors
            /// Those of the loss's function.
            pub fn compute<const D: usize>(
                &self,
                logits: Tensor<D>,
                targets: impl Into<WeightedClassTargets<D>>,
            ) -> Result<Tensor<1>, SegLossError> {
                compute(self, logits, targets.into())
            }

            /// [`MulticlassLoss::compute`] with batch statistics shared across data-parallel
            /// workers: `multiclass_overlap` and `generalized_dice` with
            /// [`Aggregation::Batch`](crate::Aggregation) score the global batch (see
            /// [`crate::distributed`]); every other loss is computed as by
            /// [`MulticlassLoss::compute`].
            ///
            /// # Errors
            /// As [`Loss::compute_shared`].
            pub fn compute_shared<const D: usize>(
                &self,
                logits: Tensor<D>,
                targets: impl Into<WeightedClassTargets<D>>,
                shared: &SharedStatistics,
            ) -> Result<Tensor<1>, SegLossError> {
                compute_shared(self, logits, targets.into(), shared)
            }
        }

        impl LossDescription for Loss {
            type Targets<const D: usize> = BinaryTargets<D>;
            fn validate(&self) -> Result<(), SegLossError> {
                match self {
                    $(Loss::$bv(c) => c.validate(),)*
                }
            }
            fn plan<const D: usize>(
                &self,
                logits: Tensor<D>,
                targets: BinaryTargets<D>,
                share: bool,
            ) -> Result<Plan<D>, SegLossError> {
                match self {
                    $(Loss::$bv(c) => c.plan(logits, targets, share),)*
                }
            }
            fn shared_widths(&self, classes: usize) -> Vec<usize> {
                match self {
                    $(Loss::$bv(c) => c.shared_widths(classes),)*
                }
            }
        }

        impl LossDescription for MulticlassLoss {
            type Targets<const D: usize> = WeightedClassTargets<D>;
            fn validate(&self) -> Result<(), SegLossError> {
                match self {
                    $(MulticlassLoss::$mv(c) => c.validate(),)*
                }
            }
            fn plan<const D: usize>(
                &self,
                logits: Tensor<D>,
                targets: WeightedClassTargets<D>,
                share: bool,
            ) -> Result<Plan<D>, SegLossError> {
                match self {
                    $(MulticlassLoss::$mv(c) => c.plan(logits, targets, share),)*
                }
            }
            fn shared_widths(&self, classes: usize) -> Vec<usize> {
                match self {
                    $(MulticlassLoss::$mv(c) => c.shared_widths(classes),)*
                }
            }
        }

        $(loss_module!(
            #[doc = concat!("[`", stringify!($bfn), "`] as a module (", $banchor, ").")]
            $bmodule, $bconfig, $bfn, Tensor
        );)*
        $(loss_module!(
            #[doc = concat!("[`", stringify!($mfn), "`] as a module (", $manchor, ").")]
            $mmodule, $mconfig, $mfn, ClassTargets
        );)*
    };
}

catalog! {
    binary {
        BinaryCrossEntropy: cross_entropy::BinaryCrossEntropyConfig => BinaryCrossEntropyLoss, binary_cross_entropy, "torch `BCEWithLogitsLoss`";
        WeightedCrossEntropy: cross_entropy::WeightedCrossEntropyConfig => WeightedCrossEntropyLoss, weighted_cross_entropy, "wCE of Bertels et al.";
        SoftDice: dice::SoftDiceConfig => SoftDiceLoss, soft_dice, "MONAI `DiceLoss(sigmoid=True)`";
        SoftJaccard: jaccard::SoftJaccardConfig => SoftJaccardLoss, soft_jaccard, "smp `JaccardLoss`";
        Tversky: tversky::TverskyConfig => TverskyLoss, tversky, "MONAI `TverskyLoss`";
        Focal: focal::FocalConfig => FocalLoss, focal, "MONAI `FocalLoss(use_softmax=False)`";
        LovaszSigmoid: lovasz::LovaszSigmoidConfig => LovaszSigmoidLoss, lovasz_sigmoid, "Berman's `lovasz_softmax(classes=[1])` on sigmoid probabilities";
        LovaszHinge: lovasz::LovaszHingeConfig => LovaszHingeLoss, lovasz_hinge, "Berman's and smp's `lovasz_hinge`";
        Boundary: boundary::BoundaryConfig => BoundaryLoss, boundary_loss, "Kervadec et al.'s `SurfaceLoss`";
        HausdorffDt: hausdorff_dt::HausdorffDtConfig => HausdorffDtLoss, hausdorff_dt_loss, "MONAI `HausdorffDTLoss(sigmoid=True)`";
        Mcc: mcc::MccConfig => MccLoss, mcc, "smp `MCCLoss`";
        ClDice: cl_dice::ClDiceConfig => ClDiceLoss, cl_dice, "MONAI `SoftclDiceLoss(sigmoid=True)`";
    }
    multiclass {
        Overlap: multiclass::MulticlassOverlapConfig => MulticlassOverlapLoss, multiclass_overlap, "MONAI `DiceLoss(softmax=True, to_onehot_y=True)`";
        GeneralizedDice: generalized_dice::GeneralizedDiceConfig => GeneralizedDiceLoss, generalized_dice, "MONAI `GeneralizedDiceLoss`";
        LovaszSoftmax: lovasz_softmax::LovaszSoftmaxConfig => LovaszSoftmaxLoss, lovasz_softmax, "Berman's `lovasz_softmax`";
        Focal: multiclass_focal::MulticlassFocalConfig => MulticlassFocalLoss, multiclass_focal, "MONAI `FocalLoss(use_softmax=True)`; `gamma = 0`: torch `cross_entropy`";
        Boundary: boundary::MulticlassBoundaryConfig => MulticlassBoundaryLoss, multiclass_boundary_loss, "Kervadec et al.'s `SurfaceLoss`";
        HausdorffDt: hausdorff_dt::MulticlassHausdorffDtConfig => MulticlassHausdorffDtLoss, multiclass_hausdorff_dt_loss, "MONAI `HausdorffDTLoss(softmax=True)`";
        ClDice: cl_dice::MulticlassClDiceConfig => MulticlassClDiceLoss, multiclass_cl_dice, "MONAI `SoftclDiceLoss(softmax=True)`";
        WassersteinDice: wasserstein_dice::WassersteinDiceConfig => WassersteinDiceLoss, wasserstein_dice, "MONAI `GeneralizedWassersteinDiceLoss`";
        DiceCe: presets::DiceCeConfig => DiceCeLoss, dice_ce, "MONAI `DiceCELoss(softmax=True, to_onehot_y=True)`";
        DiceFocal: presets::DiceFocalConfig => DiceFocalLoss, dice_focal, "MONAI `DiceFocalLoss(softmax=True, to_onehot_y=True)`";
    }
}

#[cfg(all(test, feature = "flex", feature = "ndarray"))]
mod tests {
    use burn::tensor::{DType, Tensor, TensorData};

    use super::*;
    use crate::engine::Plan;
    use crate::engine::native_loss;
    use crate::engine::native_tests::devices;
    use crate::loss::description::LossDescription;

    /// The in-place custom operation must serve every binary loss on the CPU backends: the
    /// surrogate path gives the same numbers, so only this test notices a silent fallback
    /// (burn changing a primitive's layout, a new checkpointing strategy...).
    #[test]
    fn every_binary_loss_takes_the_in_place_operation_on_the_cpu_backends() {
        let losses = [
            Loss::BinaryCrossEntropy(BinaryCrossEntropyConfig::new()),
            Loss::WeightedCrossEntropy(WeightedCrossEntropyConfig::new()),
            Loss::SoftDice(SoftDiceConfig::new()),
            Loss::SoftJaccard(
                SoftJaccardConfig::new().with_aggregation(crate::options::Aggregation::Batch),
            ),
            Loss::Tversky(TverskyConfig::new()),
            Loss::Focal(FocalConfig::new()),
            Loss::LovaszSigmoid(LovaszSigmoidConfig::new()),
            Loss::LovaszHinge(
                LovaszHingeConfig::new().with_aggregation(crate::options::Aggregation::Batch),
            ),
            Loss::Mcc(MccConfig::new()),
            Loss::ClDice(ClDiceConfig::new()),
        ];
        let x: Vec<f64> = (0..32).map(|i| f64::from(i % 7) - 3.0).collect();
        let y: Vec<f64> = (0..32).map(|i| f64::from(i % 3 == 0)).collect();
        for (name, device) in devices() {
            for dtype in [DType::F32, DType::F64] {
                let tensor = |v: &[f64]| {
                    let data = TensorData::new(v.to_vec(), [2, 1, 4, 4]).convert_dtype(dtype);
                    Tensor::<4>::from_data(data, (&device, dtype))
                };
                let logits = if name.contains("autodiff") || name.contains("checkpointing") {
                    tensor(&x).require_grad()
                } else {
                    tensor(&x)
                };
                for loss in &losses {
                    let plan = loss.plan(logits.clone(), tensor(&y).into(), false).unwrap();
                    let Plan::Host(call) = plan else {
                        panic!("{loss:?} on {name}: Auto must choose the host path");
                    };
                    let native =
                        native_loss(&call.logits, &call.targets, None, 2, &*call.kernel).unwrap();
                    assert!(
                        native.is_some(),
                        "{loss:?} on {name} {dtype:?} fell back to the surrogate path"
                    );
                }
            }
        }
    }
}
