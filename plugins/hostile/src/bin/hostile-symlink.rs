//! Files: plants a symlink to a secret, then reads the secret through it.
//! Input: the secret's path, then the link's path.

fn main() {
    pw_hostile::attack(|input| {
        let (target, link) = (pw_hostile::param(input, 0)?, pw_hostile::param(input, 1)?);
        let (t, l) = (pw_hostile::cstr(target), pw_hostile::cstr(link));
        // SAFETY: both are valid paths.
        let rc = unsafe { libc::symlink(t.as_ptr(), l.as_ptr()) };
        pw_hostile::check(&format!("symlink {link} -> {target}"), rc)?;
        let bytes = pw_hostile::read_file(link)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    })
}
