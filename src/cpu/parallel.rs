//! Splitting a batch `[N, P]` (N problems of P contiguous elements) into chunks and running
//! them on the calling thread and one persistent rayon pool ([`helper_pool`]), sized from
//! rayon's global pool (`RAYON_NUM_THREADS`).
//!
//! Chunks never cross a row, so a chunk's partial sums belong to one image; they hold at most
//! [`CHUNK`] elements, so a sum over a chunk accumulates few enough terms to be accumulated in
//! f64 without measurable loss, and the per-row results are sums of chunk sums. ([`rows`]
//! makes one chunk per row instead, for kernels that take a whole image at a time.)

use std::ops::Range;
use std::sync::{Mutex, OnceLock};

/// Elements per chunk: large enough that handing a chunk to a pool thread (microseconds) is
/// paid over a fraction of a millisecond of work, small enough that 2 threads get balanced
/// work on a 256x256 image. Fixed, so the chunks, and with them every sum, do not depend on
/// the thread count.
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
    chunks_of(rows, len, CHUNK)
}

/// The chunks of `rows` rows of `len` elements with at most `size` elements each (at least 1).
pub(crate) fn chunks_of(rows: usize, len: usize, size: usize) -> Vec<Chunk> {
    let per_row = len.div_ceil(size.max(1)).max(1);
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

/// Threads a pass runs on: as many as rayon's global pool has (the pool burn's flex backend
/// uses), which is `RAYON_NUM_THREADS`, the size given to `ThreadPoolBuilder::build_global`, or
/// else the machine's available parallelism; read once.
///
/// Read from the global pool whatever pool the first caller runs in: `current_num_threads`
/// gives the size of the pool the calling thread belongs to, so a first call inside a
/// one-thread `ThreadPool::install` would make every later pass single-threaded. A thread
/// outside every pool gets the global pool's size from it, so a caller inside a pool asks a
/// fresh thread of its own (once per process). Mirroring rayon's rule (`RAYON_NUM_THREADS`,
/// else `available_parallelism`) instead would miss a global pool sized by `build_global`,
/// and sending a job to the global pool could wait forever when the caller is that pool's
/// only thread. If no thread can be started, the caller's pool's size serves.
///
/// Only the choice between two schemes of the overlap kernel depends on it, and both give the
/// same bits: every result is independent of the thread count, because the chunks are fixed
/// by [`chunks`] and their partial results are added in chunk order.
pub(crate) fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(global_pool_threads)
}

/// The size of rayon's global pool, read on a thread outside every pool (see [`threads`]).
fn global_pool_threads() -> usize {
    if rayon::current_thread_index().is_none() {
        // Outside every pool: this thread's answer is the global pool's.
        return rayon::current_num_threads();
    }
    std::thread::Builder::new()
        .name("segloss-size".into())
        .spawn(rayon::current_num_threads)
        .ok()
        .and_then(|outside| outside.join().ok())
        .unwrap_or_else(rayon::current_num_threads)
}

/// The persistent rayon pool of the `threads() - 1` threads that work beside the calling
/// thread (`None` if the system would not start them: rayon's global pool serves then).
///
/// Why not rayon's global pool itself: its `threads()` workers are one more than a pass needs
/// beside the calling thread, and the idle one, woken by rayon or by burn's own parallel
/// operations, spins before it sleeps and takes a core from the pass
/// (`benches/results/kernel_notes.md#helper-pool`). The two pools are never busy at once: a
/// pass runs inside one loss call, between burn's operations.
fn helper_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads().saturating_sub(1).max(1))
            .thread_name(|i| format!("segloss-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}

/// Runs `f` on every chunk, in parallel on the pool, and returns the results in chunk order.
pub(crate) fn map<T, F>(chunks: &[Chunk], f: F) -> Vec<T>
where
    T: Send,
    F: Fn(&Chunk) -> T + Send + Sync,
{
    map_with(chunks, None::<&mut [()]>, |c, _| f(c))
}

/// Runs `f(chunk, out_slice)` on every chunk in parallel, where `out_slice` is the chunk's
/// range of `out` (the gradient being written); returns the results in chunk order.
pub(crate) fn map_mut<E, T, F>(chunks: &[Chunk], out: &mut [E], f: F) -> Vec<T>
where
    E: Send,
    T: Send,
    F: Fn(&Chunk, &mut [E]) -> T + Send + Sync,
{
    map_with(chunks, Some(out), |c, o| f(c, o.unwrap_or_default()))
}

/// Like [`map_mut`] with an optional `out` (each chunk gets its slice of it, or `None`). The
/// chunks go to the threads in runs of `ceil(chunks / threads)` consecutive chunks.
pub(crate) fn map_with<E, T, F>(chunks: &[Chunk], out: Option<&mut [E]>, f: F) -> Vec<T>
where
    E: Send,
    T: Send,
    F: Fn(&Chunk, Option<&mut [E]>) -> T + Send + Sync,
{
    // Hand every chunk its own disjoint slice of `out` (the chunks tile `out` in order).
    let mut pieces: Run<'_, E> = Vec::with_capacity(chunks.len());
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
    map_items(pieces, |(c, o)| f(c, o))
}

/// Runs `f` on every item, in parallel on the pool, and returns the results in item order.
///
/// The calling thread and the `threads() - 1` threads of [`helper_pool`] each own a region of
/// consecutive items (the first `count / threads`, the next, ...) and take its items in
/// order; a thread done with its region takes what is left of the others' from the far end
/// backwards. So a pool thread that wakes late finds less left to do instead of holding back
/// the whole pass, and the threads work on separate stretches of
/// memory (their chunks of the gradient fault in different pages) until they meet. The
/// results keep the items' order whichever thread computed them, so sums over them do not
/// depend on the scheduling.
///
/// (Faster than handing the items out one at a time from a shared counter, as before, which
/// interleaved the threads chunk by chunk: `benches/results/kernel_notes.md#regions-per-thread`.)
pub(crate) fn map_items<I, T, F>(items: Vec<I>, f: F) -> Vec<T>
where
    I: Send,
    T: Send,
    F: Fn(I) -> T + Send + Sync,
{
    let count = items.len();
    let helpers = threads().min(count).saturating_sub(1);
    if helpers == 0 {
        return items.into_iter().map(f).collect();
    }
    let slots: Vec<Mutex<Option<I>>> = items.into_iter().map(|i| Mutex::new(Some(i))).collect();
    let threads = helpers + 1;
    // Thread `t` first takes its own region of consecutive items in order, then whatever is
    // left of the others' regions from the far end backwards.
    let work = |t: usize| {
        let region = t * count / threads..(t + 1) * count / threads;
        let rest = (0..count).rev().filter(|k| !region.contains(k));
        let mut done = Vec::new();
        for k in region.clone().chain(rest) {
            // A slot is taken once; a thread that finds it empty goes on to the next.
            let item = slots[k].lock().map(|mut s| s.take()).ok().flatten();
            if let Some(item) = item {
                done.push((k, f(item)));
            }
        }
        done
    };
    let mut parts: Vec<Vec<(usize, T)>> = (0..=helpers).map(|_| Vec::new()).collect();
    let (mine, theirs) = parts.split_first_mut().expect("one part per thread");
    let work = &work;
    in_place_scope(|scope| {
        for (t, part) in theirs.iter_mut().enumerate() {
            scope.spawn(move |_| *part = work(t + 1));
        }
        *mine = work(0);
    });
    let mut results: Vec<Option<T>> = (0..count).map(|_| None).collect();
    for (k, value) in parts.into_iter().flatten() {
        results[k] = Some(value);
    }
    results.into_iter().flatten().collect()
}

/// rayon's `in_place_scope` on [`helper_pool`]: `op` runs on the calling thread, and what it
/// spawns on the pool's threads.
fn in_place_scope<'scope, R>(op: impl FnOnce(&rayon::Scope<'scope>) -> R) -> R {
    match helper_pool() {
        Some(pool) => pool.in_place_scope(op),
        None => rayon::in_place_scope(op),
    }
}

/// Runs `a` and `b` side by side, `a` on the calling thread and `b` on [`helper_pool`] (one
/// after the other on the calling thread when a pass runs on one thread), and returns both
/// results: rayon's `join` on the pool every pass of the crate runs on, never beside it on
/// rayon's global pool.
pub(crate) fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    if threads() < 2 {
        return (a(), b());
    }
    let mut second = None;
    let first = in_place_scope(|scope| {
        let second = &mut second;
        scope.spawn(move |_| *second = Some(b()));
        a()
    });
    // The scope returns once its spawned job has (a panic in `b` goes on past the scope).
    (first, second.expect("the scope waits for its spawned job"))
}

/// Chunks, each with its slice of the output (if any), in chunk order.
type Run<'a, E> = Vec<(&'a Chunk, Option<&'a mut [E]>)>;

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
    use std::sync::atomic::{AtomicUsize, Ordering};

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

    /// The passes run on the calling thread and the helper pool's threads only (never on
    /// rayon's global pool), and the helper pool is one thread smaller than rayon's global
    /// pool.
    #[test]
    fn passes_run_on_the_caller_and_the_helper_pool() {
        assert_eq!(threads(), rayon::current_num_threads());
        let pool = helper_pool().expect("the helper pool starts");
        assert_eq!(
            pool.current_num_threads(),
            threads().saturating_sub(1).max(1)
        );
        let caller = std::thread::current().id();
        let on = map_items((0..64).collect(), |_: usize| {
            std::thread::sleep(std::time::Duration::from_micros(200));
            let here = std::thread::current();
            (here.id() == caller, here.name().unwrap_or("").to_string())
        });
        for (on_caller, name) in &on {
            assert!(
                *on_caller || name.starts_with("segloss-"),
                "ran on {name:?}"
            );
        }
    }

    /// `RAYON_NUM_THREADS` sizes the passes: this test runs itself again in a process with
    /// `RAYON_NUM_THREADS=3` and checks three threads there (two helpers).
    #[test]
    fn rayon_num_threads_sizes_the_passes() {
        if in_a_child_with_three_threads("rayon_num_threads_sizes_the_passes") {
            assert_eq!(threads(), 3);
            assert_eq!(helper_pool().map(|p| p.current_num_threads()), Some(2));
        }
    }

    /// `false` in the test process, after running the test `name` of this module again in a
    /// child process with `RAYON_NUM_THREADS=3` (the pools are sized once per process) and
    /// asserting that it passed; `true` in that child, which runs the test's body.
    fn in_a_child_with_three_threads(name: &str) -> bool {
        if std::env::var("SEGLOSS_POOL_CHILD").is_ok() {
            return true;
        }
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &format!("cpu::parallel::tests::{name}")])
            .env("RAYON_NUM_THREADS", "3")
            .env("SEGLOSS_POOL_CHILD", "1")
            .status()
            .unwrap();
        assert!(status.success(), "{name} failed in its child process");
        false
    }

    /// A first call inside a one-thread pool still sizes the passes from rayon's global pool:
    /// this test runs itself again in a process with `RAYON_NUM_THREADS=3`, whose first call
    /// to [`threads`] is made inside a one-thread `ThreadPool::install`.
    #[test]
    fn a_first_call_inside_a_small_pool_sizes_from_the_global_pool() {
        if in_a_child_with_three_threads(
            "a_first_call_inside_a_small_pool_sizes_from_the_global_pool",
        ) {
            let one = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap();
            let inside = one.install(|| (rayon::current_num_threads(), threads()));
            assert_eq!(inside, (1, 3));
            assert_eq!(threads(), 3);
            assert_eq!(helper_pool().map(|p| p.current_num_threads()), Some(2));
            // And a pass started inside the small pool uses the helper pool's threads (64 ms
            // of work: a helper that wakes within 40 ms takes part).
            let names = one.install(|| {
                map_items((0..64).collect(), |_: usize| {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    std::thread::current().name().unwrap_or("").to_string()
                })
            });
            assert!(names.iter().any(|n| n.starts_with("segloss-")), "{names:?}");
        }
    }

    /// [`join`] runs its two closures on the calling thread and the helper pool, never on
    /// rayon's global pool, and returns both results in order.
    #[test]
    fn join_runs_on_the_caller_and_the_helper_pool() {
        let caller = std::thread::current().id();
        let on = || {
            std::thread::sleep(std::time::Duration::from_millis(5));
            let here = std::thread::current();
            (here.id() == caller, here.name().unwrap_or("").to_string())
        };
        let (a, b) = join(on, on);
        assert!(a.0, "the first closure runs on the caller");
        assert!(b.0 || b.1.starts_with("segloss-"), "ran on {:?}", b.1);
        assert_eq!(join(|| 1, || "two"), (1, "two"));
    }

    #[test]
    fn map_items_runs_each_item_once_and_keeps_their_order() {
        for count in [0, 1, 2, 3, 1000] {
            let calls = AtomicUsize::new(0);
            let out = map_items((0..count).collect(), |k: usize| {
                calls.fetch_add(1, Ordering::Relaxed);
                k * 3
            });
            assert_eq!(out, (0..count).map(|k| k * 3).collect::<Vec<_>>());
            assert_eq!(calls.load(Ordering::Relaxed), count);
        }
    }
}
