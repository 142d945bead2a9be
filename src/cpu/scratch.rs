//! Working buffers kept per thread between kernel calls.
//!
//! The kernels run on the threads of rayon's persistent pool, so a training loop that keeps a
//! kernel's buffers per thread allocates (and page-faults) them once per thread rather than at
//! every step. A thread keeps one value of each buffer type, as large as its largest use so
//! far.

use std::any::{Any, TypeId};
use std::cell::RefCell;

/// Runs `f` with this thread's value of `T` (made by `Default` the first time).
pub(crate) fn with_scratch<T: Default + 'static, R>(f: impl FnOnce(&mut T) -> R) -> R {
    thread_local! {
        static SCRATCH: RefCell<Vec<(TypeId, Box<dyn Any>)>> = const { RefCell::new(Vec::new()) };
    }
    let id = TypeId::of::<T>();
    // Taken out while `f` runs, so the cell is never borrowed across `f` (which may itself
    // use another type's scratch).
    let stored = SCRATCH.with_borrow_mut(|slots| {
        let at = slots.iter().position(|(t, _)| *t == id)?;
        Some(slots.swap_remove(at).1)
    });
    let mut scratch: Box<T> = stored
        .and_then(|s| s.downcast::<T>().ok())
        .unwrap_or_default();
    let result = f(&mut scratch);
    SCRATCH.with_borrow_mut(|slots| slots.push((id, scratch)));
    result
}
