//! Protocol: a valid answer with garbage right behind it, in one write, so
//! the garbage would be read as the start of the next job's answer.
//! Input: none.

use plugwarden_sdk::protocol::Kind;

fn main() {
    pw_hostile::attack(|_| {
        let mut bytes = pw_hostile::frame(
            Kind::Done,
            pw_hostile::FIRST_JOB,
            b"ESCAPED: answer with a tail",
        );
        bytes.extend_from_slice(b"PW\x04\x00garbage that pretends to be the next frame");
        pw_hostile::raw_stdout(&bytes);
        pw_hostile::hang()
    })
}
