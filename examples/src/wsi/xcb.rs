//! A small X11 window through XCB, with `libxcb.so.1` loaded at run time.
//!
//! Only the handful of XCB functions needed to open a connection, create and map one
//! input-output window and tear both down again are declared here (from `xcb/xcb.h` and
//! `xcb/xproto.h` of libxcb 1.15).

use std::ffi::{c_char, c_int, c_uint, c_void};

use libloading::Library;

use crate::Result;

/// `xcb_screen_t` (xproto.h), the fields up to `allowed_depths_len`.
#[repr(C)]
struct XcbScreen {
    root: u32,
    default_colormap: u32,
    white_pixel: u32,
    black_pixel: u32,
    current_input_masks: u32,
    width_in_pixels: u16,
    height_in_pixels: u16,
    width_in_millimeters: u16,
    height_in_millimeters: u16,
    min_installed_maps: u16,
    max_installed_maps: u16,
    root_visual: u32,
    backing_stores: u8,
    save_unders: u8,
    root_depth: u8,
    allowed_depths_len: u8,
}

/// `xcb_screen_iterator_t`.
#[repr(C)]
struct XcbScreenIterator {
    data: *mut XcbScreen,
    rem: c_int,
    index: c_int,
}

/// `xcb_void_cookie_t`.
#[repr(C)]
#[derive(Clone, Copy)]
struct XcbVoidCookie {
    sequence: c_uint,
}

/// `xcb_generic_error_t` (the fields read here).
#[repr(C)]
struct XcbGenericError {
    response_type: u8,
    error_code: u8,
    sequence: u16,
    resource_id: u32,
    minor_code: u16,
    major_code: u8,
}

/// `XCB_WINDOW_CLASS_INPUT_OUTPUT`.
const WINDOW_CLASS_INPUT_OUTPUT: u16 = 1;
/// `XCB_COPY_FROM_PARENT`.
const COPY_FROM_PARENT: u8 = 0;
/// `XCB_CW_BACK_PIXEL`.
const CW_BACK_PIXEL: u32 = 2;

type ConnectFn = unsafe extern "C" fn(*const c_char, *mut c_int) -> *mut c_void;
type ConnectionHasErrorFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type GetSetupFn = unsafe extern "C" fn(*mut c_void) -> *const c_void;
type SetupRootsIteratorFn = unsafe extern "C" fn(*const c_void) -> XcbScreenIterator;
type ScreenNextFn = unsafe extern "C" fn(*mut XcbScreenIterator);
type GenerateIdFn = unsafe extern "C" fn(*mut c_void) -> u32;
#[allow(clippy::type_complexity)] // reason: mirrors xcb_create_window_checked's C signature
type CreateWindowCheckedFn = unsafe extern "C" fn(
    *mut c_void,
    u8,
    u32,
    u32,
    i16,
    i16,
    u16,
    u16,
    u16,
    u16,
    u32,
    u32,
    *const c_void,
) -> XcbVoidCookie;
type WindowRequestFn = unsafe extern "C" fn(*mut c_void, u32) -> XcbVoidCookie;
type RequestCheckFn = unsafe extern "C" fn(*mut c_void, XcbVoidCookie) -> *mut XcbGenericError;
type FlushFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type DisconnectFn = unsafe extern "C" fn(*mut c_void);

extern "C" {
    /// libc's `free`, for the error replies XCB allocates with `malloc`.
    fn free(p: *mut c_void);
}

/// The XCB entry points used here.
struct Fns {
    connect: ConnectFn,
    connection_has_error: ConnectionHasErrorFn,
    get_setup: GetSetupFn,
    setup_roots_iterator: SetupRootsIteratorFn,
    screen_next: ScreenNextFn,
    generate_id: GenerateIdFn,
    create_window_checked: CreateWindowCheckedFn,
    map_window_checked: WindowRequestFn,
    destroy_window: WindowRequestFn,
    request_check: RequestCheckFn,
    flush: FlushFn,
    disconnect: DisconnectFn,
}

/// A connection to the X server (`$DISPLAY`) with one mapped window; both are closed on drop.
pub struct XcbWindow {
    fns: Fns,
    connection: *mut c_void,
    window: u32,
    // Declared last: the function pointers above point into it.
    _lib: Library,
}

impl XcbWindow {
    /// Connects to `$DISPLAY` and creates and maps a `width`x`height` window on the default
    /// screen.
    pub fn open(width: u16, height: u16) -> Result<Self> {
        // SAFETY: loading libxcb runs no initialisers with preconditions; the library is kept in
        // the returned value as long as its functions may be called.
        let lib = unsafe { Library::new("libxcb.so.1") }
            .map_err(|e| format!("cannot load libxcb.so.1 (Debian: libxcb1): {e}"))?;
        // SAFETY: each symbol is looked up with the type of its C declaration in xcb.h /
        // xproto.h (libxcb 1.x ABI, stable since 1.0).
        let fns = unsafe {
            Fns {
                connect: *lib.get::<ConnectFn>(b"xcb_connect\0")?,
                connection_has_error: *lib
                    .get::<ConnectionHasErrorFn>(b"xcb_connection_has_error\0")?,
                get_setup: *lib.get::<GetSetupFn>(b"xcb_get_setup\0")?,
                setup_roots_iterator: *lib
                    .get::<SetupRootsIteratorFn>(b"xcb_setup_roots_iterator\0")?,
                screen_next: *lib.get::<ScreenNextFn>(b"xcb_screen_next\0")?,
                generate_id: *lib.get::<GenerateIdFn>(b"xcb_generate_id\0")?,
                create_window_checked: *lib
                    .get::<CreateWindowCheckedFn>(b"xcb_create_window_checked\0")?,
                map_window_checked: *lib.get::<WindowRequestFn>(b"xcb_map_window_checked\0")?,
                destroy_window: *lib.get::<WindowRequestFn>(b"xcb_destroy_window\0")?,
                request_check: *lib.get::<RequestCheckFn>(b"xcb_request_check\0")?,
                flush: *lib.get::<FlushFn>(b"xcb_flush\0")?,
                disconnect: *lib.get::<DisconnectFn>(b"xcb_disconnect\0")?,
            }
        };
        let mut screen_number: c_int = 0;
        // SAFETY: a null display name means $DISPLAY; the screen number output is a local.
        let connection = unsafe { (fns.connect)(std::ptr::null(), &mut screen_number) };
        // xcb_connect never returns null; on failure it returns an error connection that must
        // still be disconnected.
        // SAFETY: connection came from xcb_connect.
        let error = unsafe { (fns.connection_has_error)(connection) };
        let mut this = Self {
            fns,
            connection,
            window: 0,
            _lib: lib,
        };
        if error != 0 {
            return Err(format!(
                "cannot connect to the X server (DISPLAY={:?}): xcb error {error}",
                std::env::var("DISPLAY").unwrap_or_default()
            )
            .into());
        }
        // SAFETY: a working connection; the setup and the screen list it points to live as
        // long as the connection. xcb_connect returned a screen number that exists.
        let screen = unsafe {
            let setup = (this.fns.get_setup)(this.connection);
            let mut it = (this.fns.setup_roots_iterator)(setup);
            for _ in 0..screen_number {
                if it.rem <= 0 {
                    break;
                }
                (this.fns.screen_next)(&mut it);
            }
            it.data.as_ref().ok_or("the X server reports no screen")?
        };
        let (root, visual, black) = (screen.root, screen.root_visual, screen.black_pixel);
        // SAFETY: a working connection.
        let window = unsafe { (this.fns.generate_id)(this.connection) };
        let values = [black];
        // SAFETY: a fresh id from xcb_generate_id, the root window and visual of the screen;
        // the value list holds one value for the one bit of the mask and outlives the call.
        let cookie = unsafe {
            (this.fns.create_window_checked)(
                this.connection,
                COPY_FROM_PARENT,
                window,
                root,
                0,
                0,
                width,
                height,
                0,
                WINDOW_CLASS_INPUT_OUTPUT,
                visual,
                CW_BACK_PIXEL,
                values.as_ptr().cast(),
            )
        };
        this.check(cookie, "xcb_create_window")?;
        this.window = window;
        // SAFETY: the window was created on this connection.
        let cookie = unsafe { (this.fns.map_window_checked)(this.connection, window) };
        this.check(cookie, "xcb_map_window")?;
        Ok(this)
    }

    /// Waits for the reply to a checked request and turns an X error into an error.
    fn check(&self, cookie: XcbVoidCookie, what: &str) -> Result<()> {
        // SAFETY: the cookie came from a *_checked request on this connection.
        let error = unsafe { (self.fns.request_check)(self.connection, cookie) };
        if error.is_null() {
            return Ok(());
        }
        // SAFETY: xcb_request_check returns a malloc'd xcb_generic_error_t owned by the caller.
        let (code, major) = unsafe { ((*error).error_code, (*error).major_code) };
        // SAFETY: as above; freed once.
        unsafe { free(error.cast()) };
        Err(format!("{what} failed: X error {code} (request {major})").into())
    }

    /// The `xcb_connection_t *` for `VkXcbSurfaceCreateInfoKHR`.
    pub fn connection(&self) -> *mut c_void {
        self.connection
    }

    /// The window for `VkXcbSurfaceCreateInfoKHR`.
    pub fn window(&self) -> u32 {
        self.window
    }
}

impl Drop for XcbWindow {
    fn drop(&mut self) {
        // SAFETY: the window (if created) belongs to this connection, and every Vulkan surface
        // made for it has been destroyed (the owner drops the Vulkan objects first); the
        // connection is disconnected once.
        unsafe {
            if self.window != 0 {
                (self.fns.destroy_window)(self.connection, self.window);
                (self.fns.flush)(self.connection);
            }
            (self.fns.disconnect)(self.connection);
        }
    }
}
