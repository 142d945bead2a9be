//! How the multiclass kernels walk their inputs: logits `[N, C, P]` (class stride `P`) in
//! chunks of pixels of one image (the unit of parallel work), each in blocks of pixels across
//! all the classes (the unit of vectorised work, [`block`](super::block)).

use std::ops::Range;

use crate::cpu::lanes::widest;
use crate::cpu::math::Real;
use crate::cpu::parallel::{self, CHUNK, Chunk};
use crate::cpu::scratch::with_scratch;
use crate::engine::{Labels, Targets};
use crate::error::SegLossError;

use super::block::{ImageTargets, Scratch};

/// The inputs of a pass: logits `x` `[rows, C, len]` and their targets `y` (indices
/// `[rows, len]` or values `[rows, C, len]`).
#[derive(Clone, Copy)]
pub(crate) struct Inputs<'a, F> {
    pub x: &'a [F],
    pub y: Targets<'a, F>,
    pub rows: usize,
    /// Pixels per image.
    pub len: usize,
}

/// Elements (pixels times classes) in a block: its buffers (16 KB of probabilities in f32)
/// stay in L1 and L2 cache (`benches/results/kernel_notes.md#block-size`).
const BLOCK_ELEMENTS: usize = 4096;

/// What every multiclass kernel needs to read its inputs: the class count and the ignored
/// index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClassLayout {
    pub classes: usize,
    pub ignore_index: Option<i64>,
}

impl ClassLayout {
    /// The inputs of a pass over logits `x` `[rows, C, P]` with targets `y` (indices
    /// `[rows, P]` or values `[rows, C, P]`); an error for sizes that do not fit.
    pub fn inputs<'a, F>(
        &self,
        x: &'a [F],
        y: Targets<'a, F>,
        rows: usize,
    ) -> Result<Inputs<'a, F>, SegLossError> {
        let classes = self.classes;
        let len = x.len() / (rows * classes).max(1);
        let targets_fit = match y.labels {
            Labels::Values(v) => v.len() == x.len(),
            Labels::Indices(i) => i.len() == rows * len,
        };
        if rows == 0 || classes == 0 || x.len() != rows * classes * len || !targets_fit {
            return Err(SegLossError::InvalidOption {
                name: "targets",
                value: format!("{} logits for {rows} images of {classes} classes", x.len()),
                allowed: "logits [N, C, ...] and targets [N, 1, ...] (indices) or [N, C, ...]",
            });
        }
        Ok(Inputs { x, y, rows, len })
    }

    /// Pixels per block.
    pub fn block(&self) -> usize {
        // A multiple of 16 (one AVX-512 vector of f32), so the class loops have no remainder.
        (BLOCK_ELEMENTS / self.classes / 16 * 16).clamp(16, 512)
    }

    /// The chunks of pixels: at most [`CHUNK`] elements (pixels times classes) each, fixed by
    /// the shape alone (so are the sums over them).
    pub fn chunks(&self, rows: usize, len: usize) -> Vec<Chunk> {
        parallel::chunks_of(rows, len, (CHUNK / self.classes).max(self.block()))
    }

    /// The targets of image `image`.
    pub fn image_targets<'a, F>(
        &self,
        y: Targets<'a, F>,
        image: usize,
        len: usize,
    ) -> ImageTargets<'a, F> {
        let size = self.classes * len;
        match y.labels {
            Labels::Values(v) => ImageTargets::Values(&v[image * size..(image + 1) * size]),
            Labels::Indices(indices) => ImageTargets::Indices {
                indices,
                offset: image * len,
                ignore: self.ignore_index,
            },
        }
    }
}

/// The pixels of `chunk` within its image.
pub(crate) fn pixel_range(chunk: &Chunk, len: usize) -> Range<usize> {
    let start = chunk.range.start - chunk.row * len;
    start..start + chunk.range.len()
}

/// For each chunk (pixels of one image), its part of each class's row of `out` `[N, C, len]`:
/// disjoint mutable slices, `C` per chunk.
pub(crate) fn class_slices<'a, F>(
    out: &'a mut [F],
    chunks: &[Chunk],
    classes: usize,
    len: usize,
) -> Vec<Vec<&'a mut [F]>> {
    let mut per_chunk: Vec<Vec<&'a mut [F]>> = chunks.iter().map(|_| Vec::new()).collect();
    for (image, image_out) in out.chunks_mut(classes * len).enumerate() {
        for row in image_out.chunks_mut(len) {
            let mut rest = row;
            let mut at = 0;
            for (k, chunk) in chunks.iter().enumerate().filter(|(_, c)| c.row == image) {
                let range = pixel_range(chunk, len);
                let (piece, tail) = std::mem::take(&mut rest).split_at_mut(range.end - at);
                per_chunk[k].push(&mut piece[range.start - at..]);
                rest = tail;
                at = range.end;
            }
        }
    }
    per_chunk
}

/// One chunk of a pass, as the pass's body sees it.
pub(crate) struct ChunkView<'a, F> {
    /// The chunk's image.
    pub image: usize,
    /// The image's logits `[C, len]`.
    pub x: &'a [F],
    pub targets: ImageTargets<'a, F>,
    /// The chunk's pixels within the image.
    pub pixels: Range<usize>,
    /// The chunk's part of each class's row of the pass's output (empty without one).
    pub out: Vec<&'a mut [F]>,
}

impl ClassLayout {
    /// Runs `pass` on every chunk of the logits `x` `[rows, C, len]` in parallel, each with its
    /// part of `out` when given and this thread's block buffers, and returns the results in
    /// chunk order. `pass` runs inside the widest SIMD copy ([`widest`]): it must be an
    /// `#[inline(always)]` closure calling `#[inline(always)]` functions.
    ///
    /// Lovász-softmax's passes use it. The two passes of [`ClassKernel`](super::ClassKernel)
    /// keep the same steps written out: through this function they ran slower, where the
    /// Lovász passes, bound by the sort, did not
    /// (`benches/results/kernel_notes.md#multiclass-passes-written-out`).
    pub fn run_chunks<'a, F: Real, R: Send>(
        &self,
        inputs: Inputs<'a, F>,
        out: Option<&'a mut [F]>,
        pass: impl Fn(ChunkView<'_, F>, &mut Scratch<F>) -> R + Sync,
    ) -> Vec<R> {
        let Inputs { x, y, rows, len } = inputs;
        let chunks = self.chunks(rows, len);
        let size = self.classes * len;
        let outs = match out {
            Some(out) => class_slices(out, &chunks, self.classes, len),
            None => chunks.iter().map(|_| Vec::new()).collect(),
        };
        let pass = &pass;
        parallel::map_items(
            chunks.iter().zip(outs).collect(),
            |(chunk, out): (&Chunk, Vec<&mut [F]>)| {
                let image = chunk.row;
                let view = ChunkView {
                    image,
                    x: &x[image * size..(image + 1) * size],
                    targets: self.image_targets(y, image, len),
                    pixels: pixel_range(chunk, len),
                    out,
                };
                with_scratch(|s: &mut Scratch<F>| {
                    s.prepare(self.classes, self.block());
                    widest(
                        #[inline(always)]
                        || pass(view, s),
                    )
                })
            },
        )
    }
}
