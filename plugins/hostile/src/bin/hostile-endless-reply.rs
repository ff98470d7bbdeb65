//! Protocol: a reply that never ends: a part announcing 1 MiB whose bytes
//! trickle in one at a time, for ever. Input: none.

use plugwarden_sdk::protocol::{encode_header, Kind};

fn main() {
    pw_hostile::attack(|_| {
        pw_hostile::raw_stdout(&encode_header(Kind::Part, pw_hostile::FIRST_JOB, 1 << 20));
        loop {
            pw_hostile::raw_stdout(b"x");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    })
}
