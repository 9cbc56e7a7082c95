//! Makes every PD that depends on the runtime link with its link map, `pd.ld`, with no
//! build script or flag of its own (a PD written for `sel4-microkit` has neither).
//!
//! The map is written as `libatoll_pd_link.a` and named as a static library that is not
//! bundled into the runtime's rlib, so rustc passes it to each PD's final link as
//! `-latoll_pd_link`. The linker (LLVM's `ld.lld`, the one `aarch64-unknown-none` uses)
//! reads an input file that is neither an object nor an archive as a linker script. Host
//! builds (the runtime's tests and docs) do not get it.
#![forbid(unsafe_code)]

fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed=pd.ld");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let map = include_str!("pd.ld");
        std::fs::write(out.join("libatoll_pd_link.a"), map).expect("write the link map");
        println!("cargo:rustc-link-search=native={}", out.display());
        println!("cargo:rustc-link-lib=static:-bundle=atoll_pd_link");
    }
}
