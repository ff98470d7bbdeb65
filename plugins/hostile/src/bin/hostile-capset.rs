//! Privilege: capset with every capability (0 to 40) in the effective and
//! permitted sets; where even that is refused (a container's root), it
//! settles for raising every permitted capability into the effective and
//! inheritable sets. Input: none.

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn main() {
    pw_hostile::attack(|_| {
        let header = Header {
            version: 0x2008_0522,
            pid: 0,
        }; // _LINUX_CAPABILITY_VERSION_3
        let low = Data {
            effective: u32::MAX,
            permitted: u32::MAX,
            inheritable: 0,
        };
        let high = Data {
            effective: 0x1ff,
            permitted: 0x1ff,
            inheritable: 0,
        }; // 32..=40
        let data = [low, high];
        // SAFETY: capset reads one header and two data structs from our stack.
        let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
        if rc == 0 {
            return Ok("holds every capability".into());
        }
        let first = format!("capset(all): {}", pw_hostile::errno());
        let mut now = [Data::default(); 2];
        // SAFETY: capget writes two data structs to our stack.
        let rc = unsafe { libc::syscall(libc::SYS_capget, &header, now.as_mut_ptr()) };
        pw_hostile::check("capget", rc).map_err(|e| format!("{first}; {e}"))?;
        for d in &mut now {
            d.effective = d.permitted;
            d.inheritable = d.permitted;
        }
        // SAFETY: as above.
        let rc = unsafe { libc::syscall(libc::SYS_capset, &header, now.as_ptr()) };
        pw_hostile::check("capset(permitted)", rc).map_err(|e| format!("{first}; {e}"))?;
        Ok(format!(
            "holds capabilities {:#x}{:08x}",
            now[1].permitted, now[0].permitted
        ))
    })
}
