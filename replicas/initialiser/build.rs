//! Links the initialiser at 0x200000, like every user program.
#![forbid(unsafe_code)]

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=initialiser.ld");
    println!("cargo:rustc-link-arg-bins=-T{dir}/initialiser.ld");
}
