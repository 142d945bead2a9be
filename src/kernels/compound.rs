//! The host terms of a compound loss run as few host operations as possible: the multiclass
//! kernels that read the inputs alike become one [`ClassKernel`] with one head per term (one
//! softmax per pixel for all of them), and the host calls left, when their results have one
//! shape, one [`CompoundKernel`] (one gradient buffer for all of them, not one per term and
//! another for their sum).

use burn::tensor::Tensor;

use crate::engine::{Gradient, HostCall, HostFloat, HostKernel, HostTargets, Targets, TypedKernel};
use crate::error::SegLossError;
use crate::kernels::multiclass::ClassKernel;
use crate::kernels::multiclass::heads::Head;
use crate::options::Reduction;

/// The weighted host calls `terms` of one compound loss (every call on the compound's inputs)
/// merged into as few calls as run the same sum `sum_t w_t reduce_t(values_t)`.
pub(crate) fn merge<const D: usize>(terms: Vec<(f64, HostCall<D>)>) -> Vec<(f64, HostCall<D>)> {
    let calls = merge_class_kernels(terms);
    let same_shape = calls
        .windows(2)
        .all(|w| w[0].1.per_image_result() == w[1].1.per_image_result());
    if calls.len() < 2 || !same_shape {
        // Each term alone: the sum then reports the shape mismatch, if there is one.
        return calls;
    }
    let per_image = calls[0].1.per_image_result();
    let mut inputs = None;
    let mut kernel = CompoundKernel {
        terms: Vec::with_capacity(calls.len()),
        per_image,
    };
    for (weight, call) in calls {
        // Every call holds the same inputs (the compound's logits, targets and weights).
        inputs.get_or_insert((call.logits, call.targets, call.weights));
        kernel.terms.push((weight, call.reduction, call.kernel));
    }
    let Some(inputs) = inputs else {
        return Vec::new();
    };
    // The kernel applies each term's weight and reduction itself.
    vec![(1.0, host_call(inputs, kernel))]
}

/// The multiclass kernels among `terms` that share their pass (classes, activation,
/// `from_logits`, `ignore_index`) and the shape of their result merged into one kernel with
/// one head per term (each head weighted by its term); every other call as it was, first.
fn merge_class_kernels<const D: usize>(terms: Vec<(f64, HostCall<D>)>) -> Vec<(f64, HostCall<D>)> {
    let mut merged: Vec<(ClassKernel, Inputs<D>)> = Vec::new();
    let mut calls = Vec::new();
    for (weight, call) in terms {
        if !call.kernel.as_any().is::<ClassKernel>() {
            calls.push((weight, call));
            continue;
        }
        let HostCall {
            logits,
            targets,
            weights,
            kernel,
            ..
        } = call;
        let Ok(kernel) = kernel.into_any().downcast::<ClassKernel>() else {
            unreachable!("the kernel was checked to be a ClassKernel");
        };
        let heads = kernel.heads.iter().map(|h| Head {
            weight: weight * h.weight,
            ..h.clone()
        });
        match merged.iter_mut().find(|(k, ..)| shares_pass(k, &kernel)) {
            Some((k, ..)) => k.heads.extend(heads),
            None => {
                let heads = heads.collect();
                let inputs = (logits, targets, weights);
                merged.push((ClassKernel { heads, ..*kernel }, inputs));
            }
        }
    }
    for (kernel, inputs) in merged {
        // The kernel reduces each head's values itself.
        calls.push((1.0, host_call(inputs, kernel)));
    }
    calls
}

/// Whether two multiclass kernels read the inputs alike and give results of one shape.
fn shares_pass(a: &ClassKernel, b: &ClassKernel) -> bool {
    (
        a.classes,
        a.activation,
        a.from_logits,
        a.ignore_index,
        a.per_image,
    ) == (
        b.classes,
        b.activation,
        b.from_logits,
        b.ignore_index,
        b.per_image,
    )
}

/// The inputs of a host call: logits, targets and pixel weights.
type Inputs<const D: usize> = (Tensor<D>, HostTargets<D>, Option<Tensor<D>>);

fn host_call<const D: usize>(
    (logits, targets, weights): Inputs<D>,
    kernel: impl HostKernel + 'static,
) -> HostCall<D> {
    HostCall {
        logits,
        targets,
        weights,
        reduction: Reduction::None,
        kernel: Box::new(kernel),
    }
}

/// `sum_t weight_t * reduce_t(values_t)` over host terms, in one host operation: each term
/// writes `weight_t * d reduce_t / d values_t * g_t` into the gradient buffer, the first term
/// by assignment and the others by addition. Its values are per image (`[N]`) when every
/// term is per image with `Reduction::None`, one value (`[1]`) otherwise.
struct CompoundKernel {
    terms: Vec<(f64, Reduction, Box<dyn HostKernel>)>,
    per_image: bool,
}

impl TypedKernel for CompoundKernel {
    fn per_image(&self) -> bool {
        self.per_image
    }
    fn reads_pixel_weights(&self) -> bool {
        self.terms.iter().all(|(_, _, k)| k.reads_pixel_weights())
    }
    fn run<F: HostFloat>(
        &self,
        x: &[F],
        y: Targets<'_, F>,
        rows: usize,
        mut grad: Option<Gradient<'_, F>>,
    ) -> Result<Vec<f64>, SegLossError> {
        let mut total = vec![0.0; if self.per_image { rows } else { 1 }];
        for (t, (weight, reduction, kernel)) in self.terms.iter().enumerate() {
            // d reduce(values) / d values_k: 1/N for a mean over images, else 1.
            let factor = if kernel.per_image() && *reduction == Reduction::Mean {
                1.0 / rows as f64
            } else {
                1.0
            };
            let term_grad = grad.as_mut().map(|g| g.share(weight * factor, t > 0));
            let values = F::run(&**kernel, x, y, rows, term_grad)?;
            if self.per_image {
                for (sum, v) in total.iter_mut().zip(&values) {
                    *sum += weight * v;
                }
            } else {
                total[0] += weight * factor * values.iter().sum::<f64>();
            }
        }
        Ok(total)
    }
}
