//! Writes the generated modules of the ICD from the registry and vkfuse's policy files.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use heck::{ToShoutySnakeCase, ToSnakeCase};

use crate::registry::{Cmd, Field, Registry, Struct};

/// What `codegen/overrides.txt` says of a command or struct.
#[derive(Debug, Clone)]
pub enum Kind {
    Override(String),
    Primary,
    /// Host query about an object: forwarded to the member that last ran work on the named
    /// parameter's object.
    Executed(String),
    /// Recorded command that notes the object its parameters name (`Note::object`, an array
    /// when `Note::count_param` names its length), with an optional range of elements (query
    /// indices), for the member that runs it: written (`Note::read` false) or read.
    Note(Note),
    Struct(String),
    /// `<Struct>.<member> when <condition>`: a handle member the driver reads only when the
    /// Rust condition on the struct copy `d` holds; otherwise it is ignored (the application
    /// may leave anything there) and the member gets a null handle.
    When(String),
}

pub struct Policy {
    pub kinds: BTreeMap<String, Kind>,
    /// `<command> writes [<param> | <param>.<member>]...`: a recorded command that writes only
    /// the memory these handles lead to, and only reads the rest it names (access sets,
    /// `icd/src/access.rs`). Commands without such a line count everything they name as
    /// written.
    pub writes: BTreeMap<String, Vec<String>>,
    /// `<command> after <path>` lines, in file order per command: generated forwarding, then
    /// `crate::<path>(<the command's object>, <its parameters after the first>)` once every
    /// member succeeded. The object is the `&Device` for device commands and the
    /// `&CommandBuffer` for recorded commands, whose hooks run only when the command buffer
    /// collects (`CommandBuffer::collects`). Destroy commands run their hooks before the vkfuse
    /// object is freed, so that its handle value cannot have been reused yet.
    pub after: BTreeMap<String, Vec<String>>,
    /// `<command> touches <path>`: a recorded command whose access-set collection is
    /// hand-written: `crate::<path>(<the command buffer>, <its parameters after the first>)`
    /// (when the command buffer collects) instead of the generated touches, for commands that
    /// name the part of a resource they use (buffer copy regions, say).
    pub touches: BTreeMap<String, String>,
    pub denied: BTreeSet<String>,
}

/// Vendor tags whose extensions vkfuse forwards. Other vendors' extensions are not offered by the
/// members vkfuse is tested with; they are left out until a member needs them and a test runs them.
const VENDORS: &[&str] = &["KHR", "EXT", "GOOGLE", "ARM"];
const PLATFORMS: &[&str] = &["xcb", "xlib", "wayland"];

impl Policy {
    pub fn load(dir: &Path) -> Result<Policy, String> {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name)).map_err(|e| format!("{name}: {e}"))
        };
        let mut kinds = BTreeMap::new();
        let mut writes = BTreeMap::new();
        let mut after: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut touches = BTreeMap::new();
        for (n, line) in read("overrides.txt")?.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let w: Vec<&str> = line.split_whitespace().collect();
            if w.get(1) == Some(&"writes") {
                let paths = w[2..].iter().map(|x| x.to_string()).collect();
                if writes.insert(w[0].to_string(), paths).is_some() {
                    return Err(format!(
                        "overrides.txt:{}: a second `writes` for {}",
                        n + 1,
                        w[0]
                    ));
                }
                continue;
            }
            if let (Some(&"touches"), Some(p), 3) = (w.get(1), w.get(2), w.len()) {
                if touches.insert(w[0].to_string(), p.to_string()).is_some() {
                    return Err(format!(
                        "overrides.txt:{}: a second `touches` for {}",
                        n + 1,
                        w[0]
                    ));
                }
                continue;
            }
            if let (Some(&"after"), Some(p), 3) = (w.get(1), w.get(2), w.len()) {
                after
                    .entry(w[0].to_string())
                    .or_default()
                    .push(p.to_string());
                continue;
            }
            if w.get(1) == Some(&"when") && w.len() > 2 && w[0].contains('.') {
                let cond = line.split_once(" when ").map_or("", |(_, c)| c.trim());
                kinds.insert(w[0].to_string(), Kind::When(cond.to_string()));
                continue;
            }
            let note = |read: bool| {
                Kind::Note(Note {
                    object: w[2].to_string(),
                    first: w.get(3).map(|x| x.to_string()),
                    count: w.get(4).map(|x| x.to_string()),
                    read,
                    write_too: false,
                })
            };
            let kind = match (w.get(1), w.get(2)) {
                (Some(&"override"), Some(p)) => Kind::Override(p.to_string()),
                (Some(&"struct"), Some(p)) => Kind::Struct(p.to_string()),
                (Some(&"primary"), None) => Kind::Primary,
                (Some(&"executed"), Some(p)) => Kind::Executed(p.to_string()),
                (Some(&"note"), Some(_)) => note(false),
                (Some(&"note-read"), Some(_)) => note(true),
                (Some(&"note-rw"), Some(_)) => {
                    let mut k = note(true);
                    if let Kind::Note(n) = &mut k {
                        n.write_too = true;
                    }
                    k
                }
                _ => return Err(format!("overrides.txt:{}: cannot parse `{line}`", n + 1)),
            };
            kinds.insert(w[0].to_string(), kind);
        }
        let denied = read("extensions.txt")?
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        Ok(Policy {
            kinds,
            writes,
            after,
            touches,
            denied,
        })
    }
}

/// A `note` / `note-read` line of overrides.txt: `<cmd> note <object> [<first> [<count>]]`,
/// or `<cmd> note <array> [<array length>]` when the object parameter is an array.
#[derive(Clone, Debug)]
pub struct Note {
    pub object: String,
    pub first: Option<String>,
    pub count: Option<String>,
    pub read: bool,
    /// `note-rw`: the query must be in its reset state (which vkfuse can reproduce on any
    /// member), then holds the result.
    pub write_too: bool,
}

#[derive(Clone, Debug)]
enum Req {
    Core(u32, u32),
    Ext(String),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Level {
    Global,
    Instance,
    Physical,
    Device,
    Queue,
    CommandBuffer,
}

struct Model<'a> {
    reg: &'a Registry,
    policy: &'a Policy,
    /// Canonical command name → (name it is exposed under → requirements).
    cmds: BTreeMap<String, BTreeMap<String, Vec<Req>>>,
    /// Structs (canonical names) required by core or by a forwarded extension.
    types: BTreeSet<String>,
    extensions: Vec<(String, bool)>,
    /// Structs whose copies must be rewritten per member.
    needs_tr: BTreeSet<String>,
}

fn snake(name: &str) -> String {
    let s = name.to_snake_case();
    match s.as_str() {
        "type" => "ty".into(),
        "ref" | "fn" | "mod" | "use" | "impl" | "loop" | "match" | "move" => format!("{s}_"),
        _ => s,
    }
}

fn fn_name(cmd: &str) -> String {
    snake(cmd.trim_start_matches("vk"))
}

fn vk_name(ty: &str) -> String {
    format!(
        "vk::{}",
        ty.trim_start_matches("Vk").replace("FlagBits", "Flags")
    )
}

impl<'a> Model<'a> {
    fn new(reg: &'a Registry, policy: &'a Policy) -> Model<'a> {
        let mut m = Model {
            reg,
            policy,
            cmds: BTreeMap::new(),
            types: BTreeSet::new(),
            extensions: Vec::new(),
            needs_tr: BTreeSet::new(),
        };
        let add = |m: &mut Model, name: &str, req: Req| {
            let canon = reg.resolve_cmd(name).to_string();
            if !reg.commands.contains_key(&canon) {
                return;
            }
            m.cmds
                .entry(canon)
                .or_default()
                .entry(name.to_string())
                .or_default()
                .push(req);
        };
        for ((maj, min), cmds, types) in &reg.versions {
            for c in cmds {
                add(&mut m, c, Req::Core(*maj, *min));
            }
            for t in types {
                m.types.insert(reg.resolve(t).to_string());
            }
        }
        for e in &reg.extensions {
            let vendor = e.name.split('_').nth(1).unwrap_or("");
            if e.provisional
                || policy.denied.contains(&e.name)
                || !VENDORS.contains(&vendor)
                || e.platform
                    .as_deref()
                    .is_some_and(|p| !PLATFORMS.contains(&p))
            {
                continue;
            }
            m.extensions.push((e.name.clone(), e.instance));
            for c in &e.commands {
                add(&mut m, c, Req::Ext(e.name.clone()));
            }
            for t in &e.types {
                m.types.insert(reg.resolve(t).to_string());
            }
        }
        // Struct members name further structs (by value or pointer) that a version or extension
        // does not list itself; close the set over them.
        loop {
            let mut more = Vec::new();
            for t in &m.types {
                if let Some(s) = reg.structs.get(t) {
                    for f in &s.members {
                        let r = reg.resolve(&f.ty);
                        if reg.structs.contains_key(r) && !m.types.contains(r) {
                            more.push(r.to_string());
                        }
                    }
                }
            }
            for c in m.cmds.keys() {
                for p in &reg.commands[c].params {
                    let r = reg.resolve(&p.ty);
                    if reg.structs.contains_key(r) && !m.types.contains(r) {
                        more.push(r.to_string());
                    }
                }
            }
            if more.is_empty() {
                break;
            }
            m.types.extend(more);
        }
        m.compute_needs_tr();
        m
    }

    fn structs(&self) -> impl Iterator<Item = &'a Struct> + '_ {
        self.types.iter().filter_map(|t| self.reg.structs.get(t))
    }

    fn hooked(f: &Field) -> Option<&'static str> {
        match (f.name.as_str(), f.ptr) {
            ("queueFamilyIndex" | "srcQueueFamilyIndex" | "dstQueueFamilyIndex", 0) => {
                Some("queue_family")
            }
            ("memoryTypeIndex", 0) => Some("memory_type"),
            ("flags", 0) if f.ty == "VkPipelineCreateFlags" => Some("pipeline_flags"),
            ("pQueueFamilyIndices", 1) => Some("queue_family_array"),
            _ => None,
        }
    }

    /// Whether a member of an input struct must be rewritten per member.
    fn field_needs_tr(&self, f: &Field) -> bool {
        if Self::hooked(f).is_some() {
            return true;
        }
        if self.reg.is_handle(&f.ty).is_some() {
            return f.ptr == 0 || f.is_const;
        }
        let r = self.reg.resolve(&f.ty);
        self.needs_tr.contains(r) && (f.ptr == 0 || f.is_const)
    }

    fn compute_needs_tr(&mut self) {
        let mut extenders: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for s in self.structs() {
            for e in &s.extends {
                extenders
                    .entry(self.reg.resolve(e).to_string())
                    .or_default()
                    .push(s.name.clone());
            }
        }
        let reg = self.reg;
        let all: Vec<&Struct> = self
            .types
            .iter()
            .filter_map(|t| reg.structs.get(t))
            .collect();
        loop {
            let mut changed = false;
            for s in all.iter().copied() {
                if self.needs_tr.contains(&s.name) || s.returned_only {
                    continue;
                }
                let direct = s
                    .members
                    .iter()
                    .any(|f| f.name != "pNext" && self.field_needs_tr(f));
                let chained = s.members.iter().any(|f| f.name == "pNext")
                    && extenders
                        .get(s.name.as_str())
                        .is_some_and(|v| v.iter().any(|e| self.needs_tr.contains(e)));
                let forced = matches!(self.policy.kinds.get(&s.name), Some(Kind::Struct(_)));
                if direct || chained || forced {
                    self.needs_tr.insert(s.name.clone());
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }

    fn level(&self, cmd: &Cmd) -> Level {
        match cmd.params.first().map(|p| p.ty.as_str()) {
            Some("VkInstance") => Level::Instance,
            Some("VkPhysicalDevice") => Level::Physical,
            Some("VkDevice") => Level::Device,
            Some("VkQueue") => Level::Queue,
            Some("VkCommandBuffer") => Level::CommandBuffer,
            _ => Level::Global,
        }
    }

    fn base_ty(&self, ty: &str) -> String {
        match ty {
            "void" => "c_void".into(),
            "char" => "c_char".into(),
            "float" => "f32".into(),
            "double" => "f64".into(),
            "uint8_t" => "u8".into(),
            "uint16_t" => "u16".into(),
            "uint32_t" => "u32".into(),
            "uint64_t" => "u64".into(),
            "int8_t" => "i8".into(),
            "int16_t" => "i16".into(),
            "int32_t" => "i32".into(),
            "int64_t" => "i64".into(),
            "size_t" => "usize".into(),
            "int" => "c_int".into(),
            "Display" | "xcb_connection_t" | "wl_display" | "wl_surface" => "c_void".into(),
            "VisualID" => "c_uint".into(),
            "Window" | "RROutput" => "c_ulong".into(),
            "xcb_window_t" | "xcb_visualid_t" => "u32".into(),
            "PFN_vkVoidFunction" => "vk::PFN_vkVoidFunction".into(),
            t => vk_name(t),
        }
    }

    fn param_ty(&self, f: &Field) -> String {
        let base = self.base_ty(&f.ty);
        if f.ptr == 0 {
            if let Some(n) = &f.array {
                let n = self
                    .reg
                    .constants
                    .get(n)
                    .cloned()
                    .unwrap_or_else(|| n.clone());
                return format!("*const [{base}; {n}]");
            }
            return base;
        }
        let q = if f.is_const { "*const " } else { "*mut " };
        format!("{}{}", q.repeat(f.ptr), base)
    }

    fn ret_ty(&self, cmd: &Cmd) -> Option<String> {
        match cmd.ret.as_str() {
            "void" => None,
            t => Some(self.base_ty(t)),
        }
    }

    fn pfn_sig(&self, cmd: &Cmd) -> String {
        let params: Vec<String> = cmd.params.iter().map(|p| self.param_ty(p)).collect();
        let ret = self
            .ret_ty(cmd)
            .map(|r| format!(" -> {r}"))
            .unwrap_or_default();
        format!("unsafe extern \"system\" fn({}){ret}", params.join(", "))
    }

    fn pfn_name(cmd: &str) -> String {
        format!("Pfn{}", cmd.trim_start_matches("vk"))
    }
}

fn header(reg: &Registry, what: &str) -> String {
    format!(
        "// DO NOT EDIT: generated by codegen from vk.xml {}\n//! {what}\n\n",
        reg.header_version
    )
}

pub fn generate(reg: &Registry, policy: &Policy) -> Result<Vec<(String, String)>, String> {
    let m = Model::new(reg, policy);
    let mut errors = Vec::new();
    for (name, kind) in &policy.kinds {
        let known = match kind {
            Kind::Struct(_) => reg.structs.contains_key(name),
            Kind::When(_) => name.split_once('.').is_some_and(|(st, member)| {
                m.needs_tr.contains(st)
                    && reg.structs[st]
                        .members
                        .iter()
                        .any(|f| f.name == member && reg.is_handle(&f.ty).is_some())
            }),
            _ => m.cmds.contains_key(name),
        };
        if !known {
            errors.push(format!(
                "overrides.txt names {name}, which is not forwarded"
            ));
        }
    }
    for (name, paths) in &policy.writes {
        let Some(cmd) = reg.commands.get(name) else {
            errors.push(format!("overrides.txt: `{name} writes` names no command"));
            continue;
        };
        if !m.cmds.contains_key(name) || !name.starts_with("vkCmd") {
            errors.push(format!(
                "overrides.txt: `{name} writes` needs a forwarded vkCmd* command"
            ));
        }
        for path in paths {
            if write_touch(reg, cmd, path).is_none() {
                errors.push(format!(
                    "overrides.txt: `{name} writes {path}`: not a handle parameter or a handle member of a struct parameter"
                ));
            }
        }
    }
    for name in policy.after.keys() {
        if !m.cmds.contains_key(name) {
            errors.push(format!(
                "overrides.txt: `{name} after` names a command that is not forwarded"
            ));
        } else if matches!(policy.kinds.get(name), Some(Kind::Override(_))) {
            errors.push(format!(
                "overrides.txt: `{name} after`: the command is hand-written; call the hook there"
            ));
        }
    }
    let files = vec![
        ("mod.rs".to_string(), gen_mod(reg)),
        ("dispatch.rs".to_string(), gen_dispatch(&m)),
        ("entry.rs".to_string(), gen_entry(&m, &mut errors)),
        ("translate.rs".to_string(), gen_translate(&m, &mut errors)),
        ("fuse.rs".to_string(), gen_fuse(&m)),
        ("formats.rs".to_string(), gen_formats(reg)),
    ];
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(errors.join("\n"))
    }
}

fn gen_mod(reg: &Registry) -> String {
    let mut s = header(reg, "Code generated from vk.xml; see `codegen/`.");
    s += "#![allow(clippy::all, clippy::pedantic, clippy::undocumented_unsafe_blocks, unused_unsafe, unused_variables, unused_mut, unused_imports, non_camel_case_types, non_snake_case)]\n";
    s += "// Reason for the allow: generated code is checked by review of the generator, not lint by lint.\n\n";
    s += "pub mod dispatch;\npub mod entry;\npub mod formats;\npub mod fuse;\npub mod translate;\n";
    s += &format!("\n/// The registry version the generated code was made from.\npub const HEADER_VERSION: u32 = {};\n", reg.header_version);
    s
}

fn gen_dispatch(m: &Model) -> String {
    let mut s = header(
        m.reg,
        "Function pointer types and per-member dispatch tables.",
    );
    s += "use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr};\nuse ash::vk;\n\n";
    s += "/// `PFN_vkVoidFunction` without the `Option`.\npub type VoidFn = unsafe extern \"system\" fn();\n\n";
    for c in m.cmds.keys() {
        let cmd = &m.reg.commands[c];
        writeln!(s, "pub type {} = {};", Model::pfn_name(c), m.pfn_sig(cmd)).ok();
    }
    for (table, levels) in [
        ("InstanceFns", &[Level::Instance, Level::Physical][..]),
        (
            "DeviceFns",
            &[Level::Device, Level::Queue, Level::CommandBuffer][..],
        ),
    ] {
        let cmds: Vec<&String> = m
            .cmds
            .keys()
            .filter(|c| levels.contains(&m.level(&m.reg.commands[*c])))
            .collect();
        writeln!(s, "\n/// One member's entry points; `None` where the member does not offer one.\n#[derive(Clone, Copy)]\npub struct {table} {{").ok();
        for c in &cmds {
            writeln!(s, "    pub {}: Option<{}>,", fn_name(c), Model::pfn_name(c)).ok();
        }
        s += "}\n\n";
        writeln!(s, "impl {table} {{\n    /// Looks every command up under its own name and then its aliases.\n    ///\n    /// # Safety\n    /// `get` must return pointers of the named command's type.\n    pub unsafe fn load(get: &mut dyn FnMut(&CStr) -> Option<VoidFn>) -> Self {{\n        Self {{").ok();
        for c in &cmds {
            let names: Vec<String> = std::iter::once((*c).clone())
                .chain(m.cmds[*c].keys().filter(|n| n != c).cloned())
                .collect();
            let lookups: Vec<String> = names.iter().map(|n| format!("get(c\"{n}\")")).collect();
            writeln!(
                s,
                "            {}: {}.map(|f| unsafe {{ std::mem::transmute::<VoidFn, {}>(f) }}),",
                fn_name(c),
                lookups.join(".or_else(|| ") + &")".repeat(names.len() - 1),
                Model::pfn_name(c)
            )
            .ok();
        }
        s += "        }\n    }\n}\n";
    }
    s
}

/// How a parameter is translated for one member inside a generated thunk.
fn param_expr(m: &Model, cmd: &Cmd, i: usize) -> String {
    let p = &cmd.params[i];
    let name = snake(&p.name);
    if let Some(h) = Model::hooked(p) {
        if h == "queue_family" {
            return format!("crate::conv::queue_family(&md.maps, {name})");
        }
    }
    let len = |len: &str| -> Option<String> {
        let first = len.split(',').next()?;
        if let Some((a, b)) = first.split_once("->") {
            return Some(format!("(*{}).{} as usize", snake(a), snake(b)));
        }
        cmd.params
            .iter()
            .any(|q| q.name == first)
            .then(|| format!("{} as usize", snake(first)))
    };
    if let Some(disp) = m.reg.is_handle(&p.ty) {
        if p.ptr == 0 {
            return if disp {
                format!("crate::conv::disp({name}, md.index)")
            } else {
                format!("crate::conv::nd({name}, md.index)")
            };
        }
        if p.is_const && p.ptr == 1 {
            if let Some(n) = p.len.as_deref().and_then(len) {
                let f = if disp { "disp_array" } else { "nd_array" };
                return format!("cx.{f}({name}, {n})");
            }
        }
        return name;
    }
    let r = m.reg.resolve(&p.ty);
    if m.needs_tr.contains(r) && p.is_const && p.ptr == 1 {
        let fix = format!("fix_{}", snake(r.trim_start_matches("Vk")));
        return match p.len.as_deref().and_then(len) {
            Some(n) => format!("cx.array({name}, {n}, tr::{fix})"),
            None => format!("cx.one({name}, tr::{fix})"),
        };
    }
    name
}

fn gen_entry(m: &Model, errors: &mut Vec<String>) -> String {
    let mut s = header(
        m.reg,
        "Entry points: forwarding thunks and the name → entry point table.",
    );
    s += "use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr};\nuse ash::vk;\nuse ash::vk::Handle as _;\n\n";
    s += "use super::dispatch::*;\nuse super::translate as tr;\nuse crate::arena::Arena;\nuse crate::guard::{self, missing};\nuse crate::object::{CommandBuffer, Device, Instance, ObjectBase, PhysicalDevice, Queue};\n\n";
    let mut table = Vec::new();
    for (c, names) in &m.cmds {
        let cmd = &m.reg.commands[c];
        let level = m.level(cmd);
        let kind = m.policy.kinds.get(c);
        let path = match kind {
            Some(Kind::Override(p)) => format!("crate::{p}"),
            _ => {
                match gen_thunk(m, cmd, level, kind) {
                    Ok(t) => s += &t,
                    Err(e) => errors.push(format!("{c}: {e}")),
                }
                fn_name(c)
            }
        };
        for (name, reqs) in names {
            table.push((name.clone(), path.clone(), c.clone(), level, reqs.clone()));
        }
    }
    table.sort_by(|a, b| a.0.cmp(&b.0));
    s += "\n/// Where a command may be dispatched from.\n#[derive(Clone, Copy, Debug, PartialEq, Eq)]\npub enum Level { Global, Instance, PhysicalDevice, Device }\n\n";
    s += "/// What makes a command available: a core version or an extension.\n#[derive(Clone, Copy, Debug)]\npub enum Req { Core(u32), Ext(&'static str) }\n\n";
    s += "/// One exposed name of a command.\npub struct Entry {\n    pub name: &'static CStr,\n    pub pfn: VoidFn,\n    pub level: Level,\n    pub reqs: &'static [Req],\n    /// Hand-written (listed in codegen/overrides.txt) rather than generated forwarding.\n    pub hand_written: bool,\n}\n\n";
    s += "/// Every command vkfuse exposes, sorted by name.\npub static ENTRIES: &[Entry] = &[\n";
    for (name, path, canon, level, reqs) in &table {
        let lvl = match level {
            Level::Global => "Global",
            Level::Instance => "Instance",
            Level::Physical => "PhysicalDevice",
            _ => "Device",
        };
        let reqs: Vec<String> = reqs
            .iter()
            .map(|r| match r {
                Req::Core(a, b) => format!("Req::Core(vk::make_api_version(0, {a}, {b}, 0))"),
                Req::Ext(e) => format!("Req::Ext(\"{e}\")"),
            })
            .collect();
        let hand = matches!(m.policy.kinds.get(canon), Some(Kind::Override(_)));
        writeln!(
            s,
            "    Entry {{ name: c\"{name}\", pfn: unsafe {{ std::mem::transmute::<{}, VoidFn>({path}) }}, level: Level::{lvl}, reqs: &[{}], hand_written: {hand} }},",
            Model::pfn_name(canon),
            reqs.join(", ")
        )
        .ok();
    }
    s += "];\n\n/// Extensions vkfuse forwards: (name, is an instance extension).\npub static FORWARDED_EXTENSIONS: &[(&str, bool)] = &[\n";
    for (e, inst) in &m.extensions {
        writeln!(s, "    (\"{e}\", {inst}),").ok();
    }
    s += "];\n\n/// Looks up an exposed command by name.\npub fn lookup(name: &CStr) -> Option<&'static Entry> {\n    ENTRIES.binary_search_by(|e| e.name.cmp(name)).ok().map(|i| &ENTRIES[i])\n}\n";
    s
}

/// The statement that touches, as written, what `path` (a `writes` path of overrides.txt)
/// names in a recorded `cmd`: a scalar handle parameter, or a handle member of a struct that
/// a parameter points to. `None` when `path` names neither.
fn write_touch(reg: &Registry, cmd: &Cmd, path: &str) -> Option<String> {
    let (param, member) = match path.split_once('.') {
        Some((p, m)) => (p, Some(m)),
        None => (path, None),
    };
    let p = cmd.params[1..].iter().find(|p| p.name == param)?;
    match member {
        None => (p.ptr == 0 && reg.is_handle(&p.ty) == Some(false))
            .then(|| format!("crate::access::touch(obj, {}.as_raw());", snake(param))),
        Some(member) => {
            let st = reg.structs.get(reg.resolve(&p.ty))?;
            let f = st.members.iter().find(|f| f.name == member)?;
            (p.ptr == 1 && f.ptr == 0 && reg.is_handle(&f.ty) == Some(false)).then(|| {
                let p = snake(param);
                format!(
                    "if !{p}.is_null() {{ crate::access::touch(obj, unsafe {{ (*{p}).{} }}.as_raw()); }}",
                    snake(member)
                )
            })
        }
    }
}

fn gen_thunk(m: &Model, cmd: &Cmd, level: Level, kind: Option<&Kind>) -> Result<String, String> {
    let reg = m.reg;
    let primary = matches!(kind, Some(Kind::Primary));
    let executed = match kind {
        Some(Kind::Executed(p)) => {
            if level != Level::Device || !cmd.params.iter().any(|f| snake(&f.name) == snake(p)) {
                return Err(format!(
                    "`executed {p}` needs a device command with parameter {p}"
                ));
            }
            Some(format!("owner.executed_iter({}.as_raw())", snake(p)))
        }
        _ => None,
    };
    let note = match kind {
        Some(Kind::Note(n)) => {
            let param = |name: &str| cmd.params.iter().find(|f| snake(&f.name) == snake(name));
            let (Some(obj), true) = (param(&n.object), level == Level::CommandBuffer) else {
                return Err(format!(
                    "`note {}` needs a vkCmd command with that parameter",
                    n.object
                ));
            };
            for extra in n.first.iter().chain(&n.count) {
                if param(extra).is_none() {
                    return Err(format!("`note`: no parameter {extra}"));
                }
            }
            let o = snake(&n.object);
            let read = n.read;
            let write_too = n.write_too;
            if obj.ptr > 0 {
                // An array of handles, its length in the next word.
                let len = snake(
                    n.first
                        .as_deref()
                        .ok_or("`note` of an array needs its length")?,
                );
                let kind = if read {
                    "crate::exec::NoteKind::Read"
                } else {
                    "crate::exec::NoteKind::Write"
                };
                format!("if !{o}.is_null() {{ for i in 0..{len} as usize {{ crate::exec::note(obj, unsafe {{ *{o}.add(i) }}.as_raw(), 0, 0, {kind}); }} }}\n")
            } else {
                let first = n.first.as_deref().map_or("0".to_string(), snake);
                let count = match (&n.first, &n.count) {
                    (Some(_), Some(c)) => snake(c),
                    (Some(_), None) => "1".to_string(),
                    _ => "0".to_string(),
                };
                let kind = match (read, write_too) {
                    (true, true) => "crate::exec::NoteKind::NeedsReset",
                    (true, false) => "crate::exec::NoteKind::Read",
                    _ => "crate::exec::NoteKind::Write",
                };
                let mut s =
                    format!("crate::exec::note(obj, {o}.as_raw(), {first}, {count}, {kind});\n");
                if write_too {
                    s += &format!(
                        "crate::exec::note(obj, {o}.as_raw(), {first}, {count}, crate::exec::NoteKind::Write);\n"
                    );
                }
                s
            }
        }
        _ => String::new(),
    };
    // Recorded commands collect the objects they name (scalar handles here, arrays and structs
    // through the recording `Cx` of the first target) for the command buffer's access set: as
    // written, or, for a command with a `writes` line, as read except what the line names.
    let writes = m.policy.writes.get(&cmd.name);
    let touch_fn = if writes.is_some() {
        "crate::access::touch_read"
    } else {
        "crate::access::touch"
    };
    let own_touches = m.policy.touches.get(&cmd.name);
    if own_touches.is_some() && (level != Level::CommandBuffer || writes.is_some()) {
        return Err(format!(
            "`touches` for {} needs a recorded (vkCmd*) command without a `writes` line",
            cmd.name
        ));
    }
    let touches = if let Some(path) = own_touches {
        let args: Vec<String> = cmd.params[1..].iter().map(|p| snake(&p.name)).collect();
        format!(
            "if obj.collects() {{ unsafe {{ crate::{path}(obj, {}) }}; }}\n",
            args.join(", ")
        )
    } else if level == Level::CommandBuffer {
        let mut scalars: Vec<String> = cmd.params[1..]
            .iter()
            .filter(|p| p.ptr == 0 && reg.is_handle(&p.ty) == Some(false))
            .filter(|p| !writes.is_some_and(|w| w.contains(&p.name)))
            .map(|p| format!("{touch_fn}(obj, {}.as_raw());", snake(&p.name)))
            .collect();
        for path in writes.into_iter().flatten() {
            scalars.extend(write_touch(reg, cmd, path));
        }
        if scalars.is_empty() {
            String::new()
        } else {
            format!("if obj.collects() {{ {} }}\n", scalars.join(" "))
        }
    } else {
        String::new()
    };
    // `after` hooks: device commands hand them the device, recorded commands the command
    // buffer (only when it collects: single-member recording pays nothing).
    let mut hooks = String::new();
    for path in m.policy.after.get(&cmd.name).into_iter().flatten() {
        let args: Vec<String> = cmd.params[1..].iter().map(|p| snake(&p.name)).collect();
        let args = args.join(", ");
        match level {
            Level::Device => {
                writeln!(hooks, "unsafe {{ crate::{path}(owner, {args}) }};").ok();
            }
            Level::CommandBuffer => {
                writeln!(
                    hooks,
                    "if obj.collects() {{ unsafe {{ crate::{path}(obj, {args}) }}; }}"
                )
                .ok();
            }
            _ => {
                return Err(format!(
                    "`after {path}` needs a device command or a recorded (vkCmd*) command"
                ))
            }
        }
    }
    let fname = fn_name(&cmd.name);
    let params: Vec<String> = cmd
        .params
        .iter()
        .map(|p| format!("{}: {}", snake(&p.name), m.param_ty(p)))
        .collect();
    let ret = m.ret_ty(cmd);
    let ret_sig = ret.as_ref().map(|r| format!(" -> {r}")).unwrap_or_default();
    let first = snake(&cmd.params[0].name);
    let last = cmd.params.last().ok_or("no parameters")?;
    // Output parameters: writable pointers.
    let outputs: Vec<&Field> = cmd
        .params
        .iter()
        .filter(|p| p.ptr > 0 && !p.is_const)
        .collect();
    for o in &outputs {
        let r = reg.resolve(&o.ty);
        if reg.is_handle(r).is_some() && o.name != last.name {
            return Err("returns a handle; needs an override".into());
        }
        if let Some(st) = reg.structs.get(r) {
            if st.members.iter().any(|f| reg.is_handle(&f.ty).is_some()) {
                return Err("returns a struct holding handles; needs an override".into());
            }
        }
    }
    let is_create = (cmd.name.starts_with("vkCreate") || cmd.name.starts_with("vkAllocate"))
        && last.ptr == 1
        && !last.is_const
        && reg.is_handle(&last.ty) == Some(false);
    if !is_create && reg.is_handle(&last.ty).is_some() && last.ptr == 1 && !last.is_const {
        return Err("returns a handle; needs an override".into());
    }
    let is_destroy = (cmd.name.starts_with("vkDestroy") || cmd.name.starts_with("vkFree"))
        && cmd.params.len() == 3
        && reg.is_handle(&cmd.params[1].ty) == Some(false)
        && cmd.params[1].ptr == 0
        && cmd.params[2].ty == "VkAllocationCallbacks";
    let result = ret.as_deref() == Some("vk::Result");
    let guard = match ret.as_deref() {
        None => "guard::void",
        Some("vk::Result") => "guard::result",
        Some(_) => "guard::value",
    };
    let mut body = String::new();
    // Which members to call, and how to get a member's handle of the dispatchable object.
    let (resolve, members, own) = match level {
        Level::Instance => (
            format!("let owner = unsafe {{ Instance::resolve({first}) }}?;"),
            "owner.members.iter()",
            "md.handle".to_string(),
        ),
        Level::Physical => (
            format!("let owner = unsafe {{ PhysicalDevice::resolve({first}) }}?;"),
            "owner.primary_iter()",
            "md.handle".to_string(),
        ),
        Level::Device => (
            format!("let owner = unsafe {{ Device::resolve({first}) }}?;"),
            "owner.members.iter()",
            "md.handle".to_string(),
        ),
        Level::Queue => (
            format!("let (obj, owner) = unsafe {{ Queue::resolve({first}) }}?;"),
            "owner.primary_iter()",
            "obj.handles[md.index]".to_string(),
        ),
        Level::CommandBuffer => (
            format!("let obj = unsafe {{ CommandBuffer::resolve_targets({first}) }}?;"),
            "obj.targets().iter()",
            "t.handle".to_string(),
        ),
        Level::Global => return Err("global command without an override".into()),
    };
    let executed_members = executed.unwrap_or_default();
    let members = if !executed_members.is_empty() {
        executed_members.as_str()
    } else if (primary || !outputs.is_empty() || (ret.is_some() && !result))
        && matches!(level, Level::Instance | Level::Device)
    {
        "owner.primary_iter()"
    } else if (primary || !outputs.is_empty() || (ret.is_some() && !result))
        && level == Level::CommandBuffer
    {
        "obj.targets().iter().take(1)"
    } else {
        members
    };
    // The loop binding: `md` is the member; command buffers iterate their recording targets.
    let (var, bind) = if level == Level::CommandBuffer {
        ("t", "let md = t.member();\n")
    } else {
        ("md", "")
    };
    let needs_arena = (1..cmd.params.len()).any(|i| param_expr(m, cmd, i).contains("cx."));
    body += &resolve;
    body += "\n";
    body += &note;
    body += &touches;
    if needs_arena || is_create {
        body += "let arena = Arena::scope();\n";
    }
    if needs_arena && level == Level::CommandBuffer {
        if own_touches.is_some() {
            // The hand-written touches named everything already.
            body += "let mut rec: Option<&dyn Fn(u64)> = None;\n";
        } else {
            body += &format!("let touch = |raw: u64| {touch_fn}(obj, raw);\nlet mut rec = obj.collects().then_some(&touch as &dyn Fn(u64));\n");
        }
    }
    let f = fn_name(&cmd.name);
    let args = |skip_last: bool| -> String {
        let n = if skip_last {
            cmd.params.len() - 1
        } else {
            cmd.params.len()
        };
        let mut a = vec![own.clone()];
        for i in 1..n {
            a.push(param_expr(m, cmd, i));
        }
        a.join(", ")
    };
    let cx = if needs_arena && level == Level::CommandBuffer {
        "let cx = md.cx(&arena).recording(rec.take());\n"
    } else if needs_arena || is_create {
        "let cx = md.cx(&arena);\n"
    } else {
        ""
    };
    if is_create {
        let h = vk_name(reg.resolve(&last.ty));
        let obj_ty = reg
            .resolve(&last.ty)
            .trim_start_matches("Vk")
            .to_shouty_snake_case();
        let destroy = reg
            .commands
            .values()
            .find(|d| {
                (d.name.starts_with("vkDestroy") || d.name.starts_with("vkFree"))
                    && d.params.len() == 3
                    && reg.resolve(&d.params[1].ty) == reg.resolve(&last.ty)
                    && m.cmds.contains_key(&d.name)
            })
            .map(|d| fn_name(&d.name))
            .ok_or("no destroy command for the created handle")?;
        let alloc = if cmd.params.iter().any(|p| p.ty == "VkAllocationCallbacks") {
            "p_allocator"
        } else {
            "std::ptr::null()"
        };
        let out = snake(&last.name);
        let undo = format!(
            "let undo = |handles: &[u64]| {{ for md in {members_all} {{ let raw = handles[md.index]; if raw != 0 {{ if let Some(d) = md.fns.{destroy} {{ unsafe {{ d(md.handle, {h}::from_raw(raw), {alloc}) }} }} }} }} }};\n",
            members_all = "owner.members.iter()"
        );
        if let Some(len) = &last.len {
            let n = if let Some((a, b)) = len.split_once("->") {
                format!("(*{}).{} as usize", snake(a), snake(b))
            } else {
                format!("{} as usize", snake(len))
            };
            body += &format!("let n = {n};\nlet mut per: Vec<Vec<u64>> = vec![vec![0; crate::MAX_MEMBERS]; n];\nlet mut res = vk::Result::SUCCESS;\nlet mut first = true;\n");
            body += &undo;
            body += &format!(
                "for md in owner.members.iter() {{\n{cx}let Some(f) = md.fns.{f} else {{ for h in &per {{ undo(h); }} return Err(missing(\"{name}\")); }};\nlet mut out = vec![{h}::null(); n];\nlet r = unsafe {{ f({args}, out.as_mut_ptr()) }};\nif r.as_raw() < 0 {{ for h in &per {{ undo(h); }} return Err(r); }}\nif first {{ res = r; first = false; }}\nfor (i, o) in out.iter().enumerate() {{ per[i][md.index] = o.as_raw(); }}\n}}\n",
                args = args(true),
                name = cmd.name
            );
            body += &format!(
                "for (i, handles) in per.iter().enumerate() {{\nlet complete = owner.members.iter().all(|md| handles[md.index] != 0);\nlet out = if complete {{ let mut o = ObjectBase::new(vk::ObjectType::{obj_ty}); o.handles[..handles.len()].copy_from_slice(handles); {h}::from_raw(o.into_raw()) }} else {{ undo(handles); {h}::null() }};\nunsafe {{ *{out}.add(i) = out }};\n}}\nOk(res)\n"
            );
        } else {
            body += &format!("let mut obj = ObjectBase::new(vk::ObjectType::{obj_ty});\nlet mut res = vk::Result::SUCCESS;\nlet mut first = true;\n");
            body += &undo;
            body += &format!(
                "for md in owner.members.iter() {{\n{cx}let Some(f) = md.fns.{f} else {{ undo(&obj.handles); return Err(missing(\"{name}\")); }};\nlet mut out = {h}::null();\nlet r = unsafe {{ f({args}, &mut out) }};\nif r.as_raw() < 0 {{ undo(&obj.handles); return Err(r); }}\nif first {{ res = r; first = false; }}\nobj.handles[md.index] = out.as_raw();\n}}\nunsafe {{ *{out} = {h}::from_raw(obj.into_raw()) }};\nOk(res)\n",
                args = args(true),
                name = cmd.name
            );
        }
    } else if is_destroy {
        let h = snake(&cmd.params[1].name);
        let hty = vk_name(reg.resolve(&cmd.params[1].ty));
        body += &format!(
            "if {h}.is_null() {{ return Ok(()); }}\nlet obj = unsafe {{ ObjectBase::get({h}.as_raw()) }}?;\nfor md in owner.members.iter() {{\nlet raw = obj.handles[md.index];\nif raw == 0 {{ continue; }}\nlet Some(f) = md.fns.{f} else {{ return Err(missing(\"{name}\")); }};\nunsafe {{ f({own}, {hty}::from_raw(raw), {a}) }};\n}}\nunsafe {{ ObjectBase::free({h}.as_raw()) }};\nOk(())\n",
            name = cmd.name,
            a = snake(&cmd.params[2].name)
        );
    } else {
        let call = format!("unsafe {{ f({}) }}", args(false));
        let missing_ret = format!("return Err(missing(\"{}\"));", cmd.name);
        match ret.as_deref() {
            None => {
                body += &format!("for {var} in {members} {{\n{bind}{cx}let Some(f) = md.fns.{f} else {{ {missing_ret} }};\n{call};\n}}\nOk(())\n");
            }
            Some("vk::Result") => {
                body += &format!("let mut res = vk::Result::SUCCESS;\nlet mut first = true;\nfor {var} in {members} {{\n{bind}{cx}let Some(f) = md.fns.{f} else {{ {missing_ret} }};\nlet r = {call};\nif r.as_raw() < 0 {{ return Err(r); }}\nif first {{ res = r; first = false; }}\n}}\nOk(res)\n");
            }
            Some(_) => {
                body += &format!("let Some({var}) = {members}.next() else {{ return Err(vk::Result::ERROR_INITIALIZATION_FAILED); }};\n{bind}{cx}let Some(f) = md.fns.{f} else {{ {missing_ret} }};\nOk({call})\n");
            }
        }
    }
    let _ = result;
    if !hooks.is_empty() {
        let (at, what) = if is_destroy {
            // Before the object is freed: its handle value cannot be reused yet.
            (body.rfind("unsafe { ObjectBase::free("), "the free")
        } else {
            (
                ["Ok(res)\n", "Ok(())\n"].iter().find_map(|e| body.rfind(e)),
                "an end",
            )
        };
        let at = at.ok_or(format!("`after`: no {what} to hook"))?;
        body.insert_str(at, &hooks);
    }
    // Recording fast path for void command-buffer commands whose arguments translate without
    // the arena: only the handle cast runs under the panic guard. Member entry points are C code,
    // which cannot unwind into Rust, and scalar handle translation cannot panic; so nothing after
    // the guard can panic, and a single member gets a tail call.
    // Recorded commands' hooks run only when the command buffer collects (several targets),
    // so they go with the several-target path and leave the single-target one as it is.
    if level == Level::CommandBuffer
        && ret.is_none()
        && !needs_arena
        && !is_create
        && !is_destroy
        && members == "obj.targets().iter()"
    {
        let call = format!("unsafe {{ f({}) }}", args(false));
        let name = &cmd.name;
        // Access-set collection and hooks are Rust code that could panic: under the guard.
        let guarded = |code: &str| {
            if code.is_empty() {
                String::new()
            } else {
                format!("let _ = guard::catch(\"{name}\", || {{\n{code}Ok::<(), vk::Result>(())\n}});\n")
            }
        };
        let (touches, hooks) = (guarded(&touches), guarded(&hooks));
        let rest: Vec<String> = cmd.params[1..]
            .iter()
            .map(|p| format!("{}: {}", snake(&p.name), m.param_ty(p)))
            .collect();
        let rest_names: Vec<String> = cmd.params[1..].iter().map(|p| snake(&p.name)).collect();
        let missing =
            format!("let Some(f) = md.fns.{f} else {{ let _ = missing(\"{name}\"); return; }};");
        return Ok(format!(
            "/// Forwards `{name}` to every recording target.\n///\n/// # Safety\n/// Called by the loader or application with arguments valid for `{name}`.\npub unsafe extern \"system\" fn {fname}({params}) {{\n/// Several targets: kept out of line, with the arguments in the same registers, so that the\n/// single-target path needs no stack frame.\n#[inline(never)]\nunsafe fn each(obj: &CommandBuffer, {rest}) {{\n{touches}for t in obj.targets() {{\nlet md = t.member();\n{missing}\n{call};\n}}\n{hooks}}}\nlet Some(obj) = guard::catch(\"{name}\", || unsafe {{ CommandBuffer::resolve_targets({first}) }}) else {{ return; }};\n{note}if obj.target_count == 1 {{\nlet t = &obj.targets[0];\nlet md = t.member();\n{missing}\nreturn {call};\n}}\nunsafe {{ each(obj, {rest_names}) }}\n}}\n\n",
            params = params.join(", "),
            rest = rest.join(", "),
            rest_names = rest_names.join(", "),
        ));
    }
    Ok(format!(
        "/// Forwards `{name}`.\n///\n/// # Safety\n/// Called by the loader or application with arguments valid for `{name}`.\npub unsafe extern \"system\" fn {fname}({params}){ret_sig} {{\n{guard}(\"{name}\", || {{\n{body}}})\n}}\n\n",
        name = cmd.name,
        params = params.join(", ")
    ))
}

fn gen_translate(m: &Model, errors: &mut Vec<String>) -> String {
    let reg = m.reg;
    let mut s = header(
        reg,
        "Per-member translation of structs that hold handles or per-member indices.",
    );
    s += "use std::ffi::c_void;\nuse ash::vk;\n\nuse crate::conv::Cx;\n\n";
    let mut chain_arms = String::new();
    for st in m.structs() {
        let snake_name = snake(st.name.trim_start_matches("Vk"));
        let ty = vk_name(&st.name);
        if let Some(st_val) = &st.s_type {
            if !st.extends.is_empty() {
                let fix = if m.needs_tr.contains(&st.name) {
                    format!("Some((|cx: &Cx, p: *mut c_void| unsafe {{ fix_{snake_name}(cx, p.cast()) }}) as ChainFix)")
                } else {
                    "None".into()
                };
                let variant = st_val.trim_start_matches("VK_STRUCTURE_TYPE_");
                writeln!(
                    chain_arms,
                    "vk::StructureType::{variant} => (std::mem::size_of::<{ty}>(), {fix}),"
                )
                .ok();
            }
        }
        if !m.needs_tr.contains(&st.name) {
            continue;
        }
        if let Some(Kind::Struct(path)) = m.policy.kinds.get(&st.name) {
            writeln!(s, "pub use crate::{path} as fix_{snake_name};\n").ok();
            continue;
        }
        if st.is_union {
            errors.push(format!(
                "{}: a union holding handles cannot be translated",
                st.name
            ));
            continue;
        }
        let mut body = String::new();
        for f in &st.members {
            let field = snake(&f.name);
            if f.name == "pNext" {
                writeln!(body, "d.p_next = unsafe {{ chain(cx, d.p_next) }} as _;").ok();
                continue;
            }
            if st.name == "VkBufferCreateInfo" && f.name == "usage" {
                // Indirect buffers are copied from where dispatches split (`narrow.rs`).
                writeln!(body, "d.{field} = cx.buffer_usage(d.{field});").ok();
                continue;
            }
            if st.name == "VkShaderModuleCreateInfo" && f.name == "pCode" {
                // Modules of pipelines that run slices are marked (`Cx::shader_code`).
                writeln!(
                    body,
                    "(d.code_size, d.{field}) = cx.shader_code(d.code_size, d.{field});"
                )
                .ok();
                continue;
            }
            if !m.field_needs_tr(f) {
                continue;
            }
            let len = || -> Result<String, String> {
                let l = f.len.as_deref().ok_or("no length")?;
                let l = l.split(',').next().unwrap_or("");
                if st.members.iter().any(|x| x.name == l) {
                    Ok(format!("d.{} as usize", snake(l)))
                } else if l == "1" {
                    Ok("1".into())
                } else {
                    Err(format!("length `{l}`"))
                }
            };
            if f.array.is_some() {
                errors.push(format!(
                    "{}.{}: fixed array needs translation",
                    st.name, f.name
                ));
                continue;
            }
            let line = if let Some(h) = Model::hooked(f) {
                if h == "queue_family_array" {
                    match len() {
                        Ok(n) => format!("d.{field} = cx.queue_family_array(d.{field}, {n});"),
                        Err(e) => {
                            errors.push(format!("{}.{}: {e}", st.name, f.name));
                            continue;
                        }
                    }
                } else if h == "pipeline_flags" && st.name == "VkComputePipelineCreateInfo" {
                    // Compute pipelines may run slices of dispatches (`split.rs`).
                    format!("d.{field} = cx.compute_pipeline_flags(d.{field});")
                } else {
                    format!("d.{field} = cx.{h}(d.{field});")
                }
            } else if let Some(disp) = reg.is_handle(&f.ty) {
                let (one, arr) = if disp {
                    ("disp", "disp_array")
                } else {
                    ("nd", "nd_array")
                };
                let (value, ignored) = if f.ptr == 0 {
                    (format!("cx.{one}(d.{field})"), "Default::default()")
                } else {
                    match len() {
                        Ok(n) => (format!("cx.{arr}(d.{field}, {n})"), "std::ptr::null()"),
                        Err(e) => {
                            errors.push(format!("{}.{}: {e}", st.name, f.name));
                            continue;
                        }
                    }
                };
                match m.policy.kinds.get(&format!("{}.{}", st.name, f.name)) {
                    Some(Kind::When(cond)) => {
                        format!("d.{field} = if {cond} {{ {value} }} else {{ {ignored} }};")
                    }
                    _ => format!("d.{field} = {value};"),
                }
            } else {
                let inner = snake(reg.resolve(&f.ty).trim_start_matches("Vk"));
                if f.ptr == 0 {
                    format!("unsafe {{ fix_{inner}(cx, &mut d.{field}) }};")
                } else if f.len.is_none() {
                    format!("d.{field} = cx.one(d.{field}, fix_{inner});")
                } else {
                    match len() {
                        Ok(n) => format!("d.{field} = cx.array(d.{field}, {n}, fix_{inner});"),
                        Err(e) => {
                            errors.push(format!("{}.{}: {e}", st.name, f.name));
                            continue;
                        }
                    }
                }
            };
            body += &line;
            body += "\n";
        }
        writeln!(
            s,
            "/// Rewrites a copy of `{name}` for the member of `cx`.\n///\n/// # Safety\n/// `d` points to a writable copy of a valid `{name}`.\npub unsafe fn fix_{snake_name}(cx: &Cx, d: *mut {ty}) {{\nlet d = unsafe {{ &mut *d }};\n{body}}}\n",
            name = st.name
        )
        .ok();
    }
    s += "/// How to copy and rewrite one pNext node: its size and its rewrite function.\npub type ChainFix = unsafe fn(&Cx, *mut c_void);\n\n";
    s += "/// Size and rewrite function of every extension struct vkfuse knows.\npub fn chain_info(s_type: vk::StructureType) -> Option<(usize, Option<ChainFix>)> {\n    Some(match s_type {\n";
    s += &chain_arms;
    s += "        _ => return None,\n    })\n}\n\n";
    s += "/// Copies a pNext chain into the arena and rewrites every node for the member of `cx`.\n///\n/// # Safety\n/// `p` is null or a valid pNext chain.\npub unsafe fn chain(cx: &Cx, p: *const c_void) -> *const c_void {\n    unsafe { cx.chain(p, chain_info) }\n}\n";
    s
}

fn gen_fuse(m: &Model) -> String {
    let reg = m.reg;
    let mut s = header(
        reg,
        "Fusion of limits (by `limittype`) and tables of feature and property structs.",
    );
    s += "use std::ffi::c_void;\nuse ash::vk;\n\n/// A limit where a member other than the first was the more restrictive, or differed where it must be exact.\n#[derive(Clone, Debug)]\npub struct Limited {\n    pub what: &'static str,\n    pub member: usize,\n    /// The fused value (or, for `exact` limits, the member's differing value).\n    pub value: String,\n}\n\n";
    let mut fused = BTreeSet::new();
    let mut prop_arms = String::new();
    let mut fns = String::new();
    let prop_ext: Vec<&Struct> = m
        .structs()
        .filter(|st| {
            st.extends
                .iter()
                .any(|e| e == "VkPhysicalDeviceProperties2")
        })
        .collect();
    let mut todo: Vec<&Struct> = prop_ext.clone();
    for base in [
        "VkPhysicalDeviceProperties",
        "VkPhysicalDeviceLimits",
        "VkPhysicalDeviceSparseProperties",
    ] {
        if let Some(st) = reg.structs.get(base) {
            todo.push(st);
        }
    }
    for st in todo {
        if !st.members.iter().any(|f| f.limittype.is_some()) || !fused.insert(st.name.clone()) {
            continue;
        }
        let sn = snake(st.name.trim_start_matches("Vk"));
        let ty = vk_name(&st.name);
        let mut body = String::new();
        for f in &st.members {
            let Some(lt) = f.limittype.as_deref() else {
                continue;
            };
            let kind = lt.split(',').next().unwrap_or("");
            let field = snake(&f.name);
            let what = format!("{}.{}", st.name.trim_start_matches("Vk"), f.name);
            let t = m.base_ty(&f.ty);
            let num = matches!(
                t.as_str(),
                "u32" | "u64" | "i32" | "f32" | "usize" | "vk::DeviceSize" | "u8" | "u16"
            );
            let boolean = t == "vk::Bool32";
            let cmp = |take_min: bool, a: &str, b: &str| -> String {
                if boolean {
                    let op = if take_min { "&" } else { "|" };
                    format!("{{ let v = {a} {op} {b}; if v != {a} {{ lim.push(Limited {{ what: \"{what}\", member, value: format!(\"{{:?}}\", v) }}); }} {a} = v; }}\n")
                } else {
                    let op = if take_min { "<" } else { ">" };
                    format!("if {b} {op} {a} {{ {a} = {b}; lim.push(Limited {{ what: \"{what}\", member, value: format!(\"{{:?}}\", {b}) }}); }}\n")
                }
            };
            let line = match kind {
                "max" | "bits" if num || boolean => match &f.array {
                    Some(n) => {
                        let n = reg.constants.get(n).cloned().unwrap_or_else(|| n.clone());
                        (0..n.parse::<usize>().unwrap_or(0))
                            .map(|i| {
                                cmp(true, &format!("a.{field}[{i}]"), &format!("b.{field}[{i}]"))
                            })
                            .collect()
                    }
                    None => cmp(true, &format!("a.{field}"), &format!("b.{field}")),
                },
                "max" if f.ty == "VkExtent2D" => {
                    cmp(
                        true,
                        &format!("a.{field}.width"),
                        &format!("b.{field}.width"),
                    ) + &cmp(
                        true,
                        &format!("a.{field}.height"),
                        &format!("b.{field}.height"),
                    )
                }
                "min" if num || boolean => match &f.array {
                    Some(n) => {
                        let n = reg.constants.get(n).cloned().unwrap_or_else(|| n.clone());
                        (0..n.parse::<usize>().unwrap_or(0))
                            .map(|i| {
                                cmp(
                                    false,
                                    &format!("a.{field}[{i}]"),
                                    &format!("b.{field}[{i}]"),
                                )
                            })
                            .collect()
                    }
                    None => cmp(false, &format!("a.{field}"), &format!("b.{field}")),
                },
                "min" if f.ty == "VkExtent2D" => {
                    cmp(
                        false,
                        &format!("a.{field}.width"),
                        &format!("b.{field}.width"),
                    ) + &cmp(
                        false,
                        &format!("a.{field}.height"),
                        &format!("b.{field}.height"),
                    )
                }
                "bitmask" if boolean => cmp(true, &format!("a.{field}"), &format!("b.{field}")),
                "bitmask"
                    if reg.bitmasks.contains(reg.resolve(&f.ty)) || f.ty.contains("FlagBits") =>
                {
                    format!("{{ let v = a.{field} & b.{field}; if v != a.{field} {{ lim.push(Limited {{ what: \"{what}\", member, value: format!(\"{{v:?}}\") }}); }} a.{field} = v; }}\n")
                }
                "range" if f.array.is_some() => {
                    cmp(false, &format!("a.{field}[0]"), &format!("b.{field}[0]"))
                        + &cmp(true, &format!("a.{field}[1]"), &format!("b.{field}[1]"))
                }
                "exact"
                    if f.array.is_none()
                        && (num || boolean || reg.enums.contains(reg.resolve(&f.ty))) =>
                {
                    format!("if a.{field} != b.{field} {{ lim.push(Limited {{ what: \"{what} (differs; the first member's value is kept)\", member, value: format!(\"{{:?}}\", b.{field}) }}); }}\n")
                }
                "struct" => {
                    let inner = snake(reg.resolve(&f.ty).trim_start_matches("Vk"));
                    format!("fuse_{inner}(&mut a.{field}, &b.{field}, member, lim);\n")
                }
                _ => continue,
            };
            body += &line;
        }
        writeln!(fns, "/// Fuses `{name}` of member `member` into `a` by the registry's `limittype`.\npub fn fuse_{sn}(a: &mut {ty}, b: &{ty}, member: usize, lim: &mut Vec<Limited>) {{\n{body}}}\n", name = st.name).ok();
        if let Some(v) = &st.s_type {
            if prop_ext.iter().any(|p| p.name == st.name) {
                let variant = v.trim_start_matches("VK_STRUCTURE_TYPE_");
                writeln!(prop_arms, "vk::StructureType::{variant} => fuse_{sn}(unsafe {{ &mut *a.cast() }}, unsafe {{ &*b.cast() }}, member, lim),").ok();
            }
        }
    }
    s += &fns;
    s += "/// Fuses one node of a properties chain; returns false for structs without limits.\n///\n/// # Safety\n/// `a` and `b` point to structs of type `s_type`.\npub unsafe fn fuse_properties_node(s_type: vk::StructureType, a: *mut c_void, b: *const c_void, member: usize, lim: &mut Vec<Limited>) -> bool {\n    match s_type {\n";
    s += &prop_arms;
    s += "        _ => return false,\n    }\n    true\n}\n\n";
    // Feature structs: sType, pNext, then only VkBool32 members.
    s += "/// A struct extending `VkPhysicalDeviceFeatures2` that holds only `VkBool32` members.\npub struct FeatureStruct {\n    pub name: &'static str,\n    pub s_type: vk::StructureType,\n    pub size: usize,\n    pub bools: usize,\n}\n\n/// Every feature struct vkfuse forwards.\npub static FEATURE_STRUCTS: &[FeatureStruct] = &[\n";
    for st in m.structs() {
        if !st.extends.iter().any(|e| e == "VkPhysicalDeviceFeatures2") {
            continue;
        }
        let rest: Vec<&Field> = st
            .members
            .iter()
            .filter(|f| f.name != "sType" && f.name != "pNext")
            .collect();
        if rest.iter().all(|f| f.ty == "VkBool32" && f.array.is_none()) {
            let v = st
                .s_type
                .as_deref()
                .unwrap_or("")
                .trim_start_matches("VK_STRUCTURE_TYPE_");
            writeln!(s, "    FeatureStruct {{ name: \"{}\", s_type: vk::StructureType::{v}, size: std::mem::size_of::<{}>(), bools: {} }},", st.name, vk_name(&st.name), rest.len()).ok();
        }
    }
    s += "];\n\n/// A struct extending `VkPhysicalDeviceProperties2`.\npub struct PropertyStruct {\n    pub name: &'static str,\n    pub s_type: vk::StructureType,\n    pub size: usize,\n}\n\n/// Every properties struct vkfuse forwards.\npub static PROPERTY_STRUCTS: &[PropertyStruct] = &[\n";
    for st in &prop_ext {
        let v = st
            .s_type
            .as_deref()
            .unwrap_or("")
            .trim_start_matches("VK_STRUCTURE_TYPE_");
        writeln!(s, "    PropertyStruct {{ name: \"{}\", s_type: vk::StructureType::{v}, size: std::mem::size_of::<{}>() }},", st.name, vk_name(&st.name)).ok();
    }
    s += "];\n";
    s
}

/// The texel blocks of buffer copies, from vk.xml's `<formats>` (Vulkan spec, "Copying Data
/// Between Buffers and Images"): a colour or compressed format copies whole blocks
/// (`blockSize` bytes, `blockExtent` texels); a depth aspect copies 2 bytes per texel for 16-bit
/// depth and 4 for 24-bit (in 32 bits) and 32-bit depth; a stencil aspect 1 byte. Multi-planar
/// formats and blocks deeper than one texel are left out: vkfuse does not copy them.
fn gen_formats(reg: &Registry) -> String {
    let mut s = header(
        reg,
        "Texel blocks of buffer copies, from vk.xml's `<formats>`.",
    );
    s += "use ash::vk;\n\n";
    /// Bytes, width, height, depth aspect bytes, stencil: the generated `Block`.
    type Block = (u32, u32, u32, u32, bool);
    // Formats by block, in registry order.
    let mut groups: Vec<(Block, Vec<String>)> = Vec::new();
    for f in &reg.formats {
        if f.planes || f.extent[2] != 1 {
            continue;
        }
        let depth = match f.depth_bits.as_deref() {
            None => 0,
            Some("16") => 2,
            Some("24" | "32") => 4,
            Some(_) => continue,
        };
        let key = (f.block_size, f.extent[0], f.extent[1], depth, f.stencil);
        let name = format!(
            "vk::Format::{}",
            f.name.trim_start_matches("VK_FORMAT_").to_uppercase()
        );
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, names)) => names.push(name),
            None => groups.push((key, vec![name])),
        }
    }
    s += "/// A format's texel block in buffer copies: bytes, width and height in texels (the whole\n/// block, for the colour aspect), bytes per texel of the depth aspect (0 without depth), and\n/// whether it has a stencil aspect (1 byte per texel).\ntype Block = (u32, u32, u32, u32, bool);\n\n";
    s += "fn block(format: vk::Format) -> Option<Block> {\n    Some(match format {\n";
    for ((size, w, h, depth, stencil), names) in &groups {
        writeln!(
            s,
            "        {} => ({size}, {w}, {h}, {depth}, {stencil}),",
            names.join(" | ")
        )
        .ok();
    }
    s += "        _ => return None,\n    })\n}\n\n";
    s += "/// Bytes per texel block in a buffer copy of `aspect` of an image of `format`, and the block's\n/// width and height in texels; None for formats vkfuse does not copy (multi-planar formats\n/// (those with `<plane>` children in vk.xml), formats vk.xml does not list), and for aspects that\n/// are not one of the format's (see [`aspects`]).\npub fn copy_block(format: vk::Format, aspect: vk::ImageAspectFlags) -> Option<(u32, u32, u32)> {\n    let (size, width, height, depth, stencil) = block(format)?;\n    match aspect {\n        vk::ImageAspectFlags::COLOR if depth == 0 && !stencil => Some((size, width, height)),\n        vk::ImageAspectFlags::DEPTH if depth != 0 => Some((depth, 1, 1)),\n        vk::ImageAspectFlags::STENCIL if stencil => Some((1, 1, 1)),\n        _ => None,\n    }\n}\n\n";
    s += "/// The aspects of `format` a buffer copy names one at a time: COLOR, or DEPTH and/or STENCIL;\n/// empty for formats vkfuse does not copy (those [`copy_block`] answers None for).\npub fn aspects(format: vk::Format) -> vk::ImageAspectFlags {\n    match block(format) {\n        None => vk::ImageAspectFlags::empty(),\n        Some((_, _, _, 0, false)) => vk::ImageAspectFlags::COLOR,\n        Some((_, _, _, depth, stencil)) => {\n            let mut a = vk::ImageAspectFlags::empty();\n            if depth != 0 {\n                a |= vk::ImageAspectFlags::DEPTH;\n            }\n            if stencil {\n                a |= vk::ImageAspectFlags::STENCIL;\n            }\n            a\n        }\n    }\n}\n";
    s
}
