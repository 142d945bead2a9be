//! Splitting a batch `[N, P]` (N problems of P contiguous elements) into chunks and running
//! them on scoped threads.
//!
//! Chunks never cross a row, so a chunk's partial sums belong to one image; they hold at most
//! [`CHUNK`] elements, so a sum over a chunk accumulates few enough terms to be accumulated in
//! f64 without measurable loss, and the per-row results are sums of chunk sums. ([`rows`]
//! makes one chunk per row instead, for kernels that take a whole image at a time.)

use std::ops::Range;

/// Elements per chunk: large enough that a thread's start-up cost (tens of microseconds) is
/// paid over milliseconds of work, small enough that 2 threads get balanced work on
/// a 256x256 image.
pub(crate) const CHUNK: usize = 1 << 15;

/// A chunk of the flattened batch: `row` it belongs to and its element range (in the flat
/// `[N * P]` buffer).
#[derive(Clone, Debug)]
pub(crate) struct Chunk {
    pub row: usize,
    pub range: Range<usize>,
}

/// The chunks of `rows` rows of `len` elements, in memory order.
pub(crate) fn chunks(rows: usize, len: usize) -> Vec<Chunk> {
    let per_row = len.div_ceil(CHUNK).max(1);
    let mut out = Vec::with_capacity(rows * per_row);
    for row in 0..rows {
        for k in 0..per_row {
            let start = row * len + k * len / per_row;
            let end = row * len + (k + 1) * len / per_row;
            out.push(Chunk {
                row,
                range: start..end,
            });
        }
    }
    out
}

/// One chunk per row: for kernels that solve a row (an image) at a time.
pub(crate) fn rows(rows: usize, len: usize) -> Vec<Chunk> {
    (0..rows)
        .map(|row| Chunk {
            row,
            range: row * len..(row + 1) * len,
        })
        .collect()
}

/// Threads to use: the machine's available parallelism (at least 1), read once per process
/// (on Linux it reads cgroup files, too slow to repeat for every pass).
pub(crate) fn threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// Runs `f` on every chunk, in parallel, and returns the results in chunk order.
pub(crate) fn map<T, F>(chunks: &[Chunk], f: F) -> Vec<T>
where
    T: Send,
    F: Fn(&Chunk) -> T + Sync,
{
    let workers = threads().min(chunks.len());
    if workers <= 1 {
        return chunks.iter().map(f).collect();
    }
    let per_worker = chunks.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .chunks(per_worker)
            .map(|group| {
                let f = &f;
                scope.spawn(move || group.iter().map(f).collect::<Vec<T>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a kernel thread panicked"))
            .collect()
    })
}

/// Runs `f(chunk, out_slice)` on every chunk in parallel, where `out_slice` is the chunk's
/// range of `out` (the gradient being written); returns the results in chunk order.
pub(crate) fn map_mut<E, T, F>(chunks: &[Chunk], out: &mut [E], f: F) -> Vec<T>
where
    E: Send,
    T: Send,
    F: Fn(&Chunk, &mut [E]) -> T + Sync,
{
    map_with(
        chunks,
        Some(out),
        || (),
        |(), c, o| f(c, o.unwrap_or_default()),
    )
}

/// Like [`map_mut`] with an optional `out` (each chunk gets its slice of it, or `None`), and a
/// worker state made once per thread by `init` and handed to every chunk that thread runs
/// (scratch buffers reused across chunks instead of allocated per chunk: fresh memory costs
/// page faults).
pub(crate) fn map_with<E, S, T, I, F>(
    chunks: &[Chunk],
    out: Option<&mut [E]>,
    init: I,
    f: F,
) -> Vec<T>
where
    E: Send,
    T: Send,
    I: Fn() -> S + Sync,
    F: Fn(&mut S, &Chunk, Option<&mut [E]>) -> T + Sync,
{
    // Hand every chunk its own disjoint slice of `out` (the chunks tile `out` in order).
    let mut pieces: Vec<(&Chunk, Option<&mut [E]>)> = Vec::with_capacity(chunks.len());
    let mut rest = out;
    let mut offset = 0;
    for chunk in chunks {
        let piece = rest.take().map(|r| {
            let (piece, tail) = r.split_at_mut(chunk.range.end - offset);
            rest = Some(tail);
            &mut piece[chunk.range.start - offset..]
        });
        pieces.push((chunk, piece));
        offset = chunk.range.end;
    }
    let workers = threads().min(pieces.len());
    if workers <= 1 {
        let mut state = init();
        return pieces
            .into_iter()
            .map(|(c, o)| f(&mut state, c, o))
            .collect();
    }
    let per_worker = pieces.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(workers);
        let mut pieces = pieces;
        while !pieces.is_empty() {
            let group: Vec<_> = pieces.drain(..per_worker.min(pieces.len())).collect();
            let (f, init) = (&f, &init);
            handles.push(scope.spawn(move || {
                let mut state = init();
                group
                    .into_iter()
                    .map(|(c, o)| f(&mut state, c, o))
                    .collect::<Vec<T>>()
            }));
        }
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a kernel thread panicked"))
            .collect()
    })
}

/// Adds per-chunk values into one total per row.
pub(crate) fn per_row<const K: usize>(
    chunks: &[Chunk],
    partial: &[[f64; K]],
    rows: usize,
) -> Vec<[f64; K]> {
    let mut totals = vec![[0.0; K]; rows];
    for (chunk, values) in chunks.iter().zip(partial) {
        for (t, v) in totals[chunk.row].iter_mut().zip(values) {
            *t += v;
        }
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_tile_the_batch_in_order_without_crossing_rows() {
        for (rows, len) in [(1, 1), (3, 5), (2, CHUNK + 1), (4, 3 * CHUNK - 7)] {
            let c = chunks(rows, len);
            let mut next = 0;
            for chunk in &c {
                assert_eq!(chunk.range.start, next);
                assert!(!chunk.range.is_empty() && chunk.range.len() <= CHUNK);
                assert_eq!(chunk.row, chunk.range.start / len);
                assert_eq!(chunk.row, (chunk.range.end - 1) / len);
                next = chunk.range.end;
            }
            assert_eq!(next, rows * len);
        }
    }

    #[test]
    fn map_mut_hands_each_chunk_its_own_slice() {
        let c = chunks(3, 2 * CHUNK + 3);
        let mut out = vec![0usize; 3 * (2 * CHUNK + 3)];
        let lens = map_mut(&c, &mut out, |chunk, o| {
            for (i, v) in o.iter_mut().enumerate() {
                *v = chunk.range.start + i;
            }
            o.len()
        });
        assert!(out.iter().enumerate().all(|(i, &v)| i == v));
        assert_eq!(lens.iter().sum::<usize>(), out.len());
    }
}
