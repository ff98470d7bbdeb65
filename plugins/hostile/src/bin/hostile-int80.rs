//! Privilege: the 32-bit syscall ABI from a 64-bit process (`int 0x80`),
//! where numbers differ (socket is 359, not 41): a filter that does not
//! check the architecture would judge the wrong syscall. x86_64 only.
//! Input: none.

#[cfg(target_arch = "x86_64")]
fn attempt() -> Result<String, String> {
    const I386_SOCKET: i64 = 359;
    let ret: i64;
    // SAFETY: int 0x80 with eax = socket(2, 1, 0) in the i386 ABI touches
    // no memory; rbx is reserved by LLVM, so the argument is swapped in and out.
    unsafe {
        std::arch::asm!(
            "xchg {b}, rbx",
            "int 0x80",
            "xchg {b}, rbx",
            b = inout(reg) libc::AF_INET as i64 => _,
            inlateout("rax") I386_SOCKET => ret,
            in("rcx") libc::SOCK_STREAM as i64,
            in("rdx") 0i64,
        );
    }
    let ret = ret as i32;
    if ret < 0 {
        return Err(format!("int 0x80 socket: {}", pw_hostile::errno_name(-ret)));
    }
    Ok(format!("i386 socket fd {ret}"))
}

#[cfg(not(target_arch = "x86_64"))]
fn attempt() -> Result<String, String> {
    Err("not applicable: int 0x80 exists only on x86".into())
}

fn main() {
    pw_hostile::attack(|_| attempt())
}
