//! Protocol: answers a job the host never sent (id 999999). Input: none.

use plugwarden_sdk::protocol::Kind;

fn main() {
    pw_hostile::attack(|_| {
        pw_hostile::raw_stdout(&pw_hostile::frame(
            Kind::Done,
            999_999,
            b"ESCAPED: answer for a job never sent",
        ));
        pw_hostile::hang()
    })
}
