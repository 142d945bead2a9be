//! The loss modules: `init` checks the options once, `forward` and `try_forward` give what the
//! free functions give (values and gradients), `forward` panics with the error's message, each
//! module sits in a `#[derive(Module)]` model without adding parameters, and every module
//! works behind `Box<dyn SegmentationLoss>`.

mod common;

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use common::*;
use segloss::losses::*;
use segloss::{Aggregation, SegLossError};

const SHAPE: [usize; 4] = [2, 1, 4, 4];

fn binary_inputs(device: &Device) -> (Tensor<4>, Tensor<4>) {
    let mut rng = TestRng::new(7);
    let (x, y) = rng.logits_and_mask(32, 2.0, 0.4);
    (
        tensor(&x, SHAPE, device, DType::F32),
        tensor(&y, SHAPE, device, DType::F32),
    )
}

fn class_inputs(device: &Device) -> (Tensor<4>, Tensor<4, Int>) {
    let mut rng = TestRng::new(11);
    let x: Vec<f64> = (0..2 * 3 * 16).map(|_| rng.range(-2.0, 2.0)).collect();
    let y: Vec<i64> = (0..2 * 16).map(|_| (rng.next_u64() % 3) as i64).collect();
    (
        tensor(&x, [2, 3, 4, 4], device, DType::F32),
        Tensor::from_data(TensorData::new(y, [2, 1, 4, 4]), device),
    )
}

/// Value and gradient of `loss` at the binary inputs.
fn binary_outcome(
    loss: impl Fn(Tensor<4>, Tensor<4>) -> Tensor<1>,
    device: &Device,
) -> (Vec<f64>, Vec<f64>) {
    let ad = device.clone().autodiff();
    let (x, y) = binary_inputs(&ad);
    let x = x.require_grad();
    let value = loss(x.clone(), y);
    let grads = value.clone().backward();
    (to_vec(value), to_vec(x.grad(&grads).unwrap()))
}

/// Value and gradient of `loss` at the multiclass inputs.
fn class_outcome(
    loss: impl Fn(Tensor<4>, Tensor<4, Int>) -> Tensor<1>,
    device: &Device,
) -> (Vec<f64>, Vec<f64>) {
    let ad = device.clone().autodiff();
    let (x, y) = class_inputs(&ad);
    let x = x.require_grad();
    let value = loss(x.clone(), y);
    let grads = value.clone().backward();
    (to_vec(value), to_vec(x.grad(&grads).unwrap()))
}

fn dice_ce() -> CompoundConfig {
    CompoundConfig::new()
        .with_term(1.0, Loss::SoftDice(SoftDiceConfig::new()))
        .with_term(
            1.0,
            Loss::BinaryCrossEntropy(BinaryCrossEntropyConfig::new()),
        )
}

fn multiclass_dice_ce() -> MulticlassCompoundConfig {
    MulticlassCompoundConfig::new()
        .with_term(1.0, MulticlassLoss::Overlap(MulticlassOverlapConfig::new()))
        .with_term(
            1.0,
            MulticlassLoss::Focal(MulticlassFocalConfig::new().with_gamma(0.0)),
        )
}

/// Asserts that the module and the free function give the same bits.
fn same(module: (Vec<f64>, Vec<f64>), function: (Vec<f64>, Vec<f64>), what: &str) {
    assert_eq!(module.0, function.0, "{what}: value");
    assert_eq!(module.1, function.1, "{what}: gradient");
}

#[test]
fn every_module_computes_what_its_function_computes() {
    for (backend, device) in cpu_devices() {
        let d = &device;
        macro_rules! binary {
            ($config:expr, $init:ident, $function:ident) => {{
                let config = $config;
                let module = config.$init().unwrap();
                let what = format!("{} on {backend}", stringify!($function));
                same(
                    binary_outcome(|x, y| module.forward(x, y), d),
                    binary_outcome(|x, y| $function(x, y, &config).unwrap(), d),
                    &what,
                );
                same(
                    binary_outcome(|x, y| module.try_forward(x, y).unwrap(), d),
                    binary_outcome(|x, y| $function(x, y, &config).unwrap(), d),
                    &what,
                );
            }};
        }
        binary!(BinaryCrossEntropyConfig::new(), init, binary_cross_entropy);
        binary!(
            WeightedCrossEntropyConfig::new().with_prior(Prior::Fixed(0.3)),
            init,
            weighted_cross_entropy
        );
        binary!(SoftDiceConfig::new().with_squared(true), init, soft_dice);
        binary!(SoftJaccardConfig::new(), init, soft_jaccard);
        binary!(TverskyConfig::new().with_alpha(0.3), init, tversky);
        binary!(FocalConfig::new().with_alpha(Some(0.25)), init, focal);
        binary!(dice_ce(), init, compound);
        binary!(LovaszSigmoidConfig::new(), init, lovasz_sigmoid);
        binary!(LovaszHingeConfig::new(), init, lovasz_hinge);
        binary!(BoundaryConfig::new(), init, boundary_loss);
        binary!(HausdorffDtConfig::new(), init, hausdorff_dt_loss);

        macro_rules! multiclass {
            ($config:expr, $function:ident) => {{
                let config = $config;
                let module = config.init().unwrap();
                let what = format!("{} on {backend}", stringify!($function));
                same(
                    class_outcome(|x, y| module.forward(x, y), d),
                    class_outcome(|x, y| $function(x, y, &config).unwrap(), d),
                    &what,
                );
                same(
                    class_outcome(|x, y| module.try_forward(x, y).unwrap(), d),
                    class_outcome(|x, y| $function(x, y, &config).unwrap(), d),
                    &what,
                );
            }};
        }
        multiclass!(MulticlassOverlapConfig::new(), multiclass_overlap);
        multiclass!(GeneralizedDiceConfig::new(), generalized_dice);
        multiclass!(LovaszSoftmaxConfig::new(), lovasz_softmax);
        multiclass!(MulticlassFocalConfig::new(), multiclass_focal);
        multiclass!(multiclass_dice_ce(), multiclass_compound);
        multiclass!(MulticlassBoundaryConfig::new(), multiclass_boundary_loss);
        multiclass!(
            MulticlassHausdorffDtConfig::new(),
            multiclass_hausdorff_dt_loss
        );
    }
}

/// `init` rejects the options the free functions reject, with the same error, before any
/// input is seen.
#[test]
fn init_checks_the_options_once() {
    let device = f64_device();
    let (x, y) = binary_inputs(&device);
    fn same_error<T: std::fmt::Debug>(
        init: Result<T, SegLossError>,
        call: Result<Tensor<1>, SegLossError>,
    ) {
        let init = init.unwrap_err();
        assert_eq!(Some(init.clone()), call.err(), "{init}");
    }
    let bad = SoftDiceConfig::new().with_smooth_nr(-1.0);
    same_error(bad.init(), soft_dice(x.clone(), y.clone(), &bad));
    let bad = SoftJaccardConfig::new()
        .with_soft_label(true)
        .with_squared(true);
    same_error(bad.init(), soft_jaccard(x.clone(), y.clone(), &bad));
    let bad = TverskyConfig::new().with_beta(-0.5);
    same_error(bad.init(), tversky(x.clone(), y.clone(), &bad));
    let bad = FocalConfig::new().with_alpha(Some(1.5));
    same_error(bad.init(), focal(x.clone(), y.clone(), &bad));
    let bad = WeightedCrossEntropyConfig::new().with_prior(Prior::Fixed(1.0));
    same_error(
        bad.init(),
        weighted_cross_entropy(x.clone(), y.clone(), &bad),
    );
    let bad = LovaszHingeConfig::new().with_from_logits(false);
    same_error(bad.init(), lovasz_hinge(x.clone(), y.clone(), &bad));
    assert!(
        LovaszSigmoidConfig::new()
            .with_from_logits(false)
            .init()
            .is_ok(),
        "probabilities suit Lovász-sigmoid"
    );
    let empty = CompoundConfig::new();
    same_error(empty.init(), compound(x.clone(), y.clone(), &empty));
    let bad_term = dice_ce().with_term(1.0, Loss::Focal(FocalConfig::new().with_gamma(-1.0)));
    same_error(bad_term.init(), compound(x.clone(), y.clone(), &bad_term));
    let bad_weight = CompoundConfig::new().with_term(-1.0, Loss::SoftDice(SoftDiceConfig::new()));
    same_error(bad_weight.init(), compound(x, y, &bad_weight));

    let (x, y) = class_inputs(&device);
    let bad = MulticlassOverlapConfig::new().with_score(OverlapScore::Tversky {
        alpha: -0.1,
        beta: 0.5,
        gamma: 1.0,
    });
    same_error(bad.init(), multiclass_overlap(x.clone(), y.clone(), &bad));
    let bad = MulticlassOverlapConfig::new().with_class_weights(Some(vec![1.0, -1.0, 1.0]));
    same_error(bad.init(), multiclass_overlap(x.clone(), y.clone(), &bad));
    let bad = GeneralizedDiceConfig::new().with_smooth_dr(f64::INFINITY);
    same_error(bad.init(), generalized_dice(x.clone(), y.clone(), &bad));
    let bad = LovaszSoftmaxConfig::new().with_classes(LovaszClasses::List(vec![]));
    same_error(bad.init(), lovasz_softmax(x.clone(), y.clone(), &bad));
    let bad = MulticlassFocalConfig::new().with_gamma(-2.0);
    same_error(bad.init(), multiclass_focal(x.clone(), y.clone(), &bad));
    let empty = MulticlassCompoundConfig::new();
    same_error(empty.init(), multiclass_compound(x, y, &empty));
}

#[test]
fn try_forward_returns_the_error_that_forward_panics_with() {
    let device = f64_device();
    let loss = SoftDiceConfig::new().init().unwrap();
    let (x, _) = binary_inputs(&device);
    let wrong = tensor(&[0.0; 8], [2, 1, 2, 2], &device, DType::F32);
    let err = loss.try_forward(x.clone(), wrong.clone()).unwrap_err();
    assert!(matches!(err, SegLossError::ShapeMismatch { .. }), "{err}");
    let forward = std::panic::AssertUnwindSafe(|| loss.forward(x, wrong));
    let panic = std::panic::catch_unwind(forward).unwrap_err();
    let message = panic
        .downcast_ref::<String>()
        .expect("a formatted panic message");
    assert_eq!(message, &err.to_string());
}

/// A model that holds a loss module next to a layer, as a user's model would.
#[derive(Module, Debug)]
struct Segmenter {
    conv: Conv2d,
    loss: CompoundLoss,
    lovasz: LovaszHingeLoss,
    multiclass: MulticlassCompoundLoss,
}

#[test]
fn loss_modules_are_fields_of_a_model_without_parameters() {
    let device = f64_device();
    let conv = Conv2dConfig::new([1, 1], [3, 3])
        .with_padding(PaddingConfig2d::Same)
        .init(&device);
    let conv_params = conv.num_params();
    let model = Segmenter {
        conv,
        loss: dice_ce().init().unwrap(),
        lovasz: LovaszHingeConfig::new().init().unwrap(),
        multiclass: multiclass_dice_ce().init().unwrap(),
    };
    assert_eq!(
        model.num_params(),
        conv_params,
        "the losses add no parameter"
    );
    // Moving, cloning and printing the model keep the losses and their options.
    let model = model.fork(&device.clone().autodiff()).clone();
    let shown = model.to_string();
    assert!(shown.contains("loss: CompoundLoss"), "{shown}");
    assert!(shown.contains("SoftDice"), "{shown}");
    assert!(shown.contains("lovasz: LovaszHingeLoss"), "{shown}");
    assert_eq!(model.loss.config().terms.len(), 2);
    assert_eq!(model.lovasz.config().aggregation, Aggregation::PerImage);
    let (x, y) = binary_inputs(&device.clone().autodiff());
    let value = model.loss.forward(model.conv.forward(x), y);
    assert!(to_vec(value)[0].is_finite());
}

/// A loss chosen at run time is the compound of that one term: a module like any other, equal
/// to the loss's function.
#[test]
fn any_loss_chosen_at_run_time_is_a_module() {
    let device = f64_device();
    let binary = [
        Loss::BinaryCrossEntropy(BinaryCrossEntropyConfig::new()),
        Loss::WeightedCrossEntropy(WeightedCrossEntropyConfig::new()),
        Loss::SoftDice(SoftDiceConfig::new()),
        Loss::SoftJaccard(SoftJaccardConfig::new()),
        Loss::Tversky(TverskyConfig::new()),
        Loss::Focal(FocalConfig::new()),
        Loss::LovaszSigmoid(LovaszSigmoidConfig::new()),
        Loss::LovaszHinge(LovaszHingeConfig::new()),
        Loss::Boundary(BoundaryConfig::new()),
        Loss::HausdorffDt(HausdorffDtConfig::new()),
    ];
    let (x, y) = binary_inputs(&device);
    for config in &binary {
        let loss: CompoundLoss = CompoundConfig::from(config.clone()).init().unwrap();
        let loss = loss.clone(); // a module is Clone: a model holding it can be cloned
        let expected = to_vec(config.compute(x.clone(), y.clone()).unwrap());
        assert_eq!(
            to_vec(loss.forward(x.clone(), y.clone())),
            expected,
            "{config:?}"
        );
    }
    // Modules made directly are the same trait objects.
    let held: Vec<Box<dyn SegmentationLoss<4, Targets = Tensor<4>>>> = vec![
        Box::new(dice_ce().init().unwrap()),
        Box::new(SoftDiceConfig::new().init().unwrap()),
    ];
    for loss in &held {
        assert!(to_vec(loss.try_forward(x.clone(), y.clone()).unwrap())[0] > 0.0);
    }
    assert!(
        LovaszHingeConfig::new()
            .with_from_logits(false)
            .init()
            .is_err()
    );
    assert!(
        CompoundConfig::from(Loss::LovaszHinge(
            LovaszHingeConfig::new().with_from_logits(false)
        ))
        .init()
        .is_err()
    );

    let multiclass = [
        MulticlassLoss::Overlap(MulticlassOverlapConfig::new()),
        MulticlassLoss::GeneralizedDice(GeneralizedDiceConfig::new()),
        MulticlassLoss::LovaszSoftmax(LovaszSoftmaxConfig::new()),
        MulticlassLoss::Focal(MulticlassFocalConfig::new()),
        MulticlassLoss::Boundary(MulticlassBoundaryConfig::new()),
        MulticlassLoss::HausdorffDt(MulticlassHausdorffDtConfig::new()),
    ];
    let (x, y) = class_inputs(&device);
    for config in &multiclass {
        let loss: MulticlassCompoundLoss = MulticlassCompoundConfig::from(config.clone())
            .init()
            .unwrap();
        let expected = to_vec(config.compute(x.clone(), y.clone()).unwrap());
        assert_eq!(
            to_vec(loss.forward(x.clone(), y.clone())),
            expected,
            "{config:?}"
        );
    }
}

/// `segloss::losses` and `burn::nn::loss` glob-imported together: every name a user reaches
/// for resolves, from either crate. The one name both export is `BinaryCrossEntropyLoss`
/// (the naming rule gives ours burn's name), which such a user names by its path.
mod beside_burn_nn {
    use burn::nn::loss::*;
    use segloss::losses::*;

    #[test]
    fn glob_imports_of_both_leave_every_other_name_unambiguous() {
        // burn's own losses and its `Reduction` (segloss's lives at the crate root).
        let _ = CrossEntropyLossConfig::new();
        let _ = BinaryCrossEntropyLossConfig::new();
        let _ = MseLoss::new();
        let _ = Reduction::Mean;
        // segloss's configs and modules.
        let _: segloss::losses::BinaryCrossEntropyLoss =
            BinaryCrossEntropyConfig::new().init().unwrap();
        let _: WeightedCrossEntropyLoss = WeightedCrossEntropyConfig::new().init().unwrap();
        let _: SoftDiceLoss = SoftDiceConfig::new().init().unwrap();
        let _: SoftJaccardLoss = SoftJaccardConfig::new().init().unwrap();
        let _: TverskyLoss = TverskyConfig::new().init().unwrap();
        let _: FocalLoss = FocalConfig::new().init().unwrap();
        let _: LovaszSigmoidLoss = LovaszSigmoidConfig::new().init().unwrap();
        let _: LovaszHingeLoss = LovaszHingeConfig::new().init().unwrap();
        let _: BoundaryLoss = BoundaryConfig::new().init().unwrap();
        let _: HausdorffDtLoss = HausdorffDtConfig::new().init().unwrap();
        let _: CompoundLoss = CompoundConfig::from(Loss::SoftDice(SoftDiceConfig::new()))
            .init()
            .unwrap();
        let _: MulticlassOverlapLoss = MulticlassOverlapConfig::new().init().unwrap();
        let _: GeneralizedDiceLoss = GeneralizedDiceConfig::new().init().unwrap();
        let _: LovaszSoftmaxLoss = LovaszSoftmaxConfig::new().init().unwrap();
        let _: MulticlassFocalLoss = MulticlassFocalConfig::new().init().unwrap();
        let _: MulticlassBoundaryLoss = MulticlassBoundaryConfig::new().init().unwrap();
        let _: MulticlassHausdorffDtLoss = MulticlassHausdorffDtConfig::new().init().unwrap();
        let _: MulticlassCompoundLoss =
            MulticlassCompoundConfig::from(MulticlassLoss::Overlap(MulticlassOverlapConfig::new()))
                .init()
                .unwrap();
    }
}
