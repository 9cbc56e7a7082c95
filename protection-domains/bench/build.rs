//! Links the benchmark PDs with the runtime's link map.

fn main() {
    println!("cargo:rustc-link-arg-bins=-Tpd.ld");
}
