//! The protection-domain runtime, first slice: the program entry, the link map (`pd.ld`) and
//! the symbols the `microkit` tool patches into every PD, under Microkit's names. The
//! Microkit API itself (`Handler`, `Channel`, message registers) arrives with the capability
//! kernel, which is what lets a PD run; until then PD programs are built, patched and packed
//! into the image, and the kernel does not start them.
#![no_std]

/// Symbols the tool patches (SDF.md §2.1). They live in `.data.microkit` so they have bytes
/// in the ELF file to patch and the linker keeps them.
#[allow(
    non_upper_case_globals,
    reason = "Microkit's symbol names, which the tool patches"
)]
pub mod patched {
    /// The PD's name, NUL terminated.
    #[unsafe(no_mangle)]
    #[unsafe(link_section = ".data.microkit")]
    #[used]
    pub static mut microkit_name: [u8; 64] = [0; 64];
    /// Non-zero for a passive PD.
    #[unsafe(no_mangle)]
    #[unsafe(link_section = ".data.microkit")]
    #[used]
    pub static mut microkit_passive: u64 = 0;
    /// Channels this PD may notify (bit = channel id).
    #[unsafe(no_mangle)]
    #[unsafe(link_section = ".data.microkit")]
    #[used]
    pub static mut microkit_notifications: u64 = 0;
    /// Channels this PD may call (bit = channel id).
    #[unsafe(no_mangle)]
    #[unsafe(link_section = ".data.microkit")]
    #[used]
    pub static mut microkit_pps: u64 = 0;
    /// Channels that are interrupts (bit = channel id).
    #[unsafe(no_mangle)]
    #[unsafe(link_section = ".data.microkit")]
    #[used]
    pub static mut microkit_irqs: u64 = 0;
}

/// Declares the PD's initialisation function: `atoll_microkit::entry!(init);`.
#[macro_export]
macro_rules! entry {
    ($init:path) => {
        /// Called by the runtime's `_start`.
        #[unsafe(no_mangle)]
        extern "C" fn atoll_pd_main() {
            $init();
        }
    };
}

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".section .text.start, \"ax\"",
    ".global _start",
    "_start:",
    "    bl atoll_pd_main",
    "1:  b 1b",
);

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // Reporting to the monitor needs the kernel's fault path (capability kernel issue).
    loop {
        core::hint::spin_loop();
    }
}
