//! Resources: floods stdout with well-formed output parts that never end,
//! hoping the host buffers them all. Input: none.

use plugwarden_sdk::protocol::Kind;

fn main() {
    pw_hostile::attack(|_| {
        let part = pw_hostile::frame(Kind::Part, pw_hostile::FIRST_JOB, &vec![b'x'; 1 << 20]);
        loop {
            pw_hostile::raw_stdout(&part);
        }
    })
}
