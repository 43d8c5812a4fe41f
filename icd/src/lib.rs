//! vkfuse: a Vulkan ICD that loads the machine's real drivers ("members") and shows
//! applications one fused `VkPhysicalDevice`. See ARCHITECTURE.md for the layout.

pub mod access;
pub mod arena;
pub mod command_buffer;
pub mod config;
pub mod conv;
pub mod descriptor;
pub mod device;
pub mod device_memory;
pub mod exec;
pub mod generated;
pub mod guard;
pub mod images;
pub mod instance;
pub mod layout;
pub mod links;
pub mod loader;
pub mod log;
pub mod member;
pub mod memory;
pub mod mirror;
pub mod narrow;
pub mod object;
pub mod physical_device;
pub mod present;
pub mod queue;
pub mod report;
pub mod shaders;
pub mod split;
pub mod staging;
pub mod wsi;

/// The most members one fused device can have; each object holds this many member handles.
pub const MAX_MEMBERS: usize = 8;
