//! Files: truncates an existing world-writable file outside the allowed
//! paths with truncate(2), without opening it. Input: the file's path.

fn main() {
    pw_hostile::attack(|path| {
        let c = pw_hostile::cstr(path);
        // SAFETY: c is a valid path.
        let rc = unsafe { libc::truncate(c.as_ptr(), 0) };
        pw_hostile::check(&format!("truncate {path}"), rc)?;
        Ok(format!("truncated {path}"))
    })
}
