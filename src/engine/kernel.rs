//! What a host kernel is to the engine: a loss computed from slices, returning each problem's
//! value and, when asked, writing the gradient with respect to the input.

use std::any::Any;

use crate::cpu::math::Real;
use crate::cpu::parallel;
use crate::error::SegLossError;

/// Where a kernel writes the gradient of each problem's value with respect to `x`, and how:
/// `out = scale * g`, or `out += scale * g` when `accumulate`. A lone loss writes `g` itself;
/// a term of a compound loss adds its weighted share into the buffer the terms share.
pub(crate) struct Gradient<'a, F> {
    pub out: &'a mut [F],
    pub scale: f64,
    pub accumulate: bool,
}

impl<'a, F> Gradient<'a, F> {
    /// `out = g`.
    pub fn new(out: &'a mut [F]) -> Self {
        Gradient {
            out,
            scale: 1.0,
            accumulate: false,
        }
    }

    /// The destination, scale and accumulation of an optional gradient (`None`, 1, `false`
    /// without one), for kernels that hand out slices of the destination themselves.
    pub fn parts(grad: Option<Self>) -> (Option<&'a mut [F]>, f64, bool) {
        match grad {
            Some(g) => (Some(g.out), g.scale, g.accumulate),
            None => (None, 1.0, false),
        }
    }

    /// The same destination, reborrowed, with the scale multiplied by `factor` and
    /// accumulating when `add` (or when this one already does).
    pub fn share(&mut self, factor: f64, add: bool) -> Gradient<'_, F> {
        Gradient {
            out: &mut *self.out,
            scale: self.scale * factor,
            accumulate: self.accumulate || add,
        }
    }
}

/// The targets as a kernel reads them, borrowed from the backend's buffers: their labels and
/// the pixel weights, when the call has any.
#[derive(Clone, Copy)]
pub(crate) struct Targets<'a, F> {
    pub labels: Labels<'a, F>,
    /// One weight per pixel (`[N, P]`, the logits' pixels without their channels), `>= 0`;
    /// only a kernel whose [`TypedKernel::reads_pixel_weights`] is `true` is handed any.
    pub weights: Option<&'a [F]>,
}

/// Target labels: values in the input's float type (binary targets, or per-class targets
/// `[N, C, P]`), or class indices `[N, P]` in whatever integer type the caller's tensor holds.
#[derive(Clone, Copy)]
pub(crate) enum Labels<'a, F> {
    Values(&'a [F]),
    Indices(Indices<'a>),
}

impl<'a, F> Targets<'a, F> {
    /// Labels without weights.
    #[cfg(test)]
    pub fn unweighted(labels: Labels<'a, F>) -> Self {
        Targets {
            labels,
            weights: None,
        }
    }

    /// The float values; an error for class indices (a kernel of binary targets is never
    /// planned with indices: this is a guard, not a user-facing check).
    pub fn values(self) -> Result<&'a [F], SegLossError> {
        match self.labels {
            Labels::Values(values) => Ok(values),
            Labels::Indices(_) => Err(SegLossError::InvalidOption {
                name: "targets",
                value: "class indices".into(),
                allowed: "float targets for a binary loss",
            }),
        }
    }
}

/// Class indices in the integer type of the tensor they came from (burn hands out every one
/// of these: `i64` by default on the CPU backends, `i32` on wgpu, `u8` masks from data
/// loaders), read without conversion.
#[derive(Clone, Copy)]
pub(crate) enum Indices<'a> {
    I64(&'a [i64]),
    I32(&'a [i32]),
    I16(&'a [i16]),
    I8(&'a [i8]),
    U64(&'a [u64]),
    U32(&'a [u32]),
    U16(&'a [u16]),
    U8(&'a [u8]),
}

/// The class id of a pixel whose index is the ignored one.
pub(crate) const IGNORED: u32 = u32::MAX;
/// The class id of a pixel whose index is no class in `0..C` (and not ignored): it counts in
/// the sums, with every class target 0.
pub(crate) const NO_CLASS: u32 = u32::MAX - 1;

impl Indices<'_> {
    /// The number of indices.
    pub fn len(&self) -> usize {
        match self {
            Indices::I64(v) => v.len(),
            Indices::I32(v) => v.len(),
            Indices::I16(v) => v.len(),
            Indices::I8(v) => v.len(),
            Indices::U64(v) => v.len(),
            Indices::U32(v) => v.len(),
            Indices::U16(v) => v.len(),
            Indices::U8(v) => v.len(),
        }
    }

    /// Calls `f(offset, ids)` with the class ids ([`Indices::class_ids`]) of the `len`
    /// indices from `start`, a block of them at a time (`offset` counted from `start`), for
    /// callers that read the ids once rather than keep a buffer of them.
    pub fn class_id_blocks(
        &self,
        start: usize,
        len: usize,
        classes: usize,
        ignore: Option<i64>,
        mut f: impl FnMut(usize, &[u32]),
    ) {
        const BLOCK: usize = 2048;
        let mut block = [0_u32; BLOCK];
        for offset in (0..len).step_by(BLOCK) {
            let ids = &mut block[..(len - offset).min(BLOCK)];
            self.class_ids(start + offset, classes, ignore, ids);
            f(offset, ids);
        }
    }

    /// Writes the class ids of `out.len()` indices from `start` into `out`: the index itself
    /// when it is a class in `0..classes`, [`IGNORED`] where it equals `ignore` (checked first,
    /// so an ignored index may also be a class), [`NO_CLASS`] otherwise. One `match` per call:
    /// the loop inside is a plain conversion per integer type. Inlined, so that it is compiled
    /// into the SIMD copy of the kernel that calls it.
    #[inline(always)]
    pub fn class_ids(&self, start: usize, classes: usize, ignore: Option<i64>, out: &mut [u32]) {
        #[inline(always)]
        fn convert<T: Copy>(
            values: &[T],
            classes: usize,
            ignore: Option<i64>,
            out: &mut [u32],
            wide: impl Fn(T) -> i64,
        ) {
            // No sentinel stands for "no ignore index": every i64 (i64::MIN included) is a
            // value a caller may hand over, so the flag is kept beside the value.
            let (ignoring, ignore) = (ignore.is_some(), ignore.unwrap_or(0));
            for (o, &v) in out.iter_mut().zip(values) {
                let v = wide(v);
                *o = if ignoring & (v == ignore) {
                    IGNORED
                } else if (0..classes as i64).contains(&v) {
                    v as u32
                } else {
                    NO_CLASS
                };
            }
        }
        let end = start + out.len();
        match self {
            Indices::I64(v) => convert(&v[start..end], classes, ignore, out, |x| x),
            Indices::I32(v) => convert(&v[start..end], classes, ignore, out, i64::from),
            Indices::I16(v) => convert(&v[start..end], classes, ignore, out, i64::from),
            Indices::I8(v) => convert(&v[start..end], classes, ignore, out, i64::from),
            // u64 beyond i64::MAX wraps to a negative index: no class either way.
            Indices::U64(v) => convert(&v[start..end], classes, ignore, out, |x| x as i64),
            Indices::U32(v) => convert(&v[start..end], classes, ignore, out, i64::from),
            Indices::U16(v) => convert(&v[start..end], classes, ignore, out, i64::from),
            Indices::U8(v) => convert(&v[start..end], classes, ignore, out, i64::from),
        }
    }
}

/// A host kernel, generic over the float type: what each kernel implements (next to its
/// kernel, in `crate::kernels`). Every `TypedKernel` is a [`HostKernel`].
pub(crate) trait TypedKernel: Send + Sync {
    /// `true` when the loss has one problem per image (`[N]` values), `false` for one problem
    /// over the whole batch (`[1]`).
    fn per_image(&self) -> bool;
    /// Whether the kernel weighs pixels by [`Targets::weights`] (every loss's kernel does; a
    /// compound's when all its terms do). A kernel that does not must be planned without
    /// weights: the engine refuses to hand weights to it.
    fn reads_pixel_weights(&self) -> bool {
        false
    }
    /// The value of each problem from the `rows` images of `x` (the logits, flattened in
    /// their own order) and `y`; with `grad`, the gradient of each problem's value with
    /// respect to `x` written (or added) into it.
    fn run<F: HostFloat>(
        &self,
        x: &[F],
        y: Targets<'_, F>,
        rows: usize,
        grad: Option<Gradient<'_, F>>,
    ) -> Result<Vec<f64>, SegLossError>;
}

/// The object-safe form of [`TypedKernel`], which the engine holds as `Box<dyn HostKernel>`
/// (one type for every kernel: a plan names no loss).
pub(crate) trait HostKernel: Send + Sync {
    /// As [`TypedKernel::per_image`].
    fn per_image(&self) -> bool;
    /// As [`TypedKernel::reads_pixel_weights`].
    fn reads_pixel_weights(&self) -> bool;
    /// [`TypedKernel::run`] in f32.
    fn run_f32(
        &self,
        x: &[f32],
        y: Targets<'_, f32>,
        rows: usize,
        grad: Option<Gradient<'_, f32>>,
    ) -> Result<Vec<f64>, SegLossError>;
    /// [`TypedKernel::run`] in f64.
    fn run_f64(
        &self,
        x: &[f64],
        y: Targets<'_, f64>,
        rows: usize,
        grad: Option<Gradient<'_, f64>>,
    ) -> Result<Vec<f64>, SegLossError>;
    /// The kernel as `Any`, so that the code that merges the kernels of a compound loss
    /// (`crate::kernels::compound`) can find the ones it knows how to merge without the
    /// engine naming them.
    fn as_any(&self) -> &dyn Any;
    /// [`HostKernel::as_any`], owned.
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

impl<K: TypedKernel + 'static> HostKernel for K {
    fn per_image(&self) -> bool {
        TypedKernel::per_image(self)
    }
    fn reads_pixel_weights(&self) -> bool {
        TypedKernel::reads_pixel_weights(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
    fn run_f32(
        &self,
        x: &[f32],
        y: Targets<'_, f32>,
        rows: usize,
        grad: Option<Gradient<'_, f32>>,
    ) -> Result<Vec<f64>, SegLossError> {
        self.run(x, y, rows, grad)
    }
    fn run_f64(
        &self,
        x: &[f64],
        y: Targets<'_, f64>,
        rows: usize,
        grad: Option<Gradient<'_, f64>>,
    ) -> Result<Vec<f64>, SegLossError> {
        self.run(x, y, rows, grad)
    }
}

/// Runs `kernel` once its inputs' pixel weights, when there are any, are checked: every weight
/// `>= 0` (a negative weight is an error; a NaN weight is not, it gives a NaN loss as a NaN
/// input does). One read of the weights, in parallel, before the kernel's passes. Their shape
/// was checked with the logits' (`loss::pixel_weights::checked_weights`).
pub(crate) fn run_checked<F: HostFloat>(
    kernel: &dyn HostKernel,
    x: &[F],
    y: Targets<'_, F>,
    rows: usize,
    grad: Option<Gradient<'_, F>>,
) -> Result<Vec<f64>, SegLossError> {
    if let Some(w) = y.weights {
        // An or over each chunk (no early exit, so that the loop vectorises), and the position
        // of the first negative weight only on the error's path.
        let chunks = parallel::chunks(1, w.len());
        let negative = parallel::map(&chunks, |c| {
            w[c.range.clone()]
                .iter()
                .fold(0_u8, |any, &v| any | u8::from(v < F::ZERO))
        });
        if negative.iter().any(|&any| any != 0) {
            let at = w.iter().position(|&v| v < F::ZERO).unwrap_or_default();
            return Err(SegLossError::InvalidTargets {
                reason: format!(
                    "pixel weight {} at flat index {at}; pixel weights are >= 0",
                    w[at].to_f64()
                ),
            });
        }
    }
    F::run(kernel, x, y, rows, grad)
}

/// The float types the engine runs kernels in, each knowing which method of a
/// `dyn HostKernel` serves it (so generic code, a compound kernel's, can call boxed terms).
pub(crate) trait HostFloat: Real {
    fn run(
        kernel: &dyn HostKernel,
        x: &[Self],
        y: Targets<'_, Self>,
        rows: usize,
        grad: Option<Gradient<'_, Self>>,
    ) -> Result<Vec<f64>, SegLossError>;
}

impl HostFloat for f32 {
    fn run(
        kernel: &dyn HostKernel,
        x: &[f32],
        y: Targets<'_, f32>,
        rows: usize,
        grad: Option<Gradient<'_, f32>>,
    ) -> Result<Vec<f64>, SegLossError> {
        kernel.run_f32(x, y, rows, grad)
    }
}

impl HostFloat for f64 {
    fn run(
        kernel: &dyn HostKernel,
        x: &[f64],
        y: Targets<'_, f64>,
        rows: usize,
        grad: Option<Gradient<'_, f64>>,
    ) -> Result<Vec<f64>, SegLossError> {
        kernel.run_f64(x, y, rows, grad)
    }
}
