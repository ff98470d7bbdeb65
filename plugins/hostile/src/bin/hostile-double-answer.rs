//! Protocol: answers one job twice, so that in a pipelined window the
//! second answer arrives while the host waits for the next job's.
//! Input: `twice <id>` (the job's id) answers job `<id>` twice in one
//! write and exits; anything else is echoed.

use plugwarden_sdk::protocol::Kind;

fn main() {
    plugwarden_sdk::serve(|input| {
        let text = String::from_utf8_lossy(input);
        let Some(id) = text.strip_prefix("twice ") else {
            return Ok(input.to_vec());
        };
        let id: u64 = id.trim().parse().map_err(|_| "twice <job id>")?;
        let mut bytes = pw_hostile::frame(Kind::Done, id, b"forged answer");
        bytes.extend(pw_hostile::frame(Kind::Done, id, b"and again"));
        pw_hostile::raw_stdout(&bytes);
        std::process::exit(0)
    })
}
