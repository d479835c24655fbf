//! Per-execution CPU and memory, measured rather than divided: every poll of an agent's
//! future is timed with the thread's CPU clock, and a counting global allocator charges
//! allocations made during those polls to the execution that made them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll};

use crate::sys::thread_cpu_ns;

/// What one execution used so far.
#[derive(Debug, Default)]
pub struct Usage {
    pub cpu_ns: AtomicU64,
    /// Bytes allocated minus bytes freed during the execution's polls.
    pub live_bytes: AtomicI64,
    pub peak_bytes: AtomicI64,
}

thread_local! {
    static CURRENT: Cell<*const Usage> = const { Cell::new(std::ptr::null()) };
}

/// The global allocator of the osmen binary: the system allocator plus accounting.
pub struct CountingAlloc;

fn charge(delta: i64) {
    let _ = CURRENT.try_with(|c| {
        let p = c.get();
        if !p.is_null() {
            // SAFETY: the pointer is set only while `Accounted::poll` holds an Arc to it.
            let u = unsafe { &*p };
            let now = u.live_bytes.fetch_add(delta, Ordering::Relaxed) + delta;
            u.peak_bytes.fetch_max(now, Ordering::Relaxed);
        }
    });
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            charge(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            charge(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        charge(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            charge(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

/// The allocator's own account of this process's heap: (bytes handed out and not yet
/// freed, bytes freed but kept by the allocator rather than returned to the system).
/// Read from glibc's `mallinfo2`, which walks every arena, so it is for a scrape, not a
/// hot path. None where the C library is not glibc.
pub fn heap_bytes() -> Option<(u64, u64)> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 takes no arguments and returns a plain struct by value.
        let m = unsafe { libc::mallinfo2() };
        Some(((m.uordblks + m.hblkhd) as u64, m.fordblks as u64))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// Wraps a future so its polls are charged to `usage`.
pub struct Accounted<F> {
    inner: Pin<Box<F>>,
    usage: Arc<Usage>,
}

impl<F: Future> Accounted<F> {
    pub fn new(inner: F, usage: Arc<Usage>) -> Self {
        Accounted {
            inner: Box::pin(inner),
            usage,
        }
    }
}

impl<F: Future> Future for Accounted<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let usage = self.usage.clone();
        let prev = CURRENT.with(|c| c.replace(Arc::as_ptr(&usage)));
        let t0 = thread_cpu_ns();
        let out = self.inner.as_mut().poll(cx);
        let t1 = thread_cpu_ns();
        CURRENT.with(|c| c.set(prev));
        usage
            .cpu_ns
            .fetch_add(t1.saturating_sub(t0), Ordering::Relaxed);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The allocator's account follows what the program holds: 64 MiB in 32 KiB blocks
    /// (heap, not mmap) shows as in use, and as freed once dropped. Other tests run beside
    /// this one, so the margins are a few MiB.
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn heap_bytes_follow_what_is_held() {
        const MIB: u64 = 1 << 20;
        let (before, _) = heap_bytes().expect("glibc");
        let blocks: Vec<Vec<u8>> = (0..2048).map(|i| vec![i as u8; 32 * 1024]).collect();
        let (held, _) = heap_bytes().expect("glibc");
        assert!(held >= before + 56 * MIB, "{before} -> {held}");
        drop(blocks);
        let (after, _) = heap_bytes().expect("glibc");
        assert!(after + 56 * MIB <= held, "{held} -> {after}");
        crate::sys::trim_heap();
        let (trimmed, _) = heap_bytes().expect("glibc");
        assert!(trimmed <= after + 8 * MIB, "{after} -> {trimmed}");
    }
}
