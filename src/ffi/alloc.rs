//! The module's global allocator: Redis's own (`RedisModule_Alloc` / `RedisModule_Free`, so
//! every byte txu holds counts in `used_memory` and against `maxmemory`), with a small cache of
//! freed small blocks in front of it.
//!
//! Each `RedisModule_Alloc` and `RedisModule_Free` asks the allocator for the block's usable
//! size and updates the server's memory counter atomically; a transaction makes dozens of short
//! allocations per command (key names, pre-images, plans), and that bookkeeping was a tenth of
//! the server's CPU under a transaction load. Freed blocks of up to 512 bytes are kept on one
//! list per size class, at most [`KEEP`] per class (under 300 kB in all, allocated from Redis
//! and counted as such), and handed out again before Redis is asked.

use redis_module::raw;
use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

/// Block sizes the cache serves (a request takes the smallest class that holds it).
const CLASSES: [usize; 12] = [16, 32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 512];
/// Most free blocks kept per class.
const KEEP: u32 = 128;

struct Lists {
    /// Head of each class's free list; a free block's first word points to the next.
    heads: [*mut u8; CLASSES.len()],
    counts: [u32; CLASSES.len()],
}

pub struct PooledAlloc {
    locked: AtomicBool,
    lists: UnsafeCell<Lists>,
}

// SAFETY: `lists` is only touched while `locked` is held (see `with_lists`).
unsafe impl Sync for PooledAlloc {}

impl PooledAlloc {
    pub const fn new() -> Self {
        PooledAlloc {
            locked: AtomicBool::new(false),
            lists: UnsafeCell::new(Lists {
                heads: [ptr::null_mut(); CLASSES.len()],
                counts: [0; CLASSES.len()],
            }),
        }
    }

    /// Runs `f` on the free lists under a spin lock (Redis calls modules from its main thread,
    /// so the lock is never contended; `f` neither allocates nor blocks).
    fn with_lists<R>(&self, f: impl FnOnce(&mut Lists) -> R) -> R {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        // SAFETY: the lock is held, so this is the only reference to the lists.
        let r = f(unsafe { &mut *self.lists.get() });
        self.locked.store(false, Ordering::Release);
        r
    }
}

impl Default for PooledAlloc {
    fn default() -> Self {
        Self::new()
    }
}

/// The class serving `layout`, if any: blocks from `RedisModule_Alloc` have the allocator's
/// alignment, which the larger alignments are not promised.
fn class_of(layout: Layout) -> Option<usize> {
    if layout.align() > 16 {
        return None;
    }
    // Sizes in steps of 16 bytes map to their class through a table built at compile time.
    let step = layout.size().saturating_sub(1) / 16;
    BY_STEP.get(step).map(|&i| usize::from(i))
}

/// `BY_STEP[(size - 1) / 16]`: the index of the smallest class holding `size` bytes.
const BY_STEP: [u8; 32] = {
    let mut t = [0u8; 32];
    let mut step = 0;
    while step < 32 {
        let size = (step + 1) * 16;
        let mut i = 0;
        while CLASSES[i] < size {
            i += 1;
        }
        t[step] = i as u8;
        step += 1;
    }
    t
};

/// `RedisModule_Alloc`; aborts when the server has not provided it (nothing can be allocated
/// then, not even a panic message).
///
/// # Safety
/// A plain call into the server's allocator; the caller owns the block.
unsafe fn redis_alloc(size: usize) -> *mut u8 {
    match raw::RedisModule_Alloc {
        Some(f) => f(size).cast(),
        None => std::process::abort(),
    }
}

/// # Safety
/// `p` came from `redis_alloc` and is not used again.
unsafe fn redis_free(p: *mut u8) {
    match raw::RedisModule_Free {
        Some(f) => f(p.cast()),
        None => std::process::abort(),
    }
}

// SAFETY: every block comes from `RedisModule_Alloc` with at least the requested size (its
// class, or the size rounded up to the alignment, as the crate's `RedisAlloc` asks) and goes
// back to `RedisModule_Free` or, while free, to its class's list; a block is handed out by
// one `alloc` at a time (the lists are behind the lock).
unsafe impl GlobalAlloc for PooledAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(i) = class_of(layout) else {
            let size = (layout.size() + layout.align() - 1) & !(layout.align() - 1);
            return redis_alloc(size);
        };
        let cached = self.with_lists(|l| {
            let (Some(head), Some(count)) = (l.heads.get_mut(i), l.counts.get_mut(i)) else {
                return ptr::null_mut();
            };
            let block = *head;
            if !block.is_null() {
                // SAFETY: a cached block is a free block of at least 16 bytes whose first
                // word holds the next free block (written by `dealloc`), 16-byte aligned.
                *head = unsafe { block.cast::<*mut u8>().read() };
                *count -= 1;
            }
            block
        });
        if !cached.is_null() {
            return cached;
        }
        redis_alloc(CLASSES.get(i).copied().unwrap_or(layout.size()))
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if let Some(i) = class_of(layout) {
            let kept = self.with_lists(|l| {
                let (Some(head), Some(count)) = (l.heads.get_mut(i), l.counts.get_mut(i)) else {
                    return false;
                };
                if *count >= KEEP {
                    return false;
                }
                // SAFETY: `p` is a block of this class (its layout maps to the same class
                // as when it was allocated), at least 16 bytes, no longer in use.
                unsafe { p.cast::<*mut u8>().write(*head) };
                *head = p;
                *count += 1;
                true
            });
            if kept {
                return;
            }
        }
        redis_free(p);
    }
}

#[cfg(test)]
mod tests {
    use super::{class_of, CLASSES};
    use std::alloc::Layout;

    #[test]
    fn requests_take_the_smallest_class_that_holds_them() {
        let class = |size: usize, align: usize| {
            Layout::from_size_align(size, align)
                .ok()
                .and_then(class_of)
                .map(|i| CLASSES[i])
        };
        assert_eq!(class(0, 1), Some(16));
        assert_eq!(class(1, 1), Some(16));
        assert_eq!(class(16, 8), Some(16));
        assert_eq!(class(17, 1), Some(32));
        assert_eq!(class(100, 8), Some(128));
        assert_eq!(class(512, 16), Some(512));
        // Larger blocks and stricter alignments go to Redis directly.
        assert_eq!(class(513, 8), None);
        assert_eq!(class(64, 32), None);
        // The table agrees with a search of the classes for every size.
        for size in 0..=512 {
            let want = CLASSES.iter().position(|&c| c >= size.max(1));
            assert_eq!(
                Layout::from_size_align(size, 8).ok().and_then(class_of),
                want
            );
        }
        // Every class holds the free-list link and keeps 16-byte alignment.
        assert!(CLASSES.iter().all(|&c| c >= 16 && c % 16 == 0));
        assert!(CLASSES.windows(2).all(|w| w[0] < w[1]));
    }
}
