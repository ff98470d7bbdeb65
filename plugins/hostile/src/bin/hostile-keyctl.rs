//! Privilege: the kernel keyring, which no namespace isolates: looks up the
//! user keyring and lists what it holds. Input: none.

fn main() {
    pw_hostile::attack(|_| {
        const KEYCTL_GET_KEYRING_ID: i64 = 0;
        const KEY_SPEC_USER_KEYRING: i64 = -4;
        // SAFETY: plain syscall with integer arguments.
        let id = unsafe {
            libc::syscall(
                libc::SYS_keyctl,
                KEYCTL_GET_KEYRING_ID,
                KEY_SPEC_USER_KEYRING,
                0,
            )
        };
        pw_hostile::check("keyctl(KEYCTL_GET_KEYRING_ID)", id)?;
        Ok(format!("user keyring {id}"))
    })
}
