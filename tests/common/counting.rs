//! A global allocator that counts each thread's live and peak bytes, and its allocations, so a
//! test can measure what one decode or one request allocates (it runs on the calling thread).
//! Included by the offline tests and the library's unit tests, each a binary with this as its
//! allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    // Every allocation and every byte allocated, freed or not: the work a run did, counted.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

fn add(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn count(bytes: usize) {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    let _ = ALLOCATED.try_with(|total| total.set(total.get().wrapping_add(bytes)));
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counts are kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc(layout);
        if !ptr.is_null() {
            add(layout.size() as isize);
            count(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        add(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = System.realloc(ptr, layout, new_size);
        if !moved.is_null() {
            add(new_size as isize - layout.size() as isize);
            // A grown buffer may be copied whole: count it as allocated anew.
            count(new_size);
        }
        moved
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// What `run` allocated on this thread.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    /// The most bytes held at once, above what the thread held when `run` started.
    pub peak: usize,
    /// How many allocations (and reallocations) it made.
    #[allow(dead_code, reason = "the library's unit tests read only the peak")]
    pub allocations: usize,
    /// The bytes of all of them, freed or not.
    #[allow(dead_code, reason = "the library's unit tests read only the peak")]
    pub allocated: usize,
}

/// What `run` allocated on this thread: its peak, and its allocations counted, which grow
/// with the work it does and, unlike time, read the same on a busy machine.
pub fn usage_of<T>(run: impl FnOnce() -> T) -> (T, Usage) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(start));
    let (allocations, allocated) = (ALLOCATIONS.with(Cell::get), ALLOCATED.with(Cell::get));
    let result = run();
    let usage = Usage {
        peak: (PEAK.with(Cell::get) - start).max(0) as usize,
        allocations: ALLOCATIONS.with(Cell::get).wrapping_sub(allocations),
        allocated: ALLOCATED.with(Cell::get).wrapping_sub(allocated),
    };
    (result, usage)
}

/// The peak bytes this thread held above what it held when `run` started.
pub fn peak_of<T>(run: impl FnOnce() -> T) -> (T, usize) {
    let (result, usage) = usage_of(run);
    (result, usage.peak)
}
