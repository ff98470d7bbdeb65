//! Privilege: capset with every capability (0 to 40) in the effective,
//! permitted and inheritable sets. Input: none.

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn main() {
    pw_hostile::attack(|_| {
        let header = Header { version: 0x2008_0522, pid: 0 }; // _LINUX_CAPABILITY_VERSION_3
        let low = Data { effective: u32::MAX, permitted: u32::MAX, inheritable: 0 };
        let high = Data { effective: 0x1ff, permitted: 0x1ff, inheritable: 0 }; // 32..=40
        let data = [low, high];
        // SAFETY: capset reads one header and two data structs from our stack.
        let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
        pw_hostile::check("capset(all)", rc)?;
        Ok("holds every capability".into())
    })
}
