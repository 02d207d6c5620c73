//! The global allocator: mimalloc, and with the `count-allocations` feature a count of every
//! allocation on top, printed once a second, so a benchmark can show how many allocations
//! the broker makes per message (`scripts/count-allocations.sh`).

/// mimalloc instead of glibc's allocator: requests are allocated on connection tasks and freed
/// on the store's threads (and back). Under that pattern glibc spent 22 % of the broker's CPU
/// in `malloc`/`free`/`malloc_consolidate` on workload 2; alternating runs of the same bench
/// client gave 69–77 K msg/s with glibc and 86–92 K with mimalloc (docs/benchmarks-history.md,
/// first pass).
#[cfg(not(feature = "count-allocations"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "count-allocations")]
pub use counting::start_reporting;

/// Does nothing without the `count-allocations` feature.
#[cfg(not(feature = "count-allocations"))]
pub fn start_reporting() {}

#[cfg(feature = "count-allocations")]
mod counting {
    use std::alloc::{GlobalAlloc, Layout};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    /// Allocations (including reallocations, which may move) since the process started.
    static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

    /// mimalloc, counting.
    struct Counting;

    // SAFETY: every call is forwarded unchanged to mimalloc, a correct allocator.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            // SAFETY: the caller upholds `alloc`'s contract, which mimalloc shares.
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            // SAFETY: as for `alloc`.
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` came from this allocator with `layout`.
            unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            // SAFETY: `ptr` came from this allocator with `layout`.
            unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    /// Prints `allocations: N` to stderr once a second, for the life of the process.
    pub fn start_reporting() {
        let spawned = std::thread::Builder::new().name("alloc-count".into()).spawn(|| loop {
            eprintln!("allocations: {}", ALLOCATIONS.load(Ordering::Relaxed));
            std::thread::sleep(Duration::from_secs(1));
        });
        if let Err(error) = spawned {
            eprintln!("cannot start the allocation reporter: {error}");
        }
    }
}
