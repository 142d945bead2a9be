//! A stable radix sort of 64-bit keys by their top 32 bits, for the Lovász kernels: a key is a
//! pixel's error bits (inverted, so that ascending keys are descending errors) above its index,
//! and keys made in ascending index order come out with equal errors in ascending index order.
//!
//! The keys are made by the sort itself from runs of values ([`RadixSort::gather`]), so that a
//! large problem scatters each key to its part as it is made, and the sorted keys are handed to
//! the caller a part at a time, each as soon as it is sorted, while it is in cache
//! ([`RadixSort::sort`]).
//!
//! - Up to [`SPLIT_ABOVE`] keys: three LSD passes of 11, 11 and 10 bits (one pass fewer than
//!   eight-bit digits: `benches/results/kernel_notes.md#radix-digits`), each skipped where its
//!   digit is the same for every key.
//! - Above (an image of 512 x 512 pixels, a class over a batch): one stable MSD scatter by the
//!   top 16 bits as the keys are made, then two 8-bit LSD passes within each part: out of
//!   cache, every pass over the whole problem scattered its keys over the whole buffer. Errors
//!   crowd into a few powers of two: hence 7 mantissa bits in the split's digit, which leaves
//!   parts that fit in cache (`benches/results/kernel_notes.md#split-sort`).
//!
//! The order is the same either way.

use super::scratch::bytes_of;

/// Above this many keys (2 MiB with their buffer: a core's L2 cache here), the sort splits the
/// keys by their top 16 bits first and sorts each part while it is in cache (faster from 2^17
/// keys on: `benches/results/kernel_notes.md#split-threshold`).
pub(crate) const SPLIT_ABOVE: usize = 1 << 17;

/// The split's digit: the top 16 bits of a key (an error's sign, exponent and 7 mantissa
/// bits: 128 parts per power of two of the error).
const SPLIT_SHIFT: u32 = 48;
const SPLIT_DIGITS: usize = 1 << 16;

/// Below this many keys, a part of a split is sorted by comparison (its two radix passes'
/// histograms cost more).
const COMPARE_BELOW: usize = 64;

/// The sort's buffers, kept between problems (a thread's scratch).
#[derive(Default)]
pub(crate) struct RadixSort {
    /// The keys of a small problem, sorted in place; of a split, the parts' second buffer (as
    /// long as the largest part: a thread keeps 8 bytes a key of a split problem rather than
    /// 16, which kept Lovász-softmax's peak memory under twice its inputs and gradient).
    keys: Vec<u64>,
    /// The second buffer of the LSD passes; of a split, the keys, sorted there part by part.
    buffer: Vec<u64>,
    /// A split's parts by the top 16 bits (empty: no split): where each starts, and where it
    /// ends (its count while they are counted, then its next free place while the keys are
    /// scattered).
    starts: Vec<u32>,
    ends: Vec<u32>,
}

impl RadixSort {
    /// Makes the keys `key(value, first + i)` of every run `(values, first)` in turn: as a list
    /// for a small problem, scattered to their parts for one of more than [`SPLIT_ABOVE`] keys
    /// (`key` is then called twice per value).
    pub fn gather<V: Copy>(&mut self, runs: &[(&[V], usize)], key: impl Fn(V, usize) -> u64) {
        let len: usize = runs.iter().map(|(values, _)| values.len()).sum();
        self.ends.clear();
        if len <= SPLIT_ABOVE {
            grow(&mut self.buffer, len);
            self.keys.clear();
            for &(values, first) in runs {
                self.keys
                    .extend(values.iter().enumerate().map(|(i, &v)| key(v, first + i)));
            }
            return;
        }
        let (starts, ends) = (&mut self.starts, &mut self.ends);
        ends.resize(SPLIT_DIGITS, 0);
        for &(values, first) in runs {
            for (i, &v) in values.iter().enumerate() {
                ends[digit::<SPLIT_DIGITS>(key(v, first + i), SPLIT_SHIFT)] += 1;
            }
        }
        let largest = ends.iter().max().copied().unwrap_or(0) as usize;
        starts.resize(SPLIT_DIGITS, 0);
        exclusive_sums(ends, starts);
        ends.copy_from_slice(starts);
        grow(&mut self.keys, largest);
        let buffer = &mut self.buffer;
        grow(buffer, len);
        for &(values, first) in runs {
            for (i, &v) in values.iter().enumerate() {
                let k = key(v, first + i);
                let d = digit::<SPLIT_DIGITS>(k, SPLIT_SHIFT);
                buffer[ends[d] as usize] = k;
                ends[d] += 1;
            }
        }
    }

    /// Sorts the gathered keys ascending by their top 32 bits, stably (then read by
    /// [`sorted`](Self::sorted)), and calls `visit` on consecutive parts of the sorted keys, in
    /// order, each as soon as it is sorted.
    pub fn sort(&mut self, mut visit: impl FnMut(&[u64])) {
        if self.ends.is_empty() {
            if lsd::<2048>(&mut self.keys, &mut self.buffer, &[32, 43, 54]) {
                std::mem::swap(&mut self.keys, &mut self.buffer);
            }
            visit(&self.keys);
            return;
        }
        for (&start, &end) in self.starts.iter().zip(&self.ends) {
            let part = start as usize..end as usize;
            let other = &mut self.keys[..part.len()];
            let sorted = &mut self.buffer[part];
            if sorted.len() < COMPARE_BELOW {
                // The keys are distinct (each carries its index): any sort of the whole keys
                // is the stable sort of their top halves.
                sorted.sort_unstable();
            } else if lsd::<256>(sorted, other, &[32, 40]) {
                sorted.copy_from_slice(other);
            }
            visit(sorted);
        }
    }

    /// The keys, sorted by [`sort`](Self::sort) (or by the caller, after
    /// [`unsorted`](Self::unsorted)).
    pub fn sorted(&self) -> &[u64] {
        if self.ends.is_empty() {
            &self.keys
        } else {
            &self.buffer
        }
    }

    /// The heap bytes of the sort's buffers.
    pub fn bytes(&self) -> usize {
        bytes_of(&self.keys)
            + bytes_of(&self.buffer)
            + bytes_of(&self.starts)
            + bytes_of(&self.ends)
    }

    /// An empty list of keys for a caller that sorts them itself (f64 errors, by comparison);
    /// [`sorted`](Self::sorted) then shows them.
    pub fn unsorted(&mut self) -> &mut Vec<u64> {
        self.ends.clear();
        self.keys.clear();
        &mut self.keys
    }
}

/// `v` as `len` values, whose every value the caller overwrites before reading it: only a
/// grown part is written (clearing it first wrote 8 bytes a key at every call).
fn grow(v: &mut Vec<u64>, len: usize) {
    v.truncate(len);
    v.resize(len, 0);
}

/// Digit `k >> shift` of `R` values (`R` a power of two).
#[inline(always)]
fn digit<const R: usize>(k: u64, shift: u32) -> usize {
    ((k >> shift) as usize) & (R - 1)
}

/// Stable LSD radix sort of `keys` by the digits of `R` values at `shifts` (lowest first, at
/// most three), skipping any pass whose digit is the same for every key, through `buffer` (as
/// long). Returns whether the sorted keys ended in `buffer` (after an odd number of passes)
/// rather than in `keys`.
fn lsd<const R: usize>(keys: &mut [u64], buffer: &mut [u64], shifts: &[u32]) -> bool {
    // u32 counts (every problem has fewer than 2^32 pixels): three 2048-value histograms take
    // 24 KB and stay in L1 cache while every key updates them.
    let mut counts = [[0u32; R]; 3];
    for &k in keys.iter() {
        for (&shift, c) in shifts.iter().zip(counts.iter_mut()) {
            c[digit::<R>(k, shift)] += 1;
        }
    }
    let (mut from, mut to) = (keys, buffer);
    let mut in_buffer = false;
    for (&shift, c) in shifts.iter().zip(&counts) {
        if c.iter().any(|&n| n as usize == from.len()) {
            continue;
        }
        // An array of the digit's size: indexed by a digit, it needs no bounds check, and
        // it stays in registers' reach (a vector's pointer was reloaded at every key).
        let mut next = [0u32; R];
        exclusive_sums(c, &mut next);
        for &k in from.iter() {
            let d = digit::<R>(k, shift);
            to[next[d] as usize] = k;
            next[d] += 1;
        }
        std::mem::swap(&mut from, &mut to);
        in_buffer = !in_buffer;
    }
    in_buffer
}

/// Each count's start: the sum of the counts before it, into `starts` (as long).
fn exclusive_sums(counts: &[u32], starts: &mut [u32]) {
    let mut sum = 0;
    for (s, &n) in starts.iter_mut().zip(counts) {
        *s = sum;
        sum += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The split path (more than [`SPLIT_ABOVE`] keys) and the LSD path give the order of a
    /// plain sort of the whole keys (distinct: each carries its index), on errors that crowd
    /// into a few powers of two, with many exact ties, parts of every size (below
    /// [`COMPARE_BELOW`], and one whose lowest digit is constant, so that a pass is skipped),
    /// gathered from several runs; the parts visited are the sorted keys, in order.
    #[test]
    fn radix_sort_matches_a_plain_sort_on_both_paths() {
        let mut state = 0x5EED_u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as u32
        };
        let key = |error: f32, index: usize| (u64::from(!error.to_bits()) << 32) | index as u64;
        let mut sort = RadixSort::default();
        for len in [8 * SPLIT_ABOVE + 4099, SPLIT_ABOVE / 2 + 5] {
            let errors: Vec<f32> = (0..len)
                .map(|_| {
                    let r = next();
                    match r % 8 {
                        // Exact ties, a few values.
                        0 => [0.0_f32, 0.25, 1.0][(r >> 3) as usize % 3],
                        // Alone in its part (one key of its top 16 bits, or a few).
                        1 => 1e-30 * (1.0 + (r >> 3) as f32),
                        // One part whose lowest 8 bits are all 0: one LSD pass skipped.
                        2 => 4.0 + ((r >> 3) % 256) as f32 / 8192.0,
                        // Uniform in (0, 1): the crowded powers of two.
                        _ => (r >> 8) as f32 / (1u32 << 24) as f32,
                    }
                })
                .collect();
            // Two runs, the second numbered from a gap (as Lovász-softmax's rows).
            let (head, tail) = errors.split_at(len / 3);
            let runs = [(head, 0), (tail, 1 << 22)];
            let mut expected: Vec<u64> = runs
                .iter()
                .flat_map(|&(values, first)| {
                    values
                        .iter()
                        .enumerate()
                        .map(move |(i, &e)| key(e, first + i))
                })
                .collect();
            expected.sort_unstable();
            sort.gather(&runs, key);
            let mut visited = Vec::new();
            sort.sort(|part| visited.extend_from_slice(part));
            assert!(sort.sorted() == expected, "{len} keys");
            assert!(visited == expected, "{len} keys visited");
        }
    }
}
