//! A per-thread bump arena for the translated copies of a call's structs.
//!
//! A thunk opens a [`Scope`]; everything it allocates lives until the outermost scope of the
//! thread closes. Chunks are kept, so steady-state calls allocate nothing from the heap.

use std::cell::{Cell, UnsafeCell};

const CHUNK_WORDS: usize = 8 * 1024;

pub struct Arena {
    chunks: UnsafeCell<Vec<Box<[u64]>>>,
    chunk: Cell<usize>,
    used: Cell<usize>,
    depth: Cell<u32>,
}

thread_local! {
    static ARENA: Arena = const { Arena::new() };
}

/// An open allocation scope on this thread's arena.
pub struct Scope {
    arena: *const Arena,
    /// An arena of the scope's own, used when the thread's arena is already destroyed: a
    /// program's exit handlers may call Vulkan after glibc has run the thread-local destructors
    /// (seen with piglit over Zink).
    _own: Option<Box<Arena>>,
}

impl Arena {
    /// Opens a scope on the calling thread's arena.
    pub fn scope() -> Scope {
        let shared = ARENA.try_with(|a| {
            a.depth.set(a.depth.get() + 1);
            a as *const Arena
        });
        match shared {
            Ok(arena) => Scope { arena, _own: None },
            Err(_) => {
                let own = Box::new(Arena::new());
                own.depth.set(1);
                Scope {
                    arena: &*own,
                    _own: Some(own),
                }
            }
        }
    }

    const fn new() -> Arena {
        Arena {
            chunks: UnsafeCell::new(Vec::new()),
            chunk: Cell::new(0),
            used: Cell::new(0),
            depth: Cell::new(0),
        }
    }

    /// Returns uninitialised, 8-byte aligned room for `n` values of `T`.
    pub fn alloc<T>(&self, n: usize) -> *mut T {
        debug_assert!(std::mem::align_of::<T>() <= 8);
        let words = (n * std::mem::size_of::<T>()).div_ceil(8).max(1);
        // SAFETY: the arena is only reached through a `Scope` of this thread; no reference into
        // `chunks` outlives this function, and existing chunks are never moved or freed while a
        // scope is open (only new boxes are pushed).
        let chunks = unsafe { &mut *self.chunks.get() };
        loop {
            let c = self.chunk.get();
            if c == chunks.len() {
                chunks.push(vec![0u64; CHUNK_WORDS.max(words)].into_boxed_slice());
            }
            let chunk = &mut chunks[c];
            let used = self.used.get();
            if used + words <= chunk.len() {
                self.used.set(used + words);
                return chunk[used..].as_mut_ptr().cast();
            }
            self.chunk.set(c + 1);
            self.used.set(0);
        }
    }
}

impl std::ops::Deref for Scope {
    type Target = Arena;
    fn deref(&self) -> &Arena {
        // SAFETY: the pointer is to this thread's arena, which lives as long as the thread, or
        // to the scope's own arena, which lives as long as the scope; `Scope` is neither Send
        // nor Sync (raw pointer field), so it never leaves the thread.
        unsafe { &*self.arena }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let d = self.depth.get() - 1;
        self.depth.set(d);
        if d == 0 {
            self.chunk.set(0);
            self.used.set(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_aligned_distinct_and_reused_after_the_scope() {
        let first;
        {
            let a = Arena::scope();
            let p = a.alloc::<u64>(3);
            let q = a.alloc::<u8>(1);
            let big = a.alloc::<u64>(CHUNK_WORDS * 2);
            assert_eq!(p as usize % 8, 0);
            assert!(q as usize >= p as usize + 24);
            assert_ne!(big as usize, q as usize);
            // SAFETY: writes within the allocations just made.
            unsafe {
                p.write(1);
                big.add(CHUNK_WORDS * 2 - 1).write(2);
            }
            {
                let nested = Arena::scope();
                let r = nested.alloc::<u64>(1);
                assert!(r as usize > q as usize || r as usize >= big as usize);
            }
            // The nested scope closing must not reset the outer one.
            let s = a.alloc::<u64>(1);
            assert_ne!(s, p);
            first = p as usize;
        }
        let a = Arena::scope();
        assert_eq!(
            a.alloc::<u64>(1) as usize,
            first,
            "storage is reused once the outer scope closes"
        );
    }
}
