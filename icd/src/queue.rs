//! Queues: one fused queue wraps the member queues of the same (mapped) family and index.

use ash::vk;
use ash::vk::Handle as _;

use crate::object::{Device, Header, Queue, Tag};
use crate::MAX_MEMBERS;

fn get(
    dev: &Device,
    family: u32,
    index: u32,
    flags: vk::DeviceQueueCreateFlags,
) -> Result<vk::Queue, vk::Result> {
    let mut queues = dev.queues.lock();
    if let Some(q) = queues
        .iter()
        .find(|q| q.family == family && q.index == index && q.flags == flags)
    {
        return Ok(vk::Queue::from_raw(&**q as *const Queue as u64));
    }
    let mut handles = [vk::Queue::null(); MAX_MEMBERS];
    for md in &dev.members {
        let fam = md
            .maps
            .queue_family
            .get(family as usize)
            .copied()
            .unwrap_or(family);
        let mut q = vk::Queue::null();
        if flags.is_empty() {
            let f = md
                .fns
                .get_device_queue
                .ok_or_else(|| crate::guard::missing("vkGetDeviceQueue"))?;
            // SAFETY: family mapped to the member's; index within the created count.
            unsafe { f(md.handle, fam, index, &mut q) };
        } else {
            let f = md
                .fns
                .get_device_queue2
                .ok_or_else(|| crate::guard::missing("vkGetDeviceQueue2"))?;
            let info = vk::DeviceQueueInfo2 {
                flags,
                queue_family_index: fam,
                queue_index: index,
                ..Default::default()
            };
            // SAFETY: as above.
            unsafe { f(md.handle, &info, &mut q) };
        }
        if q.is_null() {
            return Err(vk::Result::ERROR_INITIALIZATION_FAILED);
        }
        handles[md.index] = q;
    }
    let mut done = [vk::Semaphore::null(); MAX_MEMBERS];
    if dev.exec.multi {
        for md in &dev.members {
            match crate::exec::member_timeline(md) {
                Ok(s) => done[md.index] = s,
                Err(r) => {
                    for m in &dev.members {
                        if let (false, Some(f)) = (done[m.index].is_null(), m.fns.destroy_semaphore)
                        {
                            // SAFETY: created above, unused.
                            unsafe { f(m.handle, done[m.index], std::ptr::null()) };
                        }
                    }
                    return Err(r);
                }
            }
        }
    }
    let q = Box::new(Queue {
        header: Header::new(Tag::Queue),
        device: dev,
        handles,
        family,
        index,
        flags,
        done,
    });
    let h = vk::Queue::from_raw(&*q as *const Queue as u64);
    queues.push(q);
    Ok(h)
}

/// # Safety
/// Arguments valid for `vkGetDeviceQueue`.
pub unsafe extern "system" fn get_device_queue(
    device: vk::Device,
    family: u32,
    index: u32,
    out: *mut vk::Queue,
) {
    crate::guard::void("vkGetDeviceQueue", || {
        // SAFETY: a live device.
        let dev = unsafe { Device::resolve(device)? };
        let q = get(dev, family, index, vk::DeviceQueueCreateFlags::empty())?;
        // SAFETY: valid output pointer.
        unsafe { *out = q };
        Ok(())
    })
}

/// # Safety
/// Arguments valid for `vkGetDeviceQueue2`.
pub unsafe extern "system" fn get_device_queue2(
    device: vk::Device,
    info: *const vk::DeviceQueueInfo2,
    out: *mut vk::Queue,
) {
    crate::guard::void("vkGetDeviceQueue2", || {
        // SAFETY: a live device and valid info.
        let (dev, info) = unsafe { (Device::resolve(device)?, &*info) };
        let q = get(dev, info.queue_family_index, info.queue_index, info.flags)?;
        // SAFETY: valid output pointer.
        unsafe { *out = q };
        Ok(())
    })
}
