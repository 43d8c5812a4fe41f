//! With `VKFUSE_RESIDENCY=all`, pipelines exist on every member but only the executing member's
//! answer reaches the application: a recording-only member compiles even when the application
//! asks to fail instead (`FAIL_ON_PIPELINE_COMPILE_REQUIRED`), and does not write the
//! application's pipeline-creation feedback. Found by dEQP-VK creation_cache_control with
//! SwiftShader executing and lavapipe recording.

mod common;

use std::process::Command;

use ash::vk;

const SHADER: &str = "#version 450
layout(local_size_x = 1) in;
layout(set = 0, binding = 0) buffer B { uint v[]; } b;
void main() { b.v[gl_GlobalInvocationID.x] += 1u; }
";

fn spirv() -> Vec<u32> {
    let dir = std::env::temp_dir().join(format!("vkfuse-pipeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let src = dir.join("t.comp");
    let out = dir.join("t.spv");
    std::fs::write(&src, SHADER).expect("write shader");
    let status = Command::new("glslangValidator")
        .arg("-V")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .output()
        .expect("glslangValidator (scripts/deps installs glslang-tools)");
    assert!(
        status.status.success(),
        "glslangValidator failed: {}",
        String::from_utf8_lossy(&status.stdout)
    );
    let bytes = std::fs::read(&out).expect("read spirv");
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Creates a pipeline into a cache, then the same one again with FAIL_ON_PIPELINE_COMPILE_REQUIRED;
/// prints `second=<result> null=<bool> feedback_valid=<bool>`.
fn check() {
    // SAFETY: the system Vulkan loader.
    let entry = unsafe { ash::Entry::load() }.expect("libvulkan");
    // SAFETY: plain object creation and destruction with valid arguments throughout.
    unsafe {
        let app = vk::ApplicationInfo::default().api_version(vk::API_VERSION_1_3);
        let instance = entry
            .create_instance(
                &vk::InstanceCreateInfo::default().application_info(&app),
                None,
            )
            .expect("instance");
        let pd = instance.enumerate_physical_devices().expect("devices")[0];
        let prio = [1.0f32];
        let qci = [vk::DeviceQueueCreateInfo::default()
            .queue_family_index(0)
            .queue_priorities(&prio)];
        let mut f13 =
            vk::PhysicalDeviceVulkan13Features::default().pipeline_creation_cache_control(true);
        let device = instance
            .create_device(
                pd,
                &vk::DeviceCreateInfo::default()
                    .queue_create_infos(&qci)
                    .push_next(&mut f13),
                None,
            )
            .expect("device");
        let code = spirv();
        let module = device
            .create_shader_module(&vk::ShaderModuleCreateInfo::default().code(&code), None)
            .expect("module");
        let binding = [vk::DescriptorSetLayoutBinding::default()
            .binding(0)
            .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
            .descriptor_count(1)
            .stage_flags(vk::ShaderStageFlags::COMPUTE)];
        let set_layout = device
            .create_descriptor_set_layout(
                &vk::DescriptorSetLayoutCreateInfo::default().bindings(&binding),
                None,
            )
            .expect("set layout");
        let layouts = [set_layout];
        let layout = device
            .create_pipeline_layout(
                &vk::PipelineLayoutCreateInfo::default().set_layouts(&layouts),
                None,
            )
            .expect("layout");
        let cache = device
            .create_pipeline_cache(&vk::PipelineCacheCreateInfo::default(), None)
            .expect("cache");
        let stage = vk::PipelineShaderStageCreateInfo::default()
            .stage(vk::ShaderStageFlags::COMPUTE)
            .module(module)
            .name(c"main");
        let first = [vk::ComputePipelineCreateInfo::default()
            .stage(stage)
            .layout(layout)];
        // Drivers differ in whether their pipeline cache finds the pipeline again (SwiftShader's
        // does, lavapipe 22.3's does not), which is what tells members apart here.
        let p1 = device
            .create_compute_pipelines(cache, &first, None)
            .expect("first pipeline")[0];
        let mut feedback = vk::PipelineCreationFeedback::default();
        let mut stages = [vk::PipelineCreationFeedback::default()];
        let mut fb = vk::PipelineCreationFeedbackCreateInfo::default()
            .pipeline_creation_feedback(&mut feedback)
            .pipeline_stage_creation_feedbacks(&mut stages);
        let second = [vk::ComputePipelineCreateInfo::default()
            .flags(vk::PipelineCreateFlags::FAIL_ON_PIPELINE_COMPILE_REQUIRED)
            .stage(stage)
            .layout(layout)
            .push_next(&mut fb)];
        let mut p2 = [vk::Pipeline::null()];
        let r = (device.fp_v1_0().create_compute_pipelines)(
            device.handle(),
            cache,
            1,
            second.as_ptr(),
            std::ptr::null(),
            p2.as_mut_ptr(),
        );
        println!(
            "second={r:?} null={} feedback_valid={}",
            p2[0] == vk::Pipeline::null(),
            feedback
                .flags
                .contains(vk::PipelineCreationFeedbackFlags::VALID)
        );
        if p2[0] != vk::Pipeline::null() {
            device.destroy_pipeline(p2[0], None);
        }
        device.destroy_pipeline(p1, None);
        device.destroy_pipeline_cache(cache, None);
        device.destroy_pipeline_layout(layout, None);
        device.destroy_descriptor_set_layout(set_layout, None);
        device.destroy_shader_module(module, None);
        device.destroy_device(None);
        instance.destroy_instance(None);
    }
}

fn line(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.find("second=").map(|i| l[i..].to_string()))
        .unwrap_or_else(|| panic!("no result line:\n{stdout}"))
}

#[test]
fn only_the_executing_member_answers_pipeline_creation() {
    if common::is_child() {
        check();
        return;
    }
    if !common::swiftshader_present() {
        return;
    }
    let manifest = common::vkfuse_manifest();
    let m = manifest.to_string_lossy();
    for (first, second) in [
        (common::SWIFTSHADER, common::LAVAPIPE),
        (common::LAVAPIPE, common::SWIFTSHADER),
    ] {
        let direct = line(&common::run_child(
            "only_the_executing_member_answers_pipeline_creation",
            &[("VK_ICD_FILENAMES", first)],
        ));
        let icds = format!("{first}:{second}");
        let fused = line(&common::run_child(
            "only_the_executing_member_answers_pipeline_creation",
            &[
                ("VK_ICD_FILENAMES", &m),
                ("VKFUSE_ICDS", &icds),
                ("VKFUSE_RESIDENCY", "all"),
            ],
        ));
        eprintln!("members {icds}: direct {direct}; through vkfuse {fused}");
        assert_eq!(
            fused, direct,
            "members {icds}: vkfuse must answer as the executing member does"
        );
        assert!(
            !fused.contains("SUCCESS null=true"),
            "a SUCCESS without a pipeline: {fused}"
        );
    }
}
