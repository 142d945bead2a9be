//! Every public function, fed arbitrary shapes, options and values (NaN, ±inf, ±1e30, class
//! indices of any `i64`), under `catch_unwind`: it returns a value or a typed `SegLossError`,
//! never a panic (issue "Reliability, round two", item 14).

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use burn::tensor::{Bool, DType, Device, Int, Tensor, TensorData};
use common::*;
use proptest::prelude::*;
use segloss::distributed::{GradientReduction, SharedStatistics, SingleWorker};
use segloss::losses::*;
use segloss::metrics::surface::{
    ClassSurfaceDistances, SurfaceConfig, SurfaceDistances, distance_transform,
};
use segloss::metrics::{ClassConfusion, Confusion};
use segloss::theory::prop2_family;
use segloss::{
    Aggregation, Execution, SegLossError, TargetKind, validate_class_indices, validate_targets,
};

/// A float a careless caller may hand over: ordinary values and the edges.
fn any_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => -8.0f64..8.0,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(1e30),
        1 => Just(-1e30),
        1 => Just(255.0),
        2 => Just(0.0),
        2 => Just(1.0),
    ]
}

/// A class index of any value, the edges of `i64` included.
fn any_label() -> impl Strategy<Value = i64> {
    prop_oneof![
        6 => 0i64..4,
        1 => Just(-1i64),
        1 => Just(i64::MIN),
        1 => Just(i64::MAX),
        1 => Just(255i64),
        1 => any::<i64>(),
    ]
}

/// A smoothing, weight or exponent: in range, negative, huge or not a number.
fn any_parameter() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => 0.0f64..2.0,
        1 => Just(-1.0),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(1e300),
    ]
}

/// A dimension: mostly 1 to 3, sometimes 0 (an empty tensor).
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![1 => Just(0usize), 6 => 1usize..4]
}

/// Shapes `[N, C, H, W]` with each size in `0..4`, and whether a second tensor takes another
/// shape.
#[derive(Clone, Debug)]
struct Case {
    shape: [usize; 4],
    other: [usize; 4],
    x: Vec<f64>,
    y: Vec<f64>,
    labels: Vec<i64>,
    parameter: f64,
    flag: bool,
    execution: Execution,
    dtype: DType,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(size(), 4),
        prop::collection::vec(size(), 4),
        // The same shape (and one channel, clean 0/1 targets) most of the time, so that most
        // cases get past the shape checks to the arithmetic.
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.5),
        prop::bool::weighted(0.7),
        any_parameter(),
        any::<bool>(),
        prop_oneof![
            Just(Execution::Auto),
            Just(Execution::Host),
            Just(Execution::Device)
        ],
        prop_oneof![
            3 => Just(DType::F32),
            1 => Just(DType::F64),
            1 => Just(DType::F16),
            1 => Just(DType::BF16)
        ],
    )
        .prop_flat_map(
            |(dims, other, same, one_channel, clean, parameter, flag, execution, dtype)| {
                let mut shape: [usize; 4] = dims.try_into().unwrap();
                if one_channel {
                    shape[1] = 1;
                }
                let other: [usize; 4] = if same {
                    shape
                } else {
                    other.try_into().unwrap()
                };
                let len = shape.iter().product::<usize>();
                let other_len = other.iter().product::<usize>();
                let target = if clean {
                    prop_oneof![Just(0.0), Just(1.0)].boxed()
                } else {
                    any_value().boxed()
                };
                (
                    prop::collection::vec(any_value(), len),
                    prop::collection::vec(target, other_len),
                    // Enough for any shape here (sizes below 4, so at most 4^4 elements).
                    prop::collection::vec(any_label(), 256),
                )
                    .prop_map(move |(x, y, labels)| Case {
                        shape,
                        other,
                        x,
                        y,
                        labels,
                        parameter,
                        flag,
                        execution,
                        dtype,
                    })
            },
        )
}

/// Runs `f` and fails on a panic; an `Err` must be a `SegLossError` (the type says so).
fn no_panic<T>(what: &str, case: &Case, f: impl FnOnce() -> Result<T, SegLossError>) {
    let result = catch_unwind(AssertUnwindSafe(f));
    if let Err(panic) = result {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        panic!("{what} panicked on {case:?}: {message}");
    }
}

fn binary_losses(c: &Case) -> Vec<Loss> {
    let (p, flag, ex) = (c.parameter, c.flag, c.execution);
    let aggregation = if flag {
        Aggregation::Batch
    } else {
        Aggregation::PerImage
    };
    vec![
        Loss::BinaryCrossEntropy(
            BinaryCrossEntropyConfig::new()
                .with_from_logits(flag)
                .with_execution(ex),
        ),
        Loss::WeightedCrossEntropy(
            WeightedCrossEntropyConfig::new()
                .with_prior(if flag { Prior::Fixed(p) } else { Prior::Batch })
                .with_fg_weight(Some(p))
                .with_execution(ex),
        ),
        Loss::SoftDice(
            SoftDiceConfig::new()
                .with_smooth_nr(p)
                .with_squared(flag)
                .with_aggregation(aggregation)
                .with_execution(ex),
        ),
        Loss::SoftJaccard(
            SoftJaccardConfig::new()
                .with_smooth_dr(p)
                .with_log_loss(flag)
                .with_execution(ex),
        ),
        Loss::Tversky(
            TverskyConfig::new()
                .with_alpha(p)
                .with_soft_label(flag)
                .with_execution(ex),
        ),
        Loss::Focal(FocalConfig::new().with_gamma(p).with_execution(ex)),
        Loss::LovaszSigmoid(
            LovaszSigmoidConfig::new()
                .with_aggregation(if flag {
                    Aggregation::PerImage
                } else {
                    Aggregation::Batch
                })
                .with_execution(ex),
        ),
        Loss::LovaszHinge(
            LovaszHingeConfig::new()
                .with_from_logits(flag)
                .with_execution(ex),
        ),
        Loss::Boundary(BoundaryConfig::new().with_spacing(flag.then(|| vec![p, 1.0]))),
        Loss::HausdorffDt(HausdorffDtConfig::new().with_alpha(p)),
    ]
}

fn multiclass_losses(c: &Case) -> Vec<MulticlassLoss> {
    let (p, flag, ex) = (c.parameter, c.flag, c.execution);
    let ignore = flag.then_some(i64::MAX);
    vec![
        MulticlassLoss::Overlap(
            MulticlassOverlapConfig::new()
                .with_smooth_nr(p)
                .with_ignore_index(ignore)
                .with_include_background(flag)
                .with_execution(ex),
        ),
        MulticlassLoss::GeneralizedDice(
            GeneralizedDiceConfig::new()
                .with_smooth_dr(p)
                .with_ignore_index(ignore)
                .with_execution(ex),
        ),
        MulticlassLoss::LovaszSoftmax(
            LovaszSoftmaxConfig::new()
                .with_ignore_index(ignore.map(|_| -1))
                .with_execution(ex),
        ),
        MulticlassLoss::Focal(
            MulticlassFocalConfig::new()
                .with_gamma(p)
                .with_ignore_index(ignore)
                .with_execution(ex),
        ),
        MulticlassLoss::Boundary(MulticlassBoundaryConfig::new().with_ignore_index(ignore)),
        MulticlassLoss::HausdorffDt(MulticlassHausdorffDtConfig::new().with_alpha(p)),
    ]
}

fn check_everything(c: &Case) {
    let device = f64_device();
    let float = |v: &[f64], shape: [usize; 4]| tensor(v, shape, &device, c.dtype);
    let (x, y) = (float(&c.x, c.shape), float(&c.y, c.other));
    let mut index_shape = c.shape;
    index_shape[1] = 1;
    let index_len: usize = index_shape.iter().product();
    let indices = |shape: [usize; 4], len: usize| {
        Tensor::<4, Int>::from_data(
            TensorData::new(c.labels[..len].to_vec(), shape),
            (&device, DType::I64),
        )
    };
    let labels = indices(index_shape, index_len);
    let masks = |v: &[f64], shape: [usize; 4]| {
        Tensor::<4, Bool>::from_data(
            TensorData::new(v.iter().map(|&v| v > 0.5).collect::<Vec<_>>(), shape),
            &device,
        )
    };

    for (k, loss) in binary_losses(c).into_iter().enumerate() {
        no_panic(&format!("binary loss {k}"), c, || {
            loss.compute(x.clone(), y.clone())
        });
    }
    let dice_ce = CompoundConfig::new()
        .with_term(c.parameter, binary_losses(c).remove(2))
        .with_term(1.0, binary_losses(c).remove(0));
    no_panic("compound", c, || compound(x.clone(), y.clone(), &dice_ce));
    for (k, loss) in multiclass_losses(c).into_iter().enumerate() {
        no_panic(&format!("multiclass loss {k} (indices)"), c, || {
            loss.compute(x.clone(), labels.clone())
        });
        no_panic(&format!("multiclass loss {k} (per class)"), c, || {
            loss.compute(x.clone(), y.clone())
        });
    }
    let mut multiclass = MulticlassCompoundConfig::new();
    for loss in multiclass_losses(c).into_iter().take(4) {
        multiclass = multiclass.with_term(1.0, loss);
    }
    no_panic("multiclass compound", c, || {
        multiclass_compound(x.clone(), labels.clone(), &multiclass)
    });
    // The shared (data-parallel) forms, with one worker: the same checks before the exchange.
    let shared = SharedStatistics::new(Arc::new(SingleWorker), GradientReduction::Mean);
    for (k, loss) in binary_losses(c).into_iter().enumerate() {
        no_panic(&format!("binary loss {k} (shared)"), c, || {
            loss.compute_shared(x.clone(), y.clone(), &shared)
        });
    }
    no_panic("compound (shared)", c, || {
        compound_shared(x.clone(), y.clone(), &dice_ce, &shared)
    });
    for (k, loss) in multiclass_losses(c).into_iter().enumerate() {
        no_panic(&format!("multiclass loss {k} (shared)"), c, || {
            loss.compute_shared(x.clone(), labels.clone(), &shared)
        });
    }
    no_panic("multiclass compound (shared)", c, || {
        multiclass_compound_shared(x.clone(), labels.clone(), &multiclass, &shared)
    });
    no_panic("prop2_family", c, || {
        prop2_family(c.parameter, c.labels[0].unsigned_abs())
    });
    no_panic("signed_distance_map", c, || {
        signed_distance_map(y.clone(), c.flag.then_some(&[c.parameter, 1.0, 1.0][..]))
    });
    no_panic("lovasz_grad", c, || {
        lovasz_grad(y.clone().flatten::<1>(0, 3))
    });
    no_panic("validate_targets", c, || {
        validate_targets(y.clone(), TargetKind::Soft)
    });
    no_panic("validate_class_indices", c, || {
        validate_class_indices(labels.clone(), c.shape[1], c.flag.then_some(i64::MIN))
    });
    no_panic("Confusion::from_masks", c, || {
        Confusion::from_masks(masks(&c.x, c.shape), masks(&c.y, c.other))
    });
    no_panic("Confusion::from_logits", c, || {
        Confusion::from_logits(x.clone(), y.clone(), c.parameter)
    });
    no_panic("ClassConfusion::from_indices", c, || {
        let other_len = c.other.iter().product();
        ClassConfusion::from_indices(
            labels.clone(),
            indices(c.other, other_len),
            c.shape[1],
            c.flag.then_some(-1),
        )
    });
    let surface = SurfaceConfig::new().with_spacing(c.flag.then(|| vec![c.parameter, 1.0]));
    no_panic("SurfaceDistances::from_masks", c, || {
        SurfaceDistances::from_masks(masks(&c.x, c.shape), masks(&c.y, c.other), &surface)
    });
    no_panic("ClassSurfaceDistances::from_indices", c, || {
        ClassSurfaceDistances::from_indices(
            labels.clone(),
            labels.clone(),
            c.shape[1],
            None,
            &surface,
        )
    });
    no_panic("distance_transform", c, || {
        let sites: Vec<bool> = c.x.iter().map(|&v| v > 0.0).collect();
        distance_transform(&sites, &c.other, c.flag.then_some(&[1.0, c.parameter][..]))
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn no_public_function_panics_on_any_input(c in case()) {
        check_everything(&c);
    }
}

/// The modules' `try_forward` and the loss enums go through the same checks; one careless call
/// of each kind, fixed, so a regression names its module.
#[test]
fn modules_return_errors_on_careless_input() {
    let device: Device = f64_device();
    let x = tensor(&[0.5; 12], [1, 3, 2, 2], &device, DType::F32);
    let module = SoftDiceConfig::new().init().unwrap();
    let result = module.try_forward(x.clone(), x.clone());
    assert!(
        matches!(result, Err(SegLossError::UnsupportedShape { .. })),
        "{result:?}"
    );
    let y255 = tensor(&[255.0; 4], [1, 1, 2, 2], &device, DType::F32);
    let x1 = tensor(&[0.5; 4], [1, 1, 2, 2], &device, DType::F32);
    let result = module.try_forward(x1, y255);
    assert!(
        matches!(result, Err(SegLossError::InvalidTargets { .. })),
        "{result:?}"
    );
}
