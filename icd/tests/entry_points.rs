//! Every command of Vulkan 1.0–1.3 and of every extension the fused device advertises resolves
//! to an entry point through vkGetInstanceProcAddr / vkGetDeviceProcAddr. The command list
//! comes from vk.xml, not from vkfuse's own tables.

mod common;

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};

use ash::vk;

/// Commands per core version, commands per extension, and each command's first parameter type.
type Commands = (
    Vec<((u32, u32), Vec<String>)>,
    BTreeMap<String, Vec<String>>,
    BTreeMap<String, String>,
);

fn registry() -> Commands {
    let xml =
        std::env::var("VK_XML").unwrap_or_else(|_| "/usr/share/vulkan/registry/vk.xml".into());
    let (reg, _) = vk_parse::parse_file(std::path::Path::new(&xml)).expect("vk.xml");
    let mut versions = Vec::new();
    let mut exts = BTreeMap::new();
    let mut first_param = BTreeMap::new();
    let mut aliases = BTreeMap::new();
    let items = |children: &[vk_parse::ExtensionChild]| -> Vec<String> {
        let mut out = Vec::new();
        for c in children {
            if let vk_parse::ExtensionChild::Require { items, api, .. } = c {
                if api
                    .as_deref()
                    .is_some_and(|a| !a.split(',').any(|x| x == "vulkan"))
                {
                    continue;
                }
                for i in items {
                    if let vk_parse::InterfaceItem::Command { name, .. } = i {
                        out.push(name.clone());
                    }
                }
            }
        }
        out
    };
    for child in &reg.0 {
        match child {
            vk_parse::RegistryChild::Feature(f) if f.api.split(',').any(|a| a == "vulkan") => {
                let v: Vec<u32> = f
                    .name
                    .trim_start_matches("VK_VERSION_")
                    .split('_')
                    .filter_map(|x| x.parse().ok())
                    .collect();
                versions.push(((v[0], v[1]), items(&f.children)));
            }
            vk_parse::RegistryChild::Extensions(e) => {
                for ext in &e.children {
                    exts.insert(ext.name.clone(), items(&ext.children));
                }
            }
            vk_parse::RegistryChild::Commands(c) => {
                for cmd in &c.children {
                    match cmd {
                        vk_parse::Command::Definition(d) => {
                            let p = d
                                .params
                                .first()
                                .and_then(|p| p.definition.type_name.clone())
                                .unwrap_or_default();
                            first_param.insert(d.proto.name.clone(), p);
                        }
                        vk_parse::Command::Alias { name, alias } => {
                            aliases.insert(name.clone(), alias.clone());
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    for (name, target) in &aliases {
        let mut t = target.clone();
        while let Some(n) = aliases.get(&t) {
            t = n.clone();
        }
        if let Some(p) = first_param.get(&t).cloned() {
            first_param.insert(name.clone(), p);
        }
    }
    (versions, exts, first_param)
}

fn check() {
    // SAFETY: loading the system Vulkan loader.
    let entry = unsafe { ash::Entry::load() }.expect("libvulkan");
    // SAFETY: plain queries and object creation with valid arguments throughout.
    unsafe {
        let inst_exts = entry
            .enumerate_instance_extension_properties(None)
            .expect("instance extensions");
        let inst_names: Vec<CString> = inst_exts
            .iter()
            .map(|e| CStr::from_ptr(e.extension_name.as_ptr()).to_owned())
            .collect();
        let ptrs: Vec<*const i8> = inst_names.iter().map(|n| n.as_ptr()).collect();
        let app = vk::ApplicationInfo::default().api_version(vk::API_VERSION_1_3);
        let instance = entry
            .create_instance(
                &vk::InstanceCreateInfo::default()
                    .application_info(&app)
                    .enabled_extension_names(&ptrs),
                None,
            )
            .expect("instance");
        let pds = instance
            .enumerate_physical_devices()
            .expect("physical devices");
        assert_eq!(
            pds.len(),
            1,
            "the fused device must be the only physical device"
        );
        let props = instance.get_physical_device_properties(pds[0]);
        let name = CStr::from_ptr(props.device_name.as_ptr())
            .to_string_lossy()
            .into_owned();
        assert!(name.starts_with("vkfuse ("), "unexpected device {name}");
        let dev_exts = instance
            .enumerate_device_extension_properties(pds[0])
            .expect("device extensions");
        let dev_names: Vec<CString> = dev_exts
            .iter()
            .map(|e| CStr::from_ptr(e.extension_name.as_ptr()).to_owned())
            .collect();
        let ptrs: Vec<*const i8> = dev_names.iter().map(|n| n.as_ptr()).collect();
        let prio = [1.0f32];
        let qci = [vk::DeviceQueueCreateInfo::default()
            .queue_family_index(0)
            .queue_priorities(&prio)];
        let device = instance
            .create_device(
                pds[0],
                &vk::DeviceCreateInfo::default()
                    .queue_create_infos(&qci)
                    .enabled_extension_names(&ptrs),
                None,
            )
            .expect("device with every advertised extension");
        let (versions, exts, first_param) = registry();
        let mut wanted: Vec<String> = Vec::new();
        for ((maj, min), cmds) in &versions {
            if (*maj, *min)
                <= (
                    vk::api_version_major(props.api_version),
                    vk::api_version_minor(props.api_version),
                )
            {
                wanted.extend(cmds.iter().cloned());
            }
        }
        for n in inst_names.iter().chain(&dev_names) {
            let n = n.to_string_lossy().into_owned();
            wanted.extend(exts.get(&n).cloned().unwrap_or_default());
        }
        wanted.sort();
        wanted.dedup();
        let gipa = entry.static_fn().get_instance_proc_addr;
        let gdpa = instance.fp_v1_0().get_device_proc_addr;
        let mut missing = Vec::new();
        for cmd in &wanted {
            let c = CString::new(cmd.as_str()).expect("name");
            let device_level = matches!(
                first_param.get(cmd).map(String::as_str),
                Some("VkDevice" | "VkQueue" | "VkCommandBuffer")
            );
            let global = !matches!(
                first_param.get(cmd).map(String::as_str),
                Some("VkInstance" | "VkPhysicalDevice")
            ) && !device_level;
            // Global commands are looked up without an instance (the loader returns NULL for
            // them with one, as the spec says since 1.2.193).
            let f = if device_level {
                gdpa(device.handle(), c.as_ptr())
            } else if global {
                gipa(vk::Instance::null(), c.as_ptr())
            } else {
                gipa(instance.handle(), c.as_ptr())
            };
            if f.is_none() {
                missing.push(cmd.clone());
            }
        }
        eprintln!(
            "checked {} commands over {} instance and {} device extensions",
            wanted.len(),
            inst_names.len(),
            dev_names.len()
        );
        device.destroy_device(None);
        instance.destroy_instance(None);
        assert!(
            missing.is_empty(),
            "commands without an entry point: {missing:?}"
        );
    }
}

#[test]
fn every_advertised_command_resolves() {
    if common::is_child() {
        check();
        return;
    }
    let manifest = common::vkfuse_manifest();
    let m = manifest.to_string_lossy();
    let mut configs = vec![
        common::LAVAPIPE.to_string(),
        format!("{0}:{0}", common::LAVAPIPE),
    ];
    if std::path::Path::new(common::SWIFTSHADER).exists() {
        configs.push(format!("{}:{}", common::LAVAPIPE, common::SWIFTSHADER));
    }
    for icds in configs {
        let out = common::run_child(
            "every_advertised_command_resolves",
            &[("VK_ICD_FILENAMES", &m), ("VKFUSE_ICDS", &icds)],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("members {icds}:\n{stderr}");
        assert!(
            out.status.success(),
            "members {icds}: {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            stderr.contains("checked "),
            "the child did not run the check"
        );
    }
}
