//! Files: reads a secret through the magic link /proc/self/root, hoping the
//! check is made on the link rather than on the file. Input: the secret's path.

fn main() {
    pw_hostile::attack(|path| {
        let bytes = pw_hostile::read_file(&format!("/proc/self/root{path}"))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    })
}
