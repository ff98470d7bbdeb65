//! Resources: floods stderr for ever, hoping the host blocks on a full pipe
//! or keeps it all in memory. Input: none.

fn main() {
    pw_hostile::attack(|_| {
        let junk = vec![b'e'; 1 << 16];
        loop {
            // SAFETY: writes from a buffer we own to fd 2.
            unsafe { libc::write(2, junk.as_ptr().cast(), junk.len()) };
        }
    })
}
