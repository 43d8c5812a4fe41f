//! The fused limits obey vk.xml's `limittype` against every member's own limits: for a `max`
//! limit no member may offer less than the fused value, for a `min` limit no member may need
//! more, a `bitmask` is a subset of every member's, a `range` lies inside every member's.
//! Member order and field layout come from vk.xml here, not from vkfuse's generated code.

mod common;

use ash::vk;

#[derive(Debug)]
struct Member {
    name: String,
    ty: String,
    count: usize,
    limittype: String,
}

fn limits_layout() -> Vec<Member> {
    let xml =
        std::env::var("VK_XML").unwrap_or_else(|_| "/usr/share/vulkan/registry/vk.xml".into());
    let (reg, _) = vk_parse::parse_file(std::path::Path::new(&xml)).expect("vk.xml");
    for child in &reg.0 {
        let vk_parse::RegistryChild::Types(types) = child else {
            continue;
        };
        for t in &types.children {
            let vk_parse::TypesChild::Type(t) = t else {
                continue;
            };
            if t.name.as_deref() != Some("VkPhysicalDeviceLimits") {
                continue;
            }
            let vk_parse::TypeSpec::Members(members) = &t.spec else {
                continue;
            };
            return members
                .iter()
                .filter_map(|m| match m {
                    vk_parse::TypeMember::Definition(d) => Some(d),
                    _ => None,
                })
                .map(|d| {
                    let mut name = String::new();
                    let mut ty = String::new();
                    for x in &d.markup {
                        match x {
                            vk_parse::TypeMemberMarkup::Name(n) => name = n.clone(),
                            vk_parse::TypeMemberMarkup::Type(n) => ty = n.clone(),
                            _ => {}
                        }
                    }
                    let count = d
                        .code
                        .split('[')
                        .nth(1)
                        .and_then(|n| n.split(']').next())
                        .and_then(|n| n.trim().parse().ok())
                        .unwrap_or(1);
                    Member {
                        name,
                        ty,
                        count,
                        limittype: d.limittype.clone().unwrap_or_default(),
                    }
                })
                .collect();
        }
    }
    panic!("VkPhysicalDeviceLimits not found in vk.xml");
}

fn size(ty: &str) -> usize {
    match ty {
        "VkDeviceSize" | "size_t" => 8,
        "uint32_t" | "int32_t" | "float" | "VkBool32" | "VkSampleCountFlags" => 4,
        other => panic!("unexpected limit type {other}"),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
enum V {
    U(u64),
    I(i64),
    F(f64),
}

fn read(bytes: &[u8], ty: &str, off: usize) -> V {
    let b4: [u8; 4] = bytes[off..off + 4].try_into().expect("in range");
    match ty {
        "VkDeviceSize" | "size_t" => V::U(u64::from_le_bytes(
            bytes[off..off + 8].try_into().expect("in range"),
        )),
        "int32_t" => V::I(i64::from(i32::from_le_bytes(b4))),
        "float" => V::F(f64::from(f32::from_le_bytes(b4))),
        _ => V::U(u64::from(u32::from_le_bytes(b4))),
    }
}

fn as_bytes(l: &vk::PhysicalDeviceLimits) -> Vec<u8> {
    // SAFETY: reading a plain repr(C) struct as bytes.
    unsafe {
        std::slice::from_raw_parts(
            (l as *const vk::PhysicalDeviceLimits).cast::<u8>(),
            std::mem::size_of_val(l),
        )
    }
    .to_vec()
}

fn check() {
    let inst = vkfuse::instance::build(None, &[]);
    let p = inst.physical.as_ref().expect("a fused device");
    assert!(p.members.len() >= 2, "this test needs two members");
    let fused = as_bytes(&p.fused.properties.limits);
    let members: Vec<Vec<u8>> = p
        .members
        .iter()
        .map(|m| as_bytes(&m.properties.limits))
        .collect();
    let mut off = 0usize;
    let mut checked = 0;
    let mut wrong = Vec::new();
    for m in limits_layout() {
        let sz = size(&m.ty);
        off = off.div_ceil(sz) * sz;
        let kind = m.limittype.split(',').next().unwrap_or("").to_string();
        for i in 0..m.count {
            let at = off + i * sz;
            let f = read(&fused, &m.ty, at);
            for (k, mb) in members.iter().enumerate() {
                let v = read(mb, &m.ty, at);
                let ok = match (kind.as_str(), m.count) {
                    ("max" | "bits", _) if m.ty == "VkBool32" => !(f == V::U(1) && v == V::U(0)),
                    ("max" | "bits", _) => f <= v,
                    ("min", _) => f >= v,
                    ("bitmask", _) => match (f, v) {
                        (V::U(f), V::U(v)) => f & !v == 0,
                        _ => false,
                    },
                    ("range", 2) if i == 0 => f >= v,
                    ("range", 2) => f <= v,
                    _ => true,
                };
                checked += 1;
                if !ok {
                    wrong.push(format!(
                        "{}[{i}] ({kind}): fused {f:?}, member {k} {v:?}",
                        m.name
                    ));
                }
            }
        }
        off += sz * m.count;
    }
    assert_eq!(
        off.div_ceil(8) * 8,
        std::mem::size_of::<vk::PhysicalDeviceLimits>(),
        "layout from vk.xml"
    );
    eprintln!(
        "checked {checked} limit values against {} members",
        members.len()
    );
    vkfuse::instance::teardown(inst);
    assert!(
        wrong.is_empty(),
        "fused limits a member cannot honour:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn fused_limits_respect_every_member() {
    if common::is_child() {
        check();
        return;
    }
    if !common::swiftshader_present() {
        return;
    }
    for icds in [
        format!("{}:{}", common::LAVAPIPE, common::SWIFTSHADER),
        format!("{}:{}", common::SWIFTSHADER, common::LAVAPIPE),
    ] {
        let out = common::run_child(
            "fused_limits_respect_every_member",
            &[("VKFUSE_ICDS", &icds)],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "members {icds}:\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            stderr.contains("checked "),
            "the child did not run the check: {stderr}"
        );
    }
}
