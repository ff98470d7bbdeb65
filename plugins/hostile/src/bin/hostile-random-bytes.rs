//! Protocol: 64 KiB of random bytes instead of frames. Input: none.

fn main() {
    pw_hostile::attack(|_| {
        let mut junk = vec![0u8; 64 << 10];
        // SAFETY: getrandom fills our buffer.
        unsafe { libc::getrandom(junk.as_mut_ptr().cast(), junk.len(), 0) };
        // Never start with the magic by chance.
        junk[0] = b'X';
        pw_hostile::raw_stdout(&junk);
        pw_hostile::hang()
    })
}
