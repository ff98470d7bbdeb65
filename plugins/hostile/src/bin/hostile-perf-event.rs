//! Privilege: perf_event_open (side channels, a long record of kernel
//! bugs): a CPU-clock counter on itself. Input: none.

fn main() {
    pw_hostile::attack(|_| {
        // struct perf_event_attr, version 8 (136 bytes): type, size, config.
        let mut attr = [0u8; 136];
        attr[0..4].copy_from_slice(&1u32.to_ne_bytes()); // PERF_TYPE_SOFTWARE
        attr[4..8].copy_from_slice(&136u32.to_ne_bytes());
        // config 0 = PERF_COUNT_SW_CPU_CLOCK
        // SAFETY: perf_event_open reads `size` bytes of attr from our stack.
        let fd = unsafe { libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), 0, -1, -1, 0) };
        pw_hostile::check("perf_event_open", fd)?;
        Ok(format!("perf event fd {fd}"))
    })
}
