//! Privilege: a new user namespace (full capabilities inside it), then a
//! mount in a new mount namespace: the first step of most unprivileged
//! kernel exploits. Input: a directory to mount a tmpfs on.

fn write(path: &str, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("write {path}: {e}"))
}

fn main() {
    pw_hostile::attack(|dir| {
        // The owner of /proc/self is our uid and gid (stat is a start-up call).
        // SAFETY: stat is plain data filled by the kernel.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let me = pw_hostile::cstr("/proc/self");
        // SAFETY: me is a valid path and st a valid out-pointer.
        pw_hostile::check("stat /proc/self", unsafe {
            libc::stat(me.as_ptr(), &mut st)
        })?;
        let (uid, gid) = (st.st_uid, st.st_gid);
        // SAFETY: plain syscall with integer arguments.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) };
        pw_hostile::check("unshare(CLONE_NEWUSER | CLONE_NEWNS)", rc)?;
        write("/proc/self/setgroups", "deny")?;
        write("/proc/self/uid_map", &format!("0 {uid} 1"))?;
        write("/proc/self/gid_map", &format!("0 {gid} 1"))?;
        let (src, target, fstype) = (
            pw_hostile::cstr("none"),
            pw_hostile::cstr(dir),
            pw_hostile::cstr("tmpfs"),
        );
        // SAFETY: all pointers are valid C strings; no data argument.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        pw_hostile::check(&format!("mount tmpfs on {dir}"), rc)?;
        Ok(format!(
            "mounted a tmpfs on {dir} inside a new user namespace"
        ))
    })
}
