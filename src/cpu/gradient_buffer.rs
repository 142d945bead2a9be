//! The zeroed buffer a host kernel writes its gradient into, backed by transparent huge pages
//! where Linux offers them.
//!
//! A kernel's gradient is a fresh buffer as large as the logits at every step (burn frees it
//! after the optimiser step). glibc serves a buffer of 32 MiB or more (its largest mmap
//! threshold; `[2,4,64,128,128]` f32 logits are exactly 32 MiB) from a new mapping each time,
//! so the kernel's first write to each 4 KiB page faults, at a cost of up to half a multiclass
//! cross-entropy step (`benches/results/kernel_notes.md#huge-pages-for-the-gradient`). Asking
//! the kernel for huge pages on the buffer before it is first written
//! (`madvise(MADV_HUGEPAGE)`) turns 8192 faults into 16.
//!
//! The advice only changes how the pages are backed, never their contents, so it is safe on
//! any memory the allocator hands out: where the system has transparent huge pages off, or
//! the buffer came from memory the allocator already used, it changes nothing. Buffers under
//! [`HUGE_PAGE_MIN`] are left alone (they come from the allocator's reused heap after the
//! first step).

use crate::cpu::math::Real;

/// The smallest buffer advised: four 2 MiB huge pages (a smaller buffer may hold no aligned
/// huge page at all, and its faults cost little).
const HUGE_PAGE_MIN: usize = 8 << 20;

/// `len` zeros, on huge pages where the system offers them for a buffer of
/// [`HUGE_PAGE_MIN`] bytes or more.
///
/// `vec![0; len]` asks the allocator for zeroed memory (`calloc`), which for a fresh mapping
/// touches no page: the advice therefore comes before the first write, as it must to take
/// effect.
pub(crate) fn zeroed<F: Real>(len: usize) -> Vec<F> {
    let buffer = vec![F::ZERO; len];
    let bytes = std::mem::size_of_val(buffer.as_slice());
    if bytes >= HUGE_PAGE_MIN {
        advise_huge_pages(buffer.as_ptr().cast(), bytes);
    }
    buffer
}

/// `madvise(MADV_HUGEPAGE)` on the whole pages inside `[start, start + bytes)`. Its result is
/// ignored: the advice is a hint, and a kernel without transparent huge pages refuses it.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // one system call on memory this thread owns; see the module docs
fn advise_huge_pages(start: *const u8, bytes: usize) {
    const PAGE: usize = 4096;
    let first = (start as usize).next_multiple_of(PAGE);
    let end = (start as usize + bytes) & !(PAGE - 1);
    if end > first {
        // SAFETY: `[first, end)` lies inside one live allocation of this process; the advice
        // does not change its contents or its mapping, only how the kernel backs its pages.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
        }
    }
}

/// Elsewhere the allocator's pages are taken as they come.
#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_start: *const u8, _bytes: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_zero_on_either_side_of_the_threshold() {
        for len in [0, 1, HUGE_PAGE_MIN / 4 - 1, HUGE_PAGE_MIN / 4 + 3] {
            let mut buffer = zeroed::<f32>(len);
            assert_eq!(buffer.len(), len);
            assert!(buffer.iter().all(|&v| v == 0.0));
            // Writable throughout, the advised pages included.
            buffer.iter_mut().for_each(|v| *v = 1.0);
            assert_eq!(buffer.iter().sum::<f32>(), len as f32);
        }
        assert!(zeroed::<f64>(HUGE_PAGE_MIN / 8).iter().all(|&v| v == 0.0));
    }
}
