//! Files: makes a file outside the allowed paths setuid and world-writable.
//! Input: the file's path.

fn main() {
    pw_hostile::attack(|path| {
        let c = pw_hostile::cstr(path);
        // SAFETY: c is a valid path.
        let rc = unsafe { libc::chmod(c.as_ptr(), 0o4777) };
        pw_hostile::check(&format!("chmod {path}"), rc)?;
        Ok(format!("chmod 4777 {path}"))
    })
}
