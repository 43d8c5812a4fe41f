//! What `vkfuse info` shows: members found, why any were skipped, the fused device and which
//! member limits what.

use serde_json::{json, Value};

use crate::instance::{build, ext_name};

fn version(v: u32) -> String {
    format!(
        "{}.{}.{}",
        ash::vk::api_version_major(v),
        ash::vk::api_version_minor(v),
        ash::vk::api_version_patch(v)
    )
}

/// Builds a fused instance with the current configuration and describes it.
pub fn info_json() -> Value {
    let d = crate::member::discovery();
    let inst = build(None, &[]);
    let mut members = Vec::new();
    for m in &d.members {
        let pm = inst.physical.as_ref().and_then(|p| p.member(m.index));
        let why = inst
            .left_out
            .iter()
            .find(|(i, _)| *i == m.index)
            .map(|(_, w)| w.clone());
        members.push(json!({
            "index": m.index,
            "manifest": m.manifest.display().to_string(),
            "library": m.library.display().to_string(),
            "interface_version": m.interface_version,
            "status": if pm.is_some() { "ok" } else { "skipped" },
            "reason": if pm.is_some() { Value::Null } else { json!(why.unwrap_or_else(|| "left out".into())) },
            "device_name": pm.map(|p| p.name.clone()),
            "driver_name": pm.map(|p| p.driver_name.clone()),
            "api_version": pm.map(|p| version(p.properties.api_version)),
            "extensions": pm.map(|p| p.extensions.len()),
        }));
    }
    for s in &d.skipped {
        members.push(json!({
            "index": Value::Null,
            "manifest": s.manifest.display().to_string(),
            "status": "skipped",
            "reason": s.reason,
        }));
    }
    let fused = inst.physical.as_ref().map(|p| {
        let f = &p.fused;
        json!({
            "device_name": crate::physical_device::device_name(p),
            "api_version": version(f.properties.api_version),
            "primary_member": p.members.first().map(|m| m.index),
            "device_extensions": f.extensions.iter().map(ext_name).collect::<Vec<_>>(),
            "queue_families": f.queue_families.iter().map(|q| json!({"flags": format!("{:?}", q.queue_flags), "count": q.queue_count})).collect::<Vec<_>>(),
            "memory_types": f.memory.memory_types[..f.memory.memory_type_count as usize].iter().map(|t| format!("{:?} (heap {})", t.property_flags, t.heap_index)).collect::<Vec<_>>(),
            "transfer_tiers": transfer_tiers(p),
            "limited_by": f.limited.iter().map(|l| json!({"what": l.what, "member": l.member, "value": l.value})).collect::<Vec<_>>(),
        })
    });
    let cfg = crate::config::Config::get();
    let out = json!({
        "members": members,
        "fused": fused,
        "strategy": cfg.strategy.name(),
        "residency": format!("{:?}", cfg.residency).to_lowercase(),
    });
    crate::instance::teardown(inst);
    out
}

/// What `tier` says for memory mirrored per member (`mirror.rs`).
const MIRRORED: &str = "mirrored (copies through the members' mappings)";
/// `images` of a pair of members (see [`transfer_tiers`]).
const IMAGES_WITH_MEMORY: &str = "with their memory (same texel layout)";
const IMAGES_COPIED: &str = "copied as images through staging buffers";
/// `waits` of a pair of members (see [`transfer_tiers`]).
const WAITS_SHARED: &str = "shared semaphores (opaque fds)";
const WAITS_BRIDGE: &str = "bridge thread";

/// Per pair of members: `tier`, how vkfuse shares host-visible data between them now (shared
/// device memory with `VKFUSE_SHARING=device` where their capabilities allow it; shared host
/// memory when both import host pointers, unless `VKFUSE_SHARING=mirrored`: one host
/// allocation imported into both, if the probe at device creation succeeds; otherwise
/// mirrored, or batches stay on one member where a member's memory cannot be mapped), and
/// `best`, the best tier their capabilities allow (host-pointer import, opaque fds, driver and
/// device UUIDs); and `not_host_visible`, how memory that is not host-visible is shared: shared
/// device memory between members of one driver on one device, staging otherwise (mirrored,
/// with copies through staging buffers and the members' transfer commands, `staging.rs`). With
/// `VKFUSE_SHARING=staging` all memory takes the staging tier. `images`: how an image's
/// contents reach the other member: with the memory it is bound to (one driver on one device:
/// the same texel layout), or copied as an image through staging buffers (`images.rs`; images
/// that cannot be copied through a buffer pin placement instead; so between SwiftShader devices,
/// whose images keep state outside their memory: `PhysMember::images_in_memory`). `waits`: how a batch on one
/// waits for the other's last batch on its queue: through a binary semaphore the two share
/// (`links.rs`: one driver on one device, exported and imported as opaque fds; by default
/// only between members that are not CPU drivers, see `VKFUSE_SYNC`), or through the bridge
/// thread (a host wait and signal).
fn transfer_tiers(p: &crate::object::PhysicalDevice) -> Value {
    let caps: Vec<vkfuse_memory::MemberCaps> = p
        .members
        .iter()
        .map(|m| vkfuse_memory::MemberCaps {
            host_import: m
                .extensions
                .iter()
                .any(|e| e == "VK_EXT_external_memory_host"),
            opaque_fd: m
                .extensions
                .iter()
                .any(|e| e == "VK_KHR_external_memory_fd"),
            driver_uuid: m.driver_uuid,
            device_uuid: m.device_uuid,
        })
        .collect();
    let sharing = crate::config::Config::get().sharing;
    let mirrored = sharing == crate::config::Sharing::Mirrored;
    let device = sharing == crate::config::Sharing::Device;
    let staging = sharing == crate::config::Sharing::Staging;
    let topology = vkfuse_memory::Topology::new(&caps);
    topology
        .connections()
        .into_iter()
        .map(|(a, b, best)| {
            let fd = best == vkfuse_memory::Tier::SharedDevice;
            let tier = if staging {
                vkfuse_memory::Tier::Staging.name()
            } else if device && fd {
                vkfuse_memory::Tier::SharedDevice.name()
            } else if caps[a].host_import && caps[b].host_import && !mirrored {
                vkfuse_memory::Tier::SharedHost.name()
            } else {
                MIRRORED
            };
            let not_host_visible = if fd {
                vkfuse_memory::Tier::SharedDevice
            } else {
                vkfuse_memory::Tier::Staging
            };
            let (pa, pb) = (&p.members[a], &p.members[b]);
            let with_memory = pa.same_device(pb) && pa.images_in_memory() && pb.images_in_memory();
            let images = if with_memory {
                IMAGES_WITH_MEMORY
            } else {
                IMAGES_COPIED
            };
            let shared_waits = crate::links::shared(&p.members[a], &p.members[b]);
            json!({
                "a": p.members[a].index,
                "b": p.members[b].index,
                "waits": if shared_waits { WAITS_SHARED } else { WAITS_BRIDGE },
                "tier": tier,
                "best": best.name(),
                "not_host_visible": not_host_visible.name(),
                "images": images,
            })
        })
        .collect()
}
