//! Large buffers kept per thread from one call to the next.
//!
//! Assigning addresses to thousands of devices fills tables of several megabytes. Freed at
//! the end of a call, glibc hands that memory back to the kernel (it trims the top of its
//! heap), and the next call gets it again as fresh zeroed pages, one page fault each: for
//! 10,000 devices that cost as much as the work itself. The largest tables whose type does
//! not borrow the input are therefore given back here when their call ends and taken again
//! by the next call on the same thread (their owners keep one `thread_local!` slot each).
//!
//! Bounds: one buffer of each kind per thread, emptied, and none larger than
//! [`KEEP_AT_MOST`] bytes (the largest, the element table, is about 2 MB for 10,000 devices),
//! so a thread keeps about 650 bytes per device of its largest call, at most 9 × 8 MiB.
//! A buffer taken while another of its kind is in use on the thread (nested documents) is
//! simply new. During thread exit the slots are gone and buffers are dropped as usual.

use std::cell::RefCell;
use std::thread::LocalKey;

/// The largest buffer kept, in bytes.
pub(crate) const KEEP_AT_MOST: usize = 8 << 20;

/// One per-thread slot for a spare buffer of type `B`.
pub(crate) type Slot<B> = LocalKey<RefCell<Option<B>>>;

/// A buffer that can be emptied and knows its size in bytes.
pub(crate) trait Buffer: Default {
    fn clear_all(&mut self);
    fn bytes(&self) -> usize;
}

impl<T> Buffer for Vec<T> {
    fn clear_all(&mut self) {
        self.clear();
    }
    fn bytes(&self) -> usize {
        self.capacity().saturating_mul(std::mem::size_of::<T>())
    }
}

impl Buffer for String {
    fn clear_all(&mut self) {
        self.clear();
    }
    fn bytes(&self) -> usize {
        self.capacity()
    }
}

/// The spare buffer of `slot` (empty), or a new one.
pub(crate) fn take<B: Buffer + 'static>(slot: &'static Slot<B>) -> B {
    slot.try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.take()))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Keep `buffer` for the next call on this thread, unless it is too large or a larger one is
/// kept already.
pub(crate) fn give<B: Buffer + 'static>(slot: &'static Slot<B>, mut buffer: B) {
    if buffer.bytes() == 0 || buffer.bytes() > KEEP_AT_MOST {
        return;
    }
    buffer.clear_all();
    let _ = slot.try_with(|s| {
        if let Ok(mut kept) = s.try_borrow_mut() {
            if kept.as_ref().map_or(true, |k| k.bytes() < buffer.bytes()) {
                *kept = Some(buffer);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static NUMBERS: RefCell<Option<Vec<u64>>> = const { RefCell::new(None) };
    }

    #[test]
    fn a_buffer_given_back_is_taken_again_empty() {
        let mut v = take(&NUMBERS);
        v.extend(0..1000);
        let (ptr, cap) = (v.as_ptr(), v.capacity());
        give(&NUMBERS, v);
        let again = take(&NUMBERS);
        assert!(again.is_empty());
        assert_eq!((again.as_ptr(), again.capacity()), (ptr, cap));
        // Taken: the slot is empty until it is given back.
        assert_eq!(take(&NUMBERS).capacity(), 0);
    }

    #[test]
    fn too_large_buffers_are_not_kept() {
        let v: Vec<u64> = Vec::with_capacity(KEEP_AT_MOST / 8 + 1);
        give(&NUMBERS, v);
        assert_eq!(take(&NUMBERS).capacity(), 0);
    }

    #[test]
    fn the_larger_of_two_is_kept() {
        give(&NUMBERS, Vec::with_capacity(10));
        give(&NUMBERS, Vec::with_capacity(100));
        give(&NUMBERS, Vec::with_capacity(50));
        assert!(take(&NUMBERS).capacity() >= 100);
    }
}
