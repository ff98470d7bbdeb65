//! Privilege: personality(READ_IMPLIES_EXEC | ADDR_NO_RANDOMIZE): every
//! readable mapping executable, no ASLR for what it execs next. Input: none.

fn main() {
    pw_hostile::attack(|_| {
        const READ_IMPLIES_EXEC: u64 = 0x0040_0000;
        const ADDR_NO_RANDOMIZE: u64 = 0x0004_0000;
        // SAFETY: plain syscall with an integer argument.
        let rc =
            unsafe { libc::personality((READ_IMPLIES_EXEC | ADDR_NO_RANDOMIZE) as libc::c_ulong) };
        pw_hostile::check("personality(READ_IMPLIES_EXEC | ADDR_NO_RANDOMIZE)", rc)?;
        // SAFETY: 0xffffffff queries without changing.
        let now = unsafe { libc::personality(0xffff_ffff) };
        Ok(format!("personality now {now:#x}"))
    })
}
