//! Privilege: eBPF (the verifier is a favourite of kernel exploits):
//! creates an array map. Input: none.

fn main() {
    pw_hostile::attack(|_| {
        const BPF_MAP_CREATE: i64 = 0;
        const BPF_MAP_TYPE_ARRAY: u32 = 2;
        // union bpf_attr, map-create view: map_type, key_size, value_size, max_entries.
        let mut attr = [0u32; 32];
        attr[..4].copy_from_slice(&[BPF_MAP_TYPE_ARRAY, 4, 4, 1]);
        // SAFETY: bpf reads `size` bytes of attr from our stack.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_CREATE,
                attr.as_ptr(),
                std::mem::size_of_val(&attr),
            )
        };
        pw_hostile::check("bpf(BPF_MAP_CREATE)", fd)?;
        Ok(format!("bpf map fd {fd}"))
    })
}
