//! The parts of vk.xml that vkfuse's generators need, in a shape that is easy to query.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use vk_parse::{
    Command, CommandParam, Extension, ExtensionChild, FormatChild, InterfaceItem, RegistryChild,
    TypeMember, TypeMemberMarkup, TypeSpec, TypesChild,
};

/// A member of a struct, or a parameter of a command.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    /// The C type name without qualifiers (`VkBufferCreateInfo`, `uint32_t`).
    pub ty: String,
    /// Number of `*` in the declaration.
    pub ptr: usize,
    /// `const` on the outermost pointee (for `const T*` and `const T* const*`).
    pub is_const: bool,
    /// Fixed array size (`[4]`, `[VK_UUID_SIZE]`), as written.
    pub array: Option<String>,
    pub len: Option<String>,
    pub limittype: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Struct {
    pub name: String,
    pub is_union: bool,
    pub members: Vec<Field>,
    pub extends: Vec<String>,
    pub returned_only: bool,
    /// `VK_STRUCTURE_TYPE_...` value of the `sType` member, when it has one.
    pub s_type: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Cmd {
    pub name: String,
    pub ret: String,
    pub params: Vec<Field>,
}

/// A core version: (major, minor), the commands and the types it requires.
pub type Version = ((u32, u32), Vec<String>, Vec<String>);

#[derive(Debug, Clone)]
pub struct Ext {
    pub name: String,
    pub instance: bool,
    pub provisional: bool,
    pub platform: Option<String>,
    pub commands: Vec<String>,
    pub types: Vec<String>,
}

/// A `<format>` of vk.xml's `<formats>`: what a buffer copy of it needs.
#[derive(Debug, Clone)]
pub struct FormatInfo {
    /// `VK_FORMAT_...`.
    pub name: String,
    /// Bytes per texel block.
    pub block_size: u32,
    /// Texels per block in x, y and z (`blockExtent`, else 1×1×1).
    pub extent: [u32; 3],
    /// Bits of the depth component (`D`), as written (`16`, `24`, `32`), when it has one.
    pub depth_bits: Option<String>,
    /// Whether it has a stencil component (`S`).
    pub stencil: bool,
    /// Whether its texels lie in several planes (`<plane>` children).
    pub planes: bool,
}

#[derive(Debug, Default)]
pub struct Registry {
    pub header_version: u32,
    pub structs: BTreeMap<String, Struct>,
    /// Handle name to `true` when dispatchable.
    pub handles: BTreeMap<String, bool>,
    /// Type alias to its target (structs, handles, enums, bitmasks).
    pub type_alias: BTreeMap<String, String>,
    pub enums: BTreeSet<String>,
    pub bitmasks: BTreeSet<String>,
    pub basetypes: BTreeMap<String, String>,
    pub commands: BTreeMap<String, Cmd>,
    /// Command alias to its target.
    pub cmd_alias: BTreeMap<String, String>,
    /// Core versions (`VK_VERSION_1_2` → (1, 2)) with the commands and types they require.
    pub versions: Vec<Version>,
    pub extensions: Vec<Ext>,
    /// Enum constants by name with their integer value (for fixed array sizes).
    pub constants: BTreeMap<String, String>,
    /// The `<formats>` section, in registry order.
    pub formats: Vec<FormatInfo>,
}

fn for_vulkan(api: &Option<String>) -> bool {
    api.as_deref()
        .is_none_or(|a| a.split(',').any(|x| x == "vulkan"))
}

fn parse_decl(code: &str, name: &str, ty: &str) -> (usize, bool, Option<String>) {
    let ptr = code.matches('*').count();
    let is_const = code.trim_start().starts_with("const");
    let after = code.split(name).nth(1).unwrap_or("");
    let array = after.find('[').map(|i| {
        after[i + 1..]
            .split(']')
            .next()
            .unwrap_or("")
            .trim()
            .to_string()
    });
    let _ = ty;
    (ptr, is_const, array)
}

fn member_field(def: &vk_parse::TypeMemberDefinition) -> Option<Field> {
    if !for_vulkan(&def.api) {
        return None;
    }
    let mut name = None;
    let mut ty = None;
    for m in &def.markup {
        match m {
            TypeMemberMarkup::Name(n) => name = Some(n.clone()),
            TypeMemberMarkup::Type(t) => ty = Some(t.clone()),
            _ => {}
        }
    }
    let (name, ty) = (name?, ty?);
    let (ptr, is_const, mut array) = parse_decl(&def.code, &name, &ty);
    // Array sizes given through <enum> markup are written without the brackets' content in
    // `code`; recover them from the markup.
    if array.as_deref() == Some("") {
        array = def.markup.iter().find_map(|m| match m {
            TypeMemberMarkup::Enum(e) => Some(e.clone()),
            _ => None,
        });
    }
    Some(Field {
        name,
        ty,
        ptr,
        is_const,
        array,
        len: def.len.clone(),
        limittype: def.limittype.clone(),
    })
}

fn param_field(p: &CommandParam) -> Option<Field> {
    if !for_vulkan(&p.api) {
        return None;
    }
    let d = &p.definition;
    let ty = d.type_name.clone()?;
    let (ptr, is_const, array) = parse_decl(&d.code, &d.name, &ty);
    Some(Field {
        name: d.name.clone(),
        ty,
        ptr,
        is_const,
        array,
        len: p.len.clone(),
        limittype: None,
    })
}

fn collect_items(children: &[ExtensionChild], cmds: &mut Vec<String>, types: &mut Vec<String>) {
    for c in children {
        if let ExtensionChild::Require { api, items, .. } = c {
            if !for_vulkan(api) {
                continue;
            }
            for i in items {
                match i {
                    InterfaceItem::Command { name, .. } => cmds.push(name.clone()),
                    InterfaceItem::Type { name, .. } => types.push(name.clone()),
                    _ => {}
                }
            }
        }
    }
}

fn format_info(f: &vk_parse::Format) -> FormatInfo {
    let mut extent = [1; 3];
    if let Some(e) = &f.blockExtent {
        for (x, v) in extent.iter_mut().zip(e.split(',')) {
            *x = v.trim().parse().unwrap_or(1);
        }
    }
    let mut info = FormatInfo {
        name: f.name.clone(),
        block_size: f.blockSize.into(),
        extent,
        depth_bits: None,
        stencil: false,
        planes: false,
    };
    for c in &f.children {
        match c {
            FormatChild::Component { name, bits, .. } if name == "D" => {
                info.depth_bits = Some(bits.clone())
            }
            FormatChild::Component { name, .. } if name == "S" => info.stencil = true,
            FormatChild::Plane { .. } => info.planes = true,
            _ => {}
        }
    }
    info
}

impl Registry {
    pub fn load(path: &Path) -> Result<Registry, String> {
        let (reg, _errors) = vk_parse::parse_file(path).map_err(|e| format!("{e:?}"))?;
        let mut r = Registry::default();
        for child in &reg.0 {
            match child {
                RegistryChild::Types(types) => {
                    for t in &types.children {
                        let TypesChild::Type(t) = t else { continue };
                        if !for_vulkan(&t.api) {
                            continue;
                        }
                        let Some(name) = t.name.clone() else {
                            // `define` and `basetype` entries carry their name in the code.
                            if let TypeSpec::Code(code) = &t.spec {
                                if code.code.contains("VK_HEADER_VERSION ") {
                                    if let Some(v) = code
                                        .code
                                        .split_whitespace()
                                        .last()
                                        .and_then(|v| v.parse().ok())
                                    {
                                        r.header_version = v;
                                    }
                                }
                                if t.category.as_deref() == Some("basetype") {
                                    let mut name = None;
                                    let mut ty = None;
                                    for m in &code.markup {
                                        match m {
                                            vk_parse::TypeCodeMarkup::Name(n) => {
                                                name = Some(n.clone())
                                            }
                                            vk_parse::TypeCodeMarkup::Type(x) => {
                                                ty = Some(x.clone())
                                            }
                                            _ => {}
                                        }
                                    }
                                    if let (Some(n), Some(x)) = (name, ty) {
                                        r.basetypes.insert(n, x);
                                    }
                                }
                                if t.category.as_deref() == Some("handle") {
                                    let name = code.markup.iter().find_map(|m| match m {
                                        vk_parse::TypeCodeMarkup::Name(n) => Some(n.clone()),
                                        _ => None,
                                    });
                                    if let Some(n) = name {
                                        let disp = !code.code.contains("NON_DISPATCHABLE");
                                        r.handles.insert(n, disp);
                                    }
                                }
                                if t.category.as_deref() == Some("bitmask") {
                                    let name = code.markup.iter().find_map(|m| match m {
                                        vk_parse::TypeCodeMarkup::Name(n) => Some(n.clone()),
                                        _ => None,
                                    });
                                    if let Some(n) = name {
                                        r.bitmasks.insert(n);
                                    }
                                }
                            }
                            continue;
                        };
                        if let Some(a) = &t.alias {
                            r.type_alias.insert(name.clone(), a.clone());
                            continue;
                        }
                        match t.category.as_deref() {
                            Some("struct") | Some("union") => {
                                let TypeSpec::Members(members) = &t.spec else {
                                    continue;
                                };
                                let members: Vec<Field> = members
                                    .iter()
                                    .filter_map(|m| match m {
                                        TypeMember::Definition(d) => member_field(d),
                                        _ => None,
                                    })
                                    .collect();
                                let s_type = members.iter().find(|m| m.name == "sType").and_then(
                                    |_| {
                                        let TypeSpec::Members(ms) = &t.spec else { return None };
                                        ms.iter().find_map(|m| match m {
                                            TypeMember::Definition(d)
                                                if d.markup.iter().any(|x| {
                                                    matches!(x, TypeMemberMarkup::Name(n) if n == "sType")
                                                }) =>
                                            {
                                                d.values.clone()
                                            }
                                            _ => None,
                                        })
                                    },
                                );
                                r.structs.insert(
                                    name.clone(),
                                    Struct {
                                        name: name.clone(),
                                        is_union: t.category.as_deref() == Some("union"),
                                        members,
                                        extends: t
                                            .structextends
                                            .as_deref()
                                            .map(|s| s.split(',').map(str::to_string).collect())
                                            .unwrap_or_default(),
                                        returned_only: t.returnedonly.as_deref() == Some("true"),
                                        s_type,
                                    },
                                );
                            }
                            Some("enum") => {
                                r.enums.insert(name);
                            }
                            Some("bitmask") => {
                                r.bitmasks.insert(name);
                            }
                            _ => {}
                        }
                    }
                }
                RegistryChild::Enums(e) => {
                    for c in &e.children {
                        if let vk_parse::EnumsChild::Enum(en) = c {
                            if let vk_parse::EnumSpec::Value { value, .. } = &en.spec {
                                r.constants.insert(en.name.clone(), value.clone());
                            }
                        }
                    }
                }
                RegistryChild::Commands(cmds) => {
                    for c in &cmds.children {
                        match c {
                            Command::Alias { name, alias } => {
                                r.cmd_alias.insert(name.clone(), alias.clone());
                            }
                            Command::Definition(d) => {
                                if !for_vulkan(&d.api) {
                                    continue;
                                }
                                let params = d.params.iter().filter_map(param_field).collect();
                                r.commands.insert(
                                    d.proto.name.clone(),
                                    Cmd {
                                        name: d.proto.name.clone(),
                                        ret: d.proto.type_name.clone().unwrap_or_default(),
                                        params,
                                    },
                                );
                            }
                            _ => {}
                        }
                    }
                }
                RegistryChild::Feature(f) => {
                    if !f.api.split(',').any(|a| a == "vulkan") {
                        continue;
                    }
                    let Some(ver) = f.name.strip_prefix("VK_VERSION_") else {
                        continue;
                    };
                    let mut it = ver.split('_').map(|x| x.parse::<u32>().unwrap_or(0));
                    let v = (it.next().unwrap_or(0), it.next().unwrap_or(0));
                    let (mut cmds, mut types) = (Vec::new(), Vec::new());
                    collect_items(&f.children, &mut cmds, &mut types);
                    r.versions.push((v, cmds, types));
                }
                RegistryChild::Extensions(exts) => {
                    for e in &exts.children {
                        r.add_extension(e);
                    }
                }
                RegistryChild::Formats(formats) => {
                    r.formats.extend(formats.children.iter().map(format_info));
                }
                _ => {}
            }
        }
        Ok(r)
    }

    fn add_extension(&mut self, e: &Extension) {
        let supported = e
            .supported
            .as_deref()
            .is_some_and(|s| s.split(',').any(|x| x == "vulkan"));
        if !supported {
            return;
        }
        let (mut cmds, mut types) = (Vec::new(), Vec::new());
        collect_items(&e.children, &mut cmds, &mut types);
        self.extensions.push(Ext {
            name: e.name.clone(),
            instance: e.ext_type.as_deref() == Some("instance"),
            provisional: e.provisional,
            platform: e.platform.clone(),
            commands: cmds,
            types,
        });
    }

    /// Follows type aliases to the defining name.
    pub fn resolve<'a>(&'a self, mut name: &'a str) -> &'a str {
        while let Some(a) = self.type_alias.get(name) {
            name = a;
        }
        name
    }

    pub fn resolve_cmd<'a>(&'a self, mut name: &'a str) -> &'a str {
        while let Some(a) = self.cmd_alias.get(name) {
            name = a;
        }
        name
    }

    pub fn is_handle(&self, ty: &str) -> Option<bool> {
        self.handles.get(self.resolve(ty)).copied()
    }
}
