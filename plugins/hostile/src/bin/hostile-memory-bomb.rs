//! Resources: allocates and touches memory in 16 MiB steps until it has the
//! amount asked for (or the allocator gives up). Input: MiB to take.

fn main() {
    pw_hostile::attack(|mib| {
        let want: usize = mib.parse().map_err(|_| "bad size")?;
        let mut held: Vec<Vec<u8>> = Vec::new();
        for _ in 0..want.div_ceil(16) {
            held.push(vec![0x5a; 16 << 20]);
        }
        Ok(format!("holds {} MiB", held.len() * 16))
    })
}
