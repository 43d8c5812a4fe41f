//! Fixtures shared by the crate's unit tests: member capabilities shaped like the test members.

use crate::sites::Site;
use crate::tiers::MemberCaps;

const LVP: [u8; 16] = [1; 16];
const SWS: [u8; 16] = [2; 16];

/// Like lavapipe: imports host pointers and shares opaque fds.
pub fn lavapipe() -> MemberCaps {
    MemberCaps {
        host_import: true,
        opaque_fd: true,
        driver_uuid: LVP,
        device_uuid: LVP,
    }
}

/// A second driver that cannot import host pointers.
pub fn swiftshader() -> MemberCaps {
    MemberCaps {
        host_import: false,
        opaque_fd: true,
        driver_uuid: SWS,
        device_uuid: SWS,
    }
}

/// Member `i` as a site.
pub fn m(i: usize) -> Site {
    Site::member(i).expect("a member index below MAX_MEMBERS")
}
