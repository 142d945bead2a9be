//! Bit fingerprints of every loss's value and gradient (verification only, not committed).
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use segloss::losses::*;
use segloss::{Aggregation, Execution, Reduction};

fn hash(bits: impl Iterator<Item = u64>) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bits {
        h ^= b;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

fn values(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * scale
        })
        .collect()
}

fn fp(name: &str, device: &Device, dtype: DType, f: impl Fn(Tensor<4>) -> Tensor<1>, shape: [usize; 4]) {
    let n: usize = shape.iter().product();
    let x = Tensor::<4>::from_data(TensorData::new(values(n, 7, 8.0), shape).convert_dtype(dtype), (device, dtype)).require_grad();
    let loss = f(x.clone());
    let v: Vec<f64> = loss.clone().into_data().convert::<f64>().to_vec().unwrap();
    let g = x.grad(&loss.sum().backward()).unwrap();
    let g: Vec<f64> = g.into_data().convert::<f64>().to_vec().unwrap();
    println!("{name} {dtype:?} {:?} v={:016x} g={:016x}", device, hash(v.iter().map(|x| x.to_bits())), hash(g.iter().map(|x| x.to_bits())));
}

fn main() {
    #[allow(deprecated)]
    let devices = [Device::flex().autodiff(), Device::ndarray().autodiff()];
    for device in &devices {
        for dtype in [DType::F32, DType::F64] {
            let bshape = [3, 1, 17, 19];
            let n: usize = bshape.iter().product();
            let y = Tensor::<4>::from_data(TensorData::new(values(n, 3, 1.0).iter().map(|v| if *v > 0.1 { 1.0 } else { 0.0 }).collect::<Vec<f64>>(), bshape).convert_dtype(dtype), (device, dtype));
            for ex in [Execution::Auto, Execution::Device] {
                for red in [Reduction::Mean, Reduction::None] {
                    let binary: Vec<(&str, Loss)> = vec![
                        ("bce", Loss::BinaryCrossEntropy(BinaryCrossEntropyConfig::new().with_execution(ex).with_reduction(red))),
                        ("wce", Loss::WeightedCrossEntropy(WeightedCrossEntropyConfig::new().with_execution(ex).with_reduction(red))),
                        ("dice", Loss::SoftDice(SoftDiceConfig::new().with_execution(ex).with_reduction(red))),
                        ("dice_batch", Loss::SoftDice(SoftDiceConfig::new().with_aggregation(Aggregation::Batch).with_execution(ex).with_reduction(red))),
                        ("jaccard", Loss::SoftJaccard(SoftJaccardConfig::new().with_execution(ex).with_reduction(red))),
                        ("tversky", Loss::Tversky(TverskyConfig::new().with_alpha(0.3).with_execution(ex).with_reduction(red))),
                        ("focal", Loss::Focal(FocalConfig::new().with_execution(ex).with_reduction(red))),
                        ("lovasz_sigmoid", Loss::LovaszSigmoid(LovaszSigmoidConfig::new().with_execution(ex).with_reduction(red))),
                        ("lovasz_hinge", Loss::LovaszHinge(LovaszHingeConfig::new().with_execution(ex).with_reduction(red))),
                        ("lovasz_hinge_batch", Loss::LovaszHinge(LovaszHingeConfig::new().with_aggregation(Aggregation::Batch).with_execution(ex).with_reduction(red))),
                        ("boundary", Loss::Boundary(BoundaryConfig::new().with_reduction(red))),
                        ("hausdorff", Loss::HausdorffDt(HausdorffDtConfig::new().with_reduction(red))),
                    ];
                    for (name, loss) in &binary {
                        fp(&format!("{name} {ex:?} {red:?}"), device, dtype, |x| loss.compute(x, y.clone()).unwrap(), bshape);
                    }
                    let dice_bce = CompoundConfig::new()
                        .with_term(1.0, binary[2].1.clone())
                        .with_term(0.5, binary[0].1.clone())
                        .with_term(2.0, binary[6].1.clone());
                    fp(&format!("compound {ex:?} {red:?}"), device, dtype, |x| compound(x, y.clone(), &dice_bce).unwrap(), bshape);
                    // multiclass
                    let mshape = [3, 4, 17, 19];
                    let labels: Vec<i64> = values(3 * 17 * 19, 5, 1.0).iter().map(|v| ((v + 0.5) * 4.0).floor() as i64).map(|c| c.clamp(0, 3)).collect();
                    let idx = Tensor::<4, Int>::from_data(TensorData::new(labels, [3, 1, 17, 19]), device);
                    let multi: Vec<(&str, MulticlassLoss)> = vec![
                        ("overlap", MulticlassLoss::Overlap(MulticlassOverlapConfig::new().with_execution(ex).with_reduction(red))),
                        ("overlap_batch", MulticlassLoss::Overlap(MulticlassOverlapConfig::new().with_aggregation(Aggregation::Batch).with_execution(ex).with_reduction(red))),
                        ("gdice", MulticlassLoss::GeneralizedDice(GeneralizedDiceConfig::new().with_execution(ex).with_reduction(red))),
                        ("lovasz_softmax", MulticlassLoss::LovaszSoftmax(LovaszSoftmaxConfig::new().with_execution(ex).with_reduction(red))),
                        ("lovasz_softmax_img", MulticlassLoss::LovaszSoftmax(LovaszSoftmaxConfig::new().with_aggregation(Aggregation::PerImage).with_execution(ex).with_reduction(red))),
                        ("mfocal", MulticlassLoss::Focal(MulticlassFocalConfig::new().with_execution(ex).with_reduction(red))),
                        ("mce", MulticlassLoss::Focal(MulticlassFocalConfig::new().with_gamma(0.0).with_execution(ex).with_reduction(red))),
                        ("mboundary", MulticlassLoss::Boundary(MulticlassBoundaryConfig::new().with_reduction(red))),
                        ("mhausdorff", MulticlassLoss::HausdorffDt(MulticlassHausdorffDtConfig::new().with_reduction(red))),
                    ];
                    for (name, loss) in &multi {
                        fp(&format!("{name} {ex:?} {red:?}"), device, dtype, |x| loss.compute(x, idx.clone()).unwrap(), mshape);
                    }
                    let dice_ce = MulticlassCompoundConfig::new()
                        .with_term(1.0, multi[0].1.clone())
                        .with_term(1.0, multi[6].1.clone());
                    fp(&format!("mcompound {ex:?} {red:?}"), device, dtype, |x| multiclass_compound(x, idx.clone(), &dice_ce).unwrap(), mshape);
                }
            }
        }
    }
}
