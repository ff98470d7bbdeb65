//! Files: hard-links a secret to a new name (a link keeps the inode
//! reachable from a path of the attacker's choosing), then reads it through
//! the link. Input: the secret's path, then the link's path.

fn main() {
    pw_hostile::attack(|input| {
        let (target, link) = (pw_hostile::param(input, 0)?, pw_hostile::param(input, 1)?);
        let (t, l) = (pw_hostile::cstr(target), pw_hostile::cstr(link));
        // SAFETY: both are valid paths.
        let rc = unsafe { libc::link(t.as_ptr(), l.as_ptr()) };
        pw_hostile::check(&format!("link {target} -> {link}"), rc)?;
        let bytes = pw_hostile::read_file(link)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    })
}
