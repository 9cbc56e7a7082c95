//! Puts the PD linker script where every PD's link step finds it (`-Tpd.ld`).
#![forbid(unsafe_code)]

fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("pd.ld"), include_str!("pd.ld")).expect("write pd.ld");
    println!("cargo:rerun-if-changed=pd.ld");
    println!("cargo:rustc-link-search=native={}", out.display());
}
