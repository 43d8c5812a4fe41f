//! A small Wayland toplevel window, with `libwayland-client.so.0` loaded at run time.
//!
//! The core interfaces (`wl_registry`, `wl_compositor`, `wl_surface`) come from libwayland's
//! exported tables; the three `xdg-shell` interfaces needed to give the surface the toplevel
//! role (`xdg_wm_base`, `xdg_surface`, `xdg_toplevel`, version 1) are declared below, as
//! `wayland-scanner` would generate them from `xdg-shell.xml`. A surface without a role would
//! never be shown, so the compositor would never send the frame callbacks that FIFO
//! presentation waits for.
//!
//! Requests go through `wl_proxy_marshal_flags` (libwayland 1.20+), as the inline functions of
//! the generated protocol headers do.

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;

use libloading::Library;

use crate::Result;

/// `struct wl_message` (wayland-util.h).
#[repr(C)]
pub struct WlMessage {
    name: *const c_char,
    signature: *const c_char,
    types: *const *const WlInterface,
}

/// `struct wl_interface` (wayland-util.h).
#[repr(C)]
pub struct WlInterface {
    name: *const c_char,
    version: c_int,
    method_count: c_int,
    methods: *const WlMessage,
    event_count: c_int,
    events: *const WlMessage,
}

/// Read-only protocol tables handed to libwayland.
struct Table<T>(T);

// INVARIANT: the tables are immutable statics holding pointers to other immutable statics
// (strings, message arrays, interfaces); nothing writes through them, so sharing them between
// threads is sound.
// SAFETY: upheld by the invariant above.
unsafe impl<T> Sync for Table<T> {}

const fn message(
    name: &'static CStr,
    signature: &'static CStr,
    types: *const *const WlInterface,
) -> WlMessage {
    WlMessage {
        name: name.as_ptr(),
        signature: signature.as_ptr(),
        types,
    }
}

/// `types` for messages without object or new-id arguments (null per argument, 4 at most).
static NO_TYPES: Table<[*const WlInterface; 4]> = Table([ptr::null(); 4]);
/// `xdg_wm_base.get_xdg_surface(new_id<xdg_surface>, object<wl_surface>)`. The wl_surface entry
/// stays null: libwayland only reads `types` of requests for debug output.
static GET_XDG_SURFACE_TYPES: Table<[*const WlInterface; 2]> =
    Table([&XDG_SURFACE.0 as *const WlInterface, ptr::null()]);
/// `xdg_surface.get_toplevel(new_id<xdg_toplevel>)`.
static GET_TOPLEVEL_TYPES: Table<[*const WlInterface; 1]> =
    Table([&XDG_TOPLEVEL.0 as *const WlInterface]);

static XDG_WM_BASE_REQUESTS: Table<[WlMessage; 4]> = Table([
    message(c"destroy", c"", NO_TYPES.0.as_ptr()),
    message(c"create_positioner", c"n", NO_TYPES.0.as_ptr()),
    message(c"get_xdg_surface", c"no", GET_XDG_SURFACE_TYPES.0.as_ptr()),
    message(c"pong", c"u", NO_TYPES.0.as_ptr()),
]);
static XDG_WM_BASE_EVENTS: Table<[WlMessage; 1]> =
    Table([message(c"ping", c"u", NO_TYPES.0.as_ptr())]);
static XDG_WM_BASE: Table<WlInterface> = Table(WlInterface {
    name: c"xdg_wm_base".as_ptr(),
    version: 1,
    method_count: 4,
    methods: XDG_WM_BASE_REQUESTS.0.as_ptr(),
    event_count: 1,
    events: XDG_WM_BASE_EVENTS.0.as_ptr(),
});

static XDG_SURFACE_REQUESTS: Table<[WlMessage; 5]> = Table([
    message(c"destroy", c"", NO_TYPES.0.as_ptr()),
    message(c"get_toplevel", c"n", GET_TOPLEVEL_TYPES.0.as_ptr()),
    message(c"get_popup", c"n?oo", NO_TYPES.0.as_ptr()),
    message(c"set_window_geometry", c"iiii", NO_TYPES.0.as_ptr()),
    message(c"ack_configure", c"u", NO_TYPES.0.as_ptr()),
]);
static XDG_SURFACE_EVENTS: Table<[WlMessage; 1]> =
    Table([message(c"configure", c"u", NO_TYPES.0.as_ptr())]);
static XDG_SURFACE: Table<WlInterface> = Table(WlInterface {
    name: c"xdg_surface".as_ptr(),
    version: 1,
    method_count: 5,
    methods: XDG_SURFACE_REQUESTS.0.as_ptr(),
    event_count: 1,
    events: XDG_SURFACE_EVENTS.0.as_ptr(),
});

static XDG_TOPLEVEL_REQUESTS: Table<[WlMessage; 14]> = Table([
    message(c"destroy", c"", NO_TYPES.0.as_ptr()),
    message(c"set_parent", c"?o", NO_TYPES.0.as_ptr()),
    message(c"set_title", c"s", NO_TYPES.0.as_ptr()),
    message(c"set_app_id", c"s", NO_TYPES.0.as_ptr()),
    message(c"show_window_menu", c"ouii", NO_TYPES.0.as_ptr()),
    message(c"move", c"ou", NO_TYPES.0.as_ptr()),
    message(c"resize", c"ouu", NO_TYPES.0.as_ptr()),
    message(c"set_max_size", c"ii", NO_TYPES.0.as_ptr()),
    message(c"set_min_size", c"ii", NO_TYPES.0.as_ptr()),
    message(c"set_maximized", c"", NO_TYPES.0.as_ptr()),
    message(c"unset_maximized", c"", NO_TYPES.0.as_ptr()),
    message(c"set_fullscreen", c"?o", NO_TYPES.0.as_ptr()),
    message(c"unset_fullscreen", c"", NO_TYPES.0.as_ptr()),
    message(c"set_minimized", c"", NO_TYPES.0.as_ptr()),
]);
static XDG_TOPLEVEL_EVENTS: Table<[WlMessage; 2]> = Table([
    message(c"configure", c"iia", NO_TYPES.0.as_ptr()),
    message(c"close", c"", NO_TYPES.0.as_ptr()),
]);
static XDG_TOPLEVEL: Table<WlInterface> = Table(WlInterface {
    name: c"xdg_toplevel".as_ptr(),
    version: 1,
    method_count: 14,
    methods: XDG_TOPLEVEL_REQUESTS.0.as_ptr(),
    event_count: 2,
    events: XDG_TOPLEVEL_EVENTS.0.as_ptr(),
});

// Opcodes (request indices) used below.
const WL_DISPLAY_GET_REGISTRY: u32 = 1;
const WL_REGISTRY_BIND: u32 = 0;
const WL_COMPOSITOR_CREATE_SURFACE: u32 = 0;
const WL_SURFACE_DESTROY: u32 = 0;
const WL_SURFACE_COMMIT: u32 = 6;
const XDG_WM_BASE_DESTROY: u32 = 0;
const XDG_WM_BASE_GET_XDG_SURFACE: u32 = 2;
const XDG_WM_BASE_PONG: u32 = 3;
const XDG_SURFACE_DESTROY: u32 = 0;
const XDG_SURFACE_GET_TOPLEVEL: u32 = 1;
const XDG_SURFACE_ACK_CONFIGURE: u32 = 4;
const XDG_TOPLEVEL_DESTROY: u32 = 0;
const XDG_TOPLEVEL_SET_TITLE: u32 = 2;
/// `WL_MARSHAL_FLAG_DESTROY`: the request is a destructor; the proxy is destroyed with it.
const MARSHAL_FLAG_DESTROY: u32 = 1;

type ConnectFn = unsafe extern "C" fn(*const c_char) -> *mut c_void;
type DisplayFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type DisconnectFn = unsafe extern "C" fn(*mut c_void);
type MarshalFlagsFn =
    unsafe extern "C" fn(*mut c_void, u32, *const WlInterface, u32, u32, ...) -> *mut c_void;
type AddListenerFn = unsafe extern "C" fn(*mut c_void, *const c_void, *mut c_void) -> c_int;
type ProxyVersionFn = unsafe extern "C" fn(*mut c_void) -> u32;
type ProxyDestroyFn = unsafe extern "C" fn(*mut c_void);

/// `wl_registry_listener`.
#[repr(C)]
struct RegistryListener {
    global: unsafe extern "C" fn(*mut c_void, *mut c_void, u32, *const c_char, u32),
    global_remove: unsafe extern "C" fn(*mut c_void, *mut c_void, u32),
}

/// `xdg_wm_base_listener`.
#[repr(C)]
struct WmBaseListener {
    ping: unsafe extern "C" fn(*mut c_void, *mut c_void, u32),
}

/// `xdg_surface_listener`.
#[repr(C)]
struct XdgSurfaceListener {
    configure: unsafe extern "C" fn(*mut c_void, *mut c_void, u32),
}

/// `xdg_toplevel_listener` (version 1).
#[repr(C)]
struct ToplevelListener {
    configure: unsafe extern "C" fn(*mut c_void, *mut c_void, i32, i32, *mut c_void),
    close: unsafe extern "C" fn(*mut c_void, *mut c_void),
}

static REGISTRY_LISTENER: RegistryListener = RegistryListener {
    global: registry_global,
    global_remove: registry_global_remove,
};
static WM_BASE_LISTENER: WmBaseListener = WmBaseListener { ping: wm_base_ping };
static XDG_SURFACE_LISTENER: XdgSurfaceListener = XdgSurfaceListener {
    configure: xdg_surface_configure,
};
static TOPLEVEL_LISTENER: ToplevelListener = ToplevelListener {
    configure: toplevel_configure,
    close: toplevel_close,
};

/// What the event handlers need and record; the listeners' `data` points here.
struct State {
    marshal: MarshalFlagsFn,
    proxy_version: ProxyVersionFn,
    /// `(name, version)` of the `wl_compositor` global.
    compositor: Cell<Option<(u32, u32)>>,
    /// Name of the `xdg_wm_base` global.
    wm_base: Cell<Option<u32>>,
    /// The first `xdg_surface.configure` has been acknowledged.
    configured: Cell<bool>,
}

/// # Safety
/// Called by libwayland with `data` = a live [`State`] and a NUL-terminated interface name.
unsafe extern "C" fn registry_global(
    data: *mut c_void,
    _registry: *mut c_void,
    name: u32,
    interface: *const c_char,
    version: u32,
) {
    // SAFETY: see the function's contract.
    let (state, interface) = unsafe { (&*(data as *const State), CStr::from_ptr(interface)) };
    if interface == c"wl_compositor" {
        state.compositor.set(Some((name, version)));
    } else if interface == c"xdg_wm_base" {
        state.wm_base.set(Some(name));
    }
}

unsafe extern "C" fn registry_global_remove(_: *mut c_void, _: *mut c_void, _: u32) {}

/// # Safety
/// Called by libwayland with `data` = a live [`State`] and the `xdg_wm_base` proxy.
unsafe extern "C" fn wm_base_ping(data: *mut c_void, wm_base: *mut c_void, serial: u32) {
    // SAFETY: see the function's contract; `pong(uint)` matches the request's signature "u".
    unsafe {
        let state = &*(data as *const State);
        (state.marshal)(
            wm_base,
            XDG_WM_BASE_PONG,
            ptr::null(),
            (state.proxy_version)(wm_base),
            0,
            serial,
        );
    }
}

/// # Safety
/// Called by libwayland with `data` = a live [`State`] and the `xdg_surface` proxy.
unsafe extern "C" fn xdg_surface_configure(data: *mut c_void, surface: *mut c_void, serial: u32) {
    // SAFETY: see the function's contract; `ack_configure(uint)` matches the signature "u".
    unsafe {
        let state = &*(data as *const State);
        (state.marshal)(
            surface,
            XDG_SURFACE_ACK_CONFIGURE,
            ptr::null(),
            (state.proxy_version)(surface),
            0,
            serial,
        );
        state.configured.set(true);
    }
}

/// The window keeps the size it presents: suggested sizes are ignored (the protocol allows it).
unsafe extern "C" fn toplevel_configure(
    _: *mut c_void,
    _: *mut c_void,
    _: i32,
    _: i32,
    _: *mut c_void,
) {
}

unsafe extern "C" fn toplevel_close(_: *mut c_void, _: *mut c_void) {}

/// The libwayland-client entry points used after connecting.
struct Fns {
    disconnect: DisconnectFn,
    roundtrip: DisplayFn,
    dispatch_pending: DisplayFn,
    add_listener: AddListenerFn,
    proxy_destroy: ProxyDestroyFn,
}

/// A connection to the compositor (`$WAYLAND_DISPLAY`) with one `xdg_toplevel` surface; all of
/// it is destroyed and disconnected on drop.
pub struct WaylandWindow {
    fns: Fns,
    state: Box<State>,
    display: *mut c_void,
    registry: *mut c_void,
    compositor: *mut c_void,
    wm_base: *mut c_void,
    surface: *mut c_void,
    xdg_surface: *mut c_void,
    toplevel: *mut c_void,
    // Declared last: the function pointers and interfaces above point into it.
    _lib: Library,
}

impl WaylandWindow {
    /// Connects to `$WAYLAND_DISPLAY`, creates a `wl_surface` with the `xdg_toplevel` role and
    /// waits for its first configure event. The surface gets its size from the first buffer
    /// presented to it.
    pub fn open() -> Result<Self> {
        // SAFETY: loading libwayland-client runs no initialisers with preconditions; the
        // library is kept in the returned value as long as its functions may be called.
        let lib = unsafe { Library::new("libwayland-client.so.0") }.map_err(|e| {
            format!("cannot load libwayland-client.so.0 (Debian: libwayland-client0): {e}")
        })?;
        // SAFETY: each symbol is looked up with the type of its declaration in
        // wayland-client-core.h; the interfaces are the exported `const struct wl_interface`s
        // of the core protocol.
        let (connect, fns, marshal, proxy_version, registry_if, compositor_if, surface_if) = unsafe {
            (
                *lib.get::<ConnectFn>(b"wl_display_connect\0")?,
                Fns {
                    disconnect: *lib.get::<DisconnectFn>(b"wl_display_disconnect\0")?,
                    roundtrip: *lib.get::<DisplayFn>(b"wl_display_roundtrip\0")?,
                    dispatch_pending: *lib.get::<DisplayFn>(b"wl_display_dispatch_pending\0")?,
                    add_listener: *lib.get::<AddListenerFn>(b"wl_proxy_add_listener\0")?,
                    proxy_destroy: *lib.get::<ProxyDestroyFn>(b"wl_proxy_destroy\0")?,
                },
                *lib.get::<MarshalFlagsFn>(b"wl_proxy_marshal_flags\0")?,
                *lib.get::<ProxyVersionFn>(b"wl_proxy_get_version\0")?,
                *lib.get::<*const WlInterface>(b"wl_registry_interface\0")?,
                *lib.get::<*const WlInterface>(b"wl_compositor_interface\0")?,
                *lib.get::<*const WlInterface>(b"wl_surface_interface\0")?,
            )
        };
        // SAFETY: a null name means $WAYLAND_DISPLAY (or "wayland-0") in $XDG_RUNTIME_DIR.
        let display = unsafe { connect(ptr::null()) };
        if display.is_null() {
            return Err(format!(
                "cannot connect to the Wayland compositor (WAYLAND_DISPLAY={:?}, XDG_RUNTIME_DIR={:?})",
                std::env::var("WAYLAND_DISPLAY").unwrap_or_default(),
                std::env::var("XDG_RUNTIME_DIR").unwrap_or_default()
            )
            .into());
        }
        let state = Box::new(State {
            marshal,
            proxy_version,
            compositor: Cell::new(None),
            wm_base: Cell::new(None),
            configured: Cell::new(false),
        });
        let mut this = Self {
            fns,
            state,
            display,
            registry: ptr::null_mut(),
            compositor: ptr::null_mut(),
            wm_base: ptr::null_mut(),
            surface: ptr::null_mut(),
            xdg_surface: ptr::null_mut(),
            toplevel: ptr::null_mut(),
            _lib: lib,
        };
        let data = &*this.state as *const State as *mut c_void;

        // SAFETY: (this block and the next ones) every request is marshalled with its opcode,
        // the interface of the object it creates (or null), the version of the proxy it is
        // sent on, and arguments matching its signature, as the protocol headers' inline
        // functions do; every proxy belongs to this display; listeners are statics and `data`
        // lives in `this.state` until the proxies are destroyed in drop.
        unsafe {
            this.registry = marshal(
                display,
                WL_DISPLAY_GET_REGISTRY,
                registry_if,
                proxy_version(display),
                0,
                ptr::null_mut::<c_void>(),
            );
            if this.registry.is_null() {
                return Err("wl_display.get_registry failed".into());
            }
            (this.fns.add_listener)(
                this.registry,
                &REGISTRY_LISTENER as *const RegistryListener as *const c_void,
                data,
            );
        }
        this.roundtrip()?;
        let (Some((compositor_name, compositor_version)), Some(wm_base_name)) =
            (this.state.compositor.get(), this.state.wm_base.get())
        else {
            return Err("the compositor offers no wl_compositor or no xdg_wm_base".into());
        };
        // SAFETY: see above; wl_registry.bind has the signature "usun" (name, interface name,
        // version, new id).
        unsafe {
            let version = compositor_version.min(4);
            this.compositor = marshal(
                this.registry,
                WL_REGISTRY_BIND,
                compositor_if,
                version,
                0,
                compositor_name,
                (*compositor_if).name,
                version,
                ptr::null_mut::<c_void>(),
            );
            this.wm_base = marshal(
                this.registry,
                WL_REGISTRY_BIND,
                &XDG_WM_BASE.0,
                1u32,
                0,
                wm_base_name,
                XDG_WM_BASE.0.name,
                1u32,
                ptr::null_mut::<c_void>(),
            );
            if this.compositor.is_null() || this.wm_base.is_null() {
                return Err("wl_registry.bind failed".into());
            }
            (this.fns.add_listener)(
                this.wm_base,
                &WM_BASE_LISTENER as *const WmBaseListener as *const c_void,
                data,
            );
            this.surface = marshal(
                this.compositor,
                WL_COMPOSITOR_CREATE_SURFACE,
                surface_if,
                proxy_version(this.compositor),
                0,
                ptr::null_mut::<c_void>(),
            );
            if this.surface.is_null() {
                return Err("wl_compositor.create_surface failed".into());
            }
            this.xdg_surface = marshal(
                this.wm_base,
                XDG_WM_BASE_GET_XDG_SURFACE,
                &XDG_SURFACE.0,
                proxy_version(this.wm_base),
                0,
                ptr::null_mut::<c_void>(),
                this.surface,
            );
            if this.xdg_surface.is_null() {
                return Err("xdg_wm_base.get_xdg_surface failed".into());
            }
            (this.fns.add_listener)(
                this.xdg_surface,
                &XDG_SURFACE_LISTENER as *const XdgSurfaceListener as *const c_void,
                data,
            );
            this.toplevel = marshal(
                this.xdg_surface,
                XDG_SURFACE_GET_TOPLEVEL,
                &XDG_TOPLEVEL.0,
                proxy_version(this.xdg_surface),
                0,
                ptr::null_mut::<c_void>(),
            );
            if this.toplevel.is_null() {
                return Err("xdg_surface.get_toplevel failed".into());
            }
            (this.fns.add_listener)(
                this.toplevel,
                &TOPLEVEL_LISTENER as *const ToplevelListener as *const c_void,
                data,
            );
            marshal(
                this.toplevel,
                XDG_TOPLEVEL_SET_TITLE,
                ptr::null(),
                proxy_version(this.toplevel),
                0,
                c"vkfuse present".as_ptr(),
            );
            // The initial commit without a buffer asks for the first configure event.
            marshal(
                this.surface,
                WL_SURFACE_COMMIT,
                ptr::null(),
                proxy_version(this.surface),
                0,
            );
        }
        for _ in 0..10 {
            if this.state.configured.get() {
                return Ok(this);
            }
            this.roundtrip()?;
        }
        Err("the compositor sent no xdg_surface.configure".into())
    }

    fn roundtrip(&self) -> Result<()> {
        // SAFETY: a live display; handlers run on this thread.
        if unsafe { (self.fns.roundtrip)(self.display) } < 0 {
            return Err(format!(
                "wl_display_roundtrip failed: {}",
                std::io::Error::last_os_error()
            )
            .into());
        }
        Ok(())
    }

    /// Handles events already read for the window (pings) without blocking.
    pub fn dispatch_pending(&self) {
        // SAFETY: a live display; handlers run on this thread.
        unsafe { (self.fns.dispatch_pending)(self.display) };
    }

    /// The `wl_display *` for `VkWaylandSurfaceCreateInfoKHR`.
    pub fn display(&self) -> *mut c_void {
        self.display
    }

    /// The `wl_surface *` for `VkWaylandSurfaceCreateInfoKHR`.
    pub fn surface(&self) -> *mut c_void {
        self.surface
    }
}

impl Drop for WaylandWindow {
    fn drop(&mut self) {
        let marshal = self.state.marshal;
        let version = self.state.proxy_version;
        // SAFETY: every Vulkan surface made for the wl_surface has been destroyed (the owner
        // drops the Vulkan objects first); proxies are destroyed once, children before their
        // parents as xdg-shell requires (toplevel, xdg_surface, wl_surface, then wm_base),
        // each destructor request with WL_MARSHAL_FLAG_DESTROY; the display is disconnected
        // last.
        unsafe {
            for (proxy, opcode) in [
                (self.toplevel, XDG_TOPLEVEL_DESTROY),
                (self.xdg_surface, XDG_SURFACE_DESTROY),
                (self.surface, WL_SURFACE_DESTROY),
            ] {
                if !proxy.is_null() {
                    marshal(
                        proxy,
                        opcode,
                        ptr::null(),
                        version(proxy),
                        MARSHAL_FLAG_DESTROY,
                    );
                }
            }
            if !self.compositor.is_null() {
                // wl_compositor has no destructor request.
                (self.fns.proxy_destroy)(self.compositor);
            }
            if !self.wm_base.is_null() {
                marshal(
                    self.wm_base,
                    XDG_WM_BASE_DESTROY,
                    ptr::null(),
                    version(self.wm_base),
                    MARSHAL_FLAG_DESTROY,
                );
            }
            if !self.registry.is_null() {
                (self.fns.proxy_destroy)(self.registry);
            }
            // Sends the destructors and waits until the compositor has processed them.
            (self.fns.roundtrip)(self.display);
            (self.fns.disconnect)(self.display);
        }
    }
}
