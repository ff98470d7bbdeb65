//! Privilege: the x32 syscall ABI (number | 0x40000000): a filter that
//! matches only the plain numbers would let `socket` through under another
//! name. x86_64 only; elsewhere the attack does not exist. Input: none.

#[cfg(target_arch = "x86_64")]
fn attempt() -> Result<String, String> {
    const X32_BIT: i64 = 0x4000_0000;
    // SAFETY: plain syscall with integer arguments.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_socket | X32_BIT,
            libc::AF_INET,
            libc::SOCK_STREAM,
            0,
        )
    };
    pw_hostile::check("x32 socket(AF_INET, SOCK_STREAM)", fd)?;
    Ok(format!("x32 socket fd {fd}"))
}

#[cfg(not(target_arch = "x86_64"))]
fn attempt() -> Result<String, String> {
    Err("not applicable: the x32 ABI exists only on x86_64".into())
}

fn main() {
    pw_hostile::attack(|_| attempt())
}
