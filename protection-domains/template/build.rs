//! Links the PD with the runtime's link map (the runtime puts `pd.ld` on the search path).
#![forbid(unsafe_code)]

fn main() {
    println!("cargo:rustc-link-arg-bins=-Tpd.ld");
}
