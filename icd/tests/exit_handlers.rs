//! Programs call Vulkan from exit handlers, after glibc has destroyed the main thread's
//! thread-locals (piglit over Zink does: waffle teardown runs in an atexit handler). vkfuse's
//! per-thread arena must then still give room, not panic.

mod common;

extern "C" {
    fn atexit(f: extern "C" fn()) -> i32;
}

extern "C" fn at_exit() {
    let scope = vkfuse::arena::Arena::scope();
    let p = scope.alloc::<u64>(4);
    // SAFETY: room for four u64 was just allocated.
    unsafe { p.add(3).write(7) };
    eprintln!("arena usable in an exit handler");
}

#[test]
fn arena_works_in_exit_handlers() {
    if common::is_child() {
        // Make sure the thread-local arena exists, so that exit has one to destroy.
        drop(vkfuse::arena::Arena::scope());
        // SAFETY: registering a plain extern "C" function.
        assert_eq!(unsafe { atexit(at_exit) }, 0);
        std::process::exit(0);
    }
    let out = common::run_child("arena_works_in_exit_handlers", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed: {:?}\n{stderr}",
        out.status
    );
    assert!(
        stderr.contains("arena usable in an exit handler"),
        "{stderr}"
    );
}
