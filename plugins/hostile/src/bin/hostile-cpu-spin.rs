//! Resources: spins on the CPU for ever. Input: none.

fn main() {
    pw_hostile::attack(|_| {
        let mut x = 0u64;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    })
}
