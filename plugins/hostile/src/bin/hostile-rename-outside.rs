//! Files: moves a file outside the allowed paths to a new name.
//! Input: the file's path, then the new path.

fn main() {
    pw_hostile::attack(|input| {
        let (from, to) = (pw_hostile::param(input, 0)?, pw_hostile::param(input, 1)?);
        let (f, t) = (pw_hostile::cstr(from), pw_hostile::cstr(to));
        // SAFETY: both are valid paths.
        let rc = unsafe { libc::rename(f.as_ptr(), t.as_ptr()) };
        pw_hostile::check(&format!("rename {from} -> {to}"), rc)?;
        Ok(format!("renamed {from} to {to}"))
    })
}
