//! Protocol: takes the job and never answers. Input: none.

fn main() {
    pw_hostile::attack(|_| pw_hostile::hang())
}
