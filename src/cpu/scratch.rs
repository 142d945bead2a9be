//! Working buffers kept per thread between kernel calls, up to [`KEPT_PER_THREAD`] bytes.
//!
//! The kernels run on the threads of a persistent pool, so a training loop that keeps a
//! kernel's buffers per thread allocates (and page-faults) them once per thread rather than at
//! every step. A thread keeps one value of each buffer type, as large as its largest use so
//! far, as long as all it keeps stays within [`KEPT_PER_THREAD`]: a value that would take it
//! past that is freed when its use ends, and made again at the next use.
//!
//! Why a cap rather than freeing every buffer after each call: the buffers of the 2D benchmark
//! shapes stay under it, so their hot path does exactly what it did before (the only new work
//! is adding a few capacities per problem), while a large call (a 2^20-pixel Lovász problem
//! needs at least 16.5 MiB per thread: 4 + 4 bytes a pixel of errors and derivatives, 8 of
//! sort buffer, 512 KiB of split tables) no longer leaves its buffers behind for the life of
//! the process. Freeing after every call would make every call allocate and page-fault its
//! buffers again on every thread, the cost the scratch exists to avoid. A problem past the cap
//! (the 3D benchmark's images of 2^20 voxels, a Lovász-softmax class over a batch of more than
//! about 2^20 pixels) pays it: one allocation per problem (a thread that takes several such
//! problems in one call makes its buffers again for each), which costs page faults
//! when the allocator has returned the freed buffer to the system (a few milliseconds for
//! 20 MiB, against a sort of a million keys; glibc by default raises its thresholds after such
//! a free and serves the next allocation from the memory it kept). A process keeps at most
//! `KEPT_PER_THREAD` times the threads that ran a kernel (the caller and the helper pool's
//! threads).

use std::any::{Any, TypeId};
use std::cell::RefCell;

/// The most bytes of buffers a thread keeps between uses: 16 MiB, above what the 2D benchmark
/// shapes need (a binary Lovász problem of 512 x 512 pixels: at most 6.5 MiB; a
/// Lovász-softmax class problem of 2^19 keys, `[8, C, 256, 256]`: at most 8.5 MiB), below
/// what a problem of 2^20 pixels needs.
pub(crate) const KEPT_PER_THREAD: usize = 16 << 20;

/// A type of working buffers: [`with_scratch`] keeps a value between uses as long as its
/// [`bytes`](Self::bytes) fit in what the thread may keep.
pub(crate) trait Buffers: Default + 'static {
    /// The heap bytes the value holds (its buffers' capacities).
    fn bytes(&self) -> usize;
}

/// The heap bytes of `v`'s buffer.
pub(crate) fn bytes_of<T>(v: &Vec<T>) -> usize {
    v.capacity() * size_of::<T>()
}

/// A kept value: its type, its bytes when it was put back, and the value.
type Slot = (TypeId, usize, Box<dyn Any>);

thread_local! {
    static SCRATCH: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's value of `T` (made by `Default` when none is kept), then keeps
/// the value if it fits in [`KEPT_PER_THREAD`] with what the thread keeps of the other types;
/// else frees it.
pub(crate) fn with_scratch<T: Buffers, R>(f: impl FnOnce(&mut T) -> R) -> R {
    let id = TypeId::of::<T>();
    // Taken out while `f` runs, so the cell is never borrowed across `f` (which may itself
    // use another type's scratch).
    let stored = SCRATCH.with_borrow_mut(|slots| {
        let at = slots.iter().position(|(t, _, _)| *t == id)?;
        Some(slots.swap_remove(at).2)
    });
    let mut scratch: Box<T> = stored
        .and_then(|s| s.downcast::<T>().ok())
        .unwrap_or_default();
    let result = f(&mut scratch);
    let bytes = scratch.bytes();
    let freed = SCRATCH.with_borrow_mut(|slots| {
        let kept: usize = slots.iter().map(|(_, b, _)| b).sum();
        if kept.saturating_add(bytes) <= KEPT_PER_THREAD {
            slots.push((id, bytes, scratch));
            None
        } else {
            Some(scratch)
        }
    });
    // Freed outside the borrow (a value's drop never reaches the cell, but nothing depends on
    // that).
    drop(freed);
    result
}

/// The bytes this thread keeps now (test support).
#[cfg(test)]
pub(crate) fn kept_bytes() -> usize {
    SCRATCH.with_borrow(|slots| slots.iter().map(|(_, b, _)| b).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Small(Vec<u8>);
    impl Buffers for Small {
        fn bytes(&self) -> usize {
            bytes_of(&self.0)
        }
    }

    #[derive(Default)]
    struct Large(Vec<u64>);
    impl Buffers for Large {
        fn bytes(&self) -> usize {
            bytes_of(&self.0)
        }
    }

    /// Values within the cap are kept and reused; one past it is freed after its use, and the
    /// thread never keeps more than the cap. (Each test runs on its own thread, so the thread's
    /// scratch starts empty.)
    #[test]
    fn values_are_kept_up_to_the_cap_and_freed_past_it() {
        assert_eq!(kept_bytes(), 0);
        with_scratch(|s: &mut Small| s.0.reserve_exact(1 << 20));
        assert_eq!(kept_bytes(), 1 << 20);
        // Reused: the same buffer comes back.
        let capacity = with_scratch(|s: &mut Small| s.0.capacity());
        assert_eq!(capacity, 1 << 20);

        // Fits beside the small one: kept.
        let fits = (KEPT_PER_THREAD - (1 << 20)) / 8;
        with_scratch(|s: &mut Large| s.0.reserve_exact(fits));
        assert_eq!(kept_bytes(), KEPT_PER_THREAD);
        // Grown past what is left: freed after the use, made again at the next.
        with_scratch(|s: &mut Large| s.0.reserve_exact(fits + 1));
        assert_eq!(kept_bytes(), 1 << 20);
        assert_eq!(with_scratch(|s: &mut Large| s.0.capacity()), 0);

        // Nested uses of two types each find their own value.
        let (outer, inner) = with_scratch(|s: &mut Small| {
            let inner = with_scratch(|l: &mut Large| {
                l.0.push(7);
                l.0.len()
            });
            (s.0.capacity(), inner)
        });
        assert_eq!((outer, inner), (1 << 20, 1));
        assert!(kept_bytes() <= KEPT_PER_THREAD);
    }
}
