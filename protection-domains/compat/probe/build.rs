//! Links this PD with the runtime's link map.
#![forbid(unsafe_code)]

fn main() {
    println!("cargo:rustc-link-arg-bins=-Tpd.ld");
}
