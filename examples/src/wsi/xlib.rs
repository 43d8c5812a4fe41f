//! A small X11 window through Xlib, with `libX11.so.6` loaded at run time.
//!
//! Xlib's default error handler exits the process; while the window exists, a handler that
//! records the error is installed instead, and every step ends with `XSync` so an error is
//! reported by the call that caused it.

use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void};
use std::sync::atomic::{AtomicI32, Ordering};

use libloading::Library;

use crate::Result;

/// `XErrorEvent` (Xlib.h).
#[repr(C)]
struct XErrorEvent {
    kind: c_int,
    display: *mut c_void,
    resource_id: c_ulong,
    serial: c_ulong,
    error_code: u8,
    request_code: u8,
    minor_code: u8,
}

type ErrorHandler = Option<unsafe extern "C" fn(*mut c_void, *mut XErrorEvent) -> c_int>;

type InitThreadsFn = unsafe extern "C" fn() -> c_int;
type OpenDisplayFn = unsafe extern "C" fn(*const c_char) -> *mut c_void;
type DisplayIntFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type DisplayScreenFn = unsafe extern "C" fn(*mut c_void, c_int) -> c_ulong;
#[allow(clippy::type_complexity)] // reason: mirrors XCreateSimpleWindow's C signature
type CreateSimpleWindowFn = unsafe extern "C" fn(
    *mut c_void,
    c_ulong,
    c_int,
    c_int,
    c_uint,
    c_uint,
    c_uint,
    c_ulong,
    c_ulong,
) -> c_ulong;
type WindowFn = unsafe extern "C" fn(*mut c_void, c_ulong) -> c_int;
type SyncFn = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;
type SetErrorHandlerFn = unsafe extern "C" fn(ErrorHandler) -> ErrorHandler;

/// The first X error code seen by [`record_error`] since the last [`take_error`] (0: none).
static LAST_ERROR: AtomicI32 = AtomicI32::new(0);

/// Records an X error instead of exiting (Xlib's default).
unsafe extern "C" fn record_error(_display: *mut c_void, event: *mut XErrorEvent) -> c_int {
    // SAFETY: Xlib passes a valid event for the duration of the call.
    let code = unsafe { event.as_ref() }.map_or(-1, |e| i32::from(e.error_code));
    let _ = LAST_ERROR.compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst);
    0
}

fn take_error() -> i32 {
    LAST_ERROR.swap(0, Ordering::SeqCst)
}

/// The Xlib entry points used here.
struct Fns {
    sync: SyncFn,
    destroy_window: WindowFn,
    close_display: DisplayIntFn,
    set_error_handler: SetErrorHandlerFn,
}

/// A `Display` (`$DISPLAY`) with one mapped window; both are closed on drop.
pub struct XlibWindow {
    fns: Fns,
    display: *mut c_void,
    window: c_ulong,
    previous_handler: ErrorHandler,
    // Declared last: the function pointers above point into it.
    _lib: Library,
}

impl XlibWindow {
    /// Opens `$DISPLAY` and creates and maps a `width`x`height` window on the default screen.
    pub fn open(width: u32, height: u32) -> Result<Self> {
        // SAFETY: loading libX11 runs no initialisers with preconditions; the library is kept
        // in the returned value as long as its functions may be called.
        let lib = unsafe { Library::new("libX11.so.6") }
            .map_err(|e| format!("cannot load libX11.so.6 (Debian: libx11-6): {e}"))?;
        // SAFETY: each symbol is looked up with the type of its declaration in Xlib.h.
        let (init_threads, open_display, default_screen, root_window, black_pixel, create, map) = unsafe {
            (
                *lib.get::<InitThreadsFn>(b"XInitThreads\0")?,
                *lib.get::<OpenDisplayFn>(b"XOpenDisplay\0")?,
                *lib.get::<DisplayIntFn>(b"XDefaultScreen\0")?,
                *lib.get::<DisplayScreenFn>(b"XRootWindow\0")?,
                *lib.get::<DisplayScreenFn>(b"XBlackPixel\0")?,
                *lib.get::<CreateSimpleWindowFn>(b"XCreateSimpleWindow\0")?,
                *lib.get::<WindowFn>(b"XMapWindow\0")?,
            )
        };
        // SAFETY: as above.
        let fns = unsafe {
            Fns {
                sync: *lib.get::<SyncFn>(b"XSync\0")?,
                destroy_window: *lib.get::<WindowFn>(b"XDestroyWindow\0")?,
                close_display: *lib.get::<DisplayIntFn>(b"XCloseDisplay\0")?,
                set_error_handler: *lib.get::<SetErrorHandlerFn>(b"XSetErrorHandler\0")?,
            }
        };
        // The driver's WSI may use the display from its own threads (present queue threads).
        // SAFETY: called before any other Xlib call of this process, as Xlib requires.
        if unsafe { init_threads() } == 0 {
            return Err("XInitThreads failed".into());
        }
        // SAFETY: a null name means $DISPLAY.
        let display = unsafe { open_display(std::ptr::null()) };
        if display.is_null() {
            return Err(format!(
                "cannot open the X display (DISPLAY={:?})",
                std::env::var("DISPLAY").unwrap_or_default()
            )
            .into());
        }
        take_error();
        // SAFETY: installs a handler that only records the code; the previous one is put back
        // on drop.
        let previous_handler = unsafe { (fns.set_error_handler)(Some(record_error)) };
        let mut this = Self {
            fns,
            display,
            window: 0,
            previous_handler,
            _lib: lib,
        };
        // SAFETY: an open display; the screen is its default one, and the parent its root.
        this.window = unsafe {
            let screen = default_screen(display);
            let black = black_pixel(display, screen);
            create(
                display,
                root_window(display, screen),
                0,
                0,
                width,
                height,
                0,
                black,
                black,
            )
        };
        this.sync("XCreateSimpleWindow")?;
        if this.window == 0 {
            return Err("XCreateSimpleWindow returned no window".into());
        }
        // SAFETY: the window was created on this display.
        unsafe { map(display, this.window) };
        this.sync("XMapWindow")?;
        Ok(this)
    }

    /// `XSync`, then fails if an X error was recorded since the last check.
    fn sync(&self, what: &str) -> Result<()> {
        // SAFETY: an open display.
        unsafe { (self.fns.sync)(self.display, 0) };
        match take_error() {
            0 => Ok(()),
            code => Err(format!("{what} failed: X error {code}").into()),
        }
    }

    /// The `Display *` for `VkXlibSurfaceCreateInfoKHR`.
    pub fn display(&self) -> *mut c_void {
        self.display
    }

    /// The window for `VkXlibSurfaceCreateInfoKHR`.
    pub fn window(&self) -> c_ulong {
        self.window
    }
}

impl Drop for XlibWindow {
    fn drop(&mut self) {
        // SAFETY: every Vulkan surface made for the window has been destroyed (the owner drops
        // the Vulkan objects first); window and display are destroyed once, the previous error
        // handler is restored after the last request.
        unsafe {
            if self.window != 0 {
                (self.fns.destroy_window)(self.display, self.window);
            }
            (self.fns.sync)(self.display, 0);
            (self.fns.set_error_handler)(self.previous_handler);
            (self.fns.close_display)(self.display);
        }
        let code = take_error();
        if code != 0 {
            eprintln!("xlib: X error {code} while closing the window");
        }
    }
}
