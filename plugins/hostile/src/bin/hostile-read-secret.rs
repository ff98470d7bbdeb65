//! Files: reads a secret outside the allowed paths. Input: the secret's path.

fn main() {
    pw_hostile::attack(|path| {
        let bytes = pw_hostile::read_file(path)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    })
}
