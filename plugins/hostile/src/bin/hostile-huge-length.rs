//! Protocol: a frame header announcing 4 GiB, hoping the host allocates it
//! up front. Input: none.

use plugwarden_sdk::protocol::{encode_header, Kind};

fn main() {
    pw_hostile::attack(|_| {
        pw_hostile::raw_stdout(&encode_header(Kind::Done, pw_hostile::FIRST_JOB, u32::MAX));
        pw_hostile::raw_stdout(b"ESCAPED: the host waited for 4 GiB");
        pw_hostile::hang()
    })
}
