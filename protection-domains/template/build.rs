//! Links the PD with the runtime's link map (the runtime puts `pd.ld` on the search path).

fn main() {
    println!("cargo:rustc-link-arg-bins=-Tpd.ld");
}
