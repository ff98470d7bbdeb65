//! Privilege: setuid(0), then proves it by reading /etc/shadow. Input: none.

fn main() {
    pw_hostile::attack(|_| {
        // SAFETY: plain syscall with an integer argument.
        let rc = unsafe { libc::setuid(0) };
        pw_hostile::check("setuid(0)", rc)?;
        let shadow = pw_hostile::read_file("/etc/shadow")?;
        Ok(format!("uid 0, read {} bytes of /etc/shadow", shadow.len()))
    })
}
