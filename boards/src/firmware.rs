//! Firmware interfaces: PSCI (power control) and Arm semihosting (test exits under QEMU).

use atoll_abi::spec::PsciConduit;

/// PSCI function ids (SMC32/SMC64 calling convention).
pub mod function {
    /// PSCI_VERSION.
    pub const VERSION: u32 = 0x8400_0000;
    /// CPU_OFF.
    pub const CPU_OFF: u32 = 0x8400_0002;
    /// CPU_ON, 64-bit.
    pub const CPU_ON: u32 = 0xC400_0003;
    /// SYSTEM_OFF.
    pub const SYSTEM_OFF: u32 = 0x8400_0008;
    /// AFFINITY_INFO, 64-bit.
    pub const AFFINITY_INFO: u32 = 0xC400_0004;
}

/// A core's power state as PSCI `AFFINITY_INFO` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Affinity {
    /// Running (or not yet fully off).
    On,
    /// Off: `CPU_ON` may start it.
    Off,
    /// A `CPU_ON` for it is under way.
    OnPending,
}

/// A PSCI return code other than success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PsciError(pub i64);

impl PsciError {
    /// PSCI's name for the code.
    pub const fn name(self) -> &'static str {
        match self.0 {
            -1 => "NOT_SUPPORTED",
            -2 => "INVALID_PARAMETERS",
            -3 => "DENIED",
            -4 => "ALREADY_ON",
            -5 => "ON_PENDING",
            -6 => "INTERNAL_FAILURE",
            -7 => "NOT_PRESENT",
            -8 => "DISABLED",
            -9 => "INVALID_ADDRESS",
            _ => "unknown error",
        }
    }
}

/// Calls PSCI through `conduit`.
#[cfg(target_arch = "aarch64")]
pub fn psci_call(conduit: PsciConduit, function: u32, a1: u64, a2: u64, a3: u64) -> i64 {
    let mut x0 = u64::from(function);
    macro_rules! call {
        ($instruction:literal) => {
            core::arch::asm!(
                $instruction,
                inout("x0") x0, inout("x1") a1 => _, inout("x2") a2 => _, inout("x3") a3 => _,
                out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
                out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _,
                out("x15") _, out("x16") _, out("x17") _,
            )
        };
    }
    // SAFETY: a PSCI call into firmware (or QEMU's emulation); it follows the SMC calling
    // convention, which preserves every register except x0-x17, all declared clobbered.
    unsafe {
        match conduit {
            PsciConduit::Hvc => call!("hvc #0"),
            PsciConduit::Smc => call!("smc #0"),
        }
    }
    x0 as i64
}

/// SMCCC's `NOT_SUPPORTED`, what a call the firmware does not know returns in `x0`.
pub const NOT_SUPPORTED: u64 = u64::MAX;

// Firmware calls on behalf of a PD (an SMC capability's invocation): `x0` points at eight
// words, passed to the firmware in x0-x7 and replaced by what it leaves there. The calling
// convention lets the firmware change x0-x17, so the pointer waits on the stack. Each
// conduit's instruction has a label of its own: where no firmware answers (QEMU without
// EL2 or EL3 takes only PSCI calls), the instruction is undefined, and the kernel's
// exception handler, seeing the fault at one of these labels, answers `NOT_SUPPORTED` and
// resumes after it ([`is_forward_instruction`]).
#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".macro ATOLL_FORWARD name, insn",
    ".global \\name",
    ".type \\name, %function",
    "\\name:",
    "    str     x0, [sp, #-16]!",
    "    mov     x8, x0",
    "    ldp     x0, x1, [x8]",
    "    ldp     x2, x3, [x8, #16]",
    "    ldp     x4, x5, [x8, #32]",
    "    ldp     x6, x7, [x8, #48]",
    ".global \\name\\()_insn",
    "\\name\\()_insn:",
    "    \\insn  #0",
    "    ldr     x8, [sp], #16",
    "    stp     x0, x1, [x8]",
    "    stp     x2, x3, [x8, #16]",
    "    stp     x4, x5, [x8, #32]",
    "    stp     x6, x7, [x8, #48]",
    "    ret",
    ".endm",
    "ATOLL_FORWARD atoll_firmware_forward_smc, smc",
    "ATOLL_FORWARD atoll_firmware_forward_hvc, hvc",
);

#[cfg(target_arch = "aarch64")]
unsafe extern "C" {
    fn atoll_firmware_forward_smc(regs: *mut [u64; 8]);
    fn atoll_firmware_forward_hvc(regs: *mut [u64; 8]);
    static atoll_firmware_forward_smc_insn: u8;
    static atoll_firmware_forward_hvc_insn: u8;
}

/// Calls the firmware through `conduit` with `regs` in x0-x7; returns the registers it
/// leaves there (`x0` = [`NOT_SUPPORTED`] where no firmware answers the conduit).
#[cfg(target_arch = "aarch64")]
pub fn forward(conduit: PsciConduit, mut regs: [u64; 8]) -> [u64; 8] {
    // SAFETY: the routines read and write the eight words at the pointer, which is a live
    // exclusive borrow, and otherwise follow the procedure-call standard; the firmware
    // follows the SMC calling convention (x18-x30 and sp preserved). An undefined
    // instruction at the call is answered by the kernel's handler (see above).
    unsafe {
        match conduit {
            PsciConduit::Smc => atoll_firmware_forward_smc(&mut regs),
            PsciConduit::Hvc => atoll_firmware_forward_hvc(&mut regs),
        }
    }
    regs
}

/// Host builds never call firmware.
#[cfg(not(target_arch = "aarch64"))]
pub fn forward(_conduit: PsciConduit, regs: [u64; 8]) -> [u64; 8] {
    let [_, x1, x2, x3, x4, x5, x6, x7] = regs;
    [NOT_SUPPORTED, x1, x2, x3, x4, x5, x6, x7]
}

/// Whether `pc` is the firmware-call instruction of [`forward`].
#[cfg(target_arch = "aarch64")]
pub fn is_forward_instruction(pc: u64) -> bool {
    let smc = &raw const atoll_firmware_forward_smc_insn as u64;
    let hvc = &raw const atoll_firmware_forward_hvc_insn as u64;
    pc == smc || pc == hvc
}

/// Host builds have no firmware-call instruction.
#[cfg(not(target_arch = "aarch64"))]
pub fn is_forward_instruction(_pc: u64) -> bool {
    false
}

/// Host builds never call firmware.
#[cfg(not(target_arch = "aarch64"))]
pub fn psci_call(_conduit: PsciConduit, _function: u32, _a1: u64, _a2: u64, _a3: u64) -> i64 {
    -1
}

/// Starts core `mpidr` at physical `entry` with `context` in x0.
pub fn cpu_on(conduit: PsciConduit, mpidr: u64, entry: u64, context: u64) -> Result<(), PsciError> {
    match psci_call(conduit, function::CPU_ON, mpidr, entry, context) {
        0 => Ok(()),
        e => Err(PsciError(e)),
    }
}

/// Whether core `mpidr` is on, off or being started (PSCI `AFFINITY_INFO` at level 0).
pub fn affinity_info(conduit: PsciConduit, mpidr: u64) -> Result<Affinity, PsciError> {
    match psci_call(conduit, function::AFFINITY_INFO, mpidr, 0, 0) {
        0 => Ok(Affinity::On),
        1 => Ok(Affinity::Off),
        2 => Ok(Affinity::OnPending),
        e => Err(PsciError(e)),
    }
}

/// Whether core `mpidr` is off, asking `AFFINITY_INFO` up to `polls` times and calling
/// `between` after each answer that it is still on (or being started). Firmware without
/// `AFFINITY_INFO` (`NOT_SUPPORTED`) counts as off: `CPU_ON` then refuses a core still on.
/// Any other error is returned.
pub fn is_off(
    conduit: PsciConduit,
    mpidr: u64,
    polls: u32,
    mut between: impl FnMut(),
) -> Result<bool, PsciError> {
    for _ in 0..polls {
        match affinity_info(conduit, mpidr) {
            Ok(Affinity::Off) => return Ok(true),
            Err(PsciError(-1)) => return Ok(true),
            Err(e) => return Err(e),
            Ok(Affinity::On | Affinity::OnPending) => between(),
        }
    }
    Ok(false)
}

/// Turns the calling core off. Returns only if firmware refused.
pub fn cpu_off(conduit: PsciConduit) -> PsciError {
    PsciError(psci_call(conduit, function::CPU_OFF, 0, 0, 0))
}

/// Powers the machine off (QEMU exits with status 0). Returns only if firmware refused.
pub fn system_off(conduit: PsciConduit) -> PsciError {
    PsciError(psci_call(conduit, function::SYSTEM_OFF, 0, 0, 0))
}

/// Ends a QEMU run started with `-semihosting` with `code` as QEMU's exit status.
/// Without semihosting enabled this traps as an undefined instruction, so call it only in
/// test builds.
#[cfg(target_arch = "aarch64")]
pub fn semihosting_exit(code: u32) {
    // ADP_Stopped_ApplicationExit and the status, as SYS_EXIT expects on AArch64.
    let block: [u64; 2] = [0x2_0026, u64::from(code)];
    // SAFETY: the semihosting SYS_EXIT call reads the two-word block and ends the emulator.
    unsafe {
        core::arch::asm!("hlt #0xf000", in("w0") 0x18u32, in("x1") block.as_ptr(), options(nostack));
    }
}

/// The calling core's MPIDR affinity fields (Aff3..Aff0), as board tables list them.
#[cfg(target_arch = "aarch64")]
pub fn current_affinity() -> u64 {
    let mpidr: u64;
    // SAFETY: reading MPIDR_EL1 has no side effects.
    unsafe { core::arch::asm!("mrs {}, mpidr_el1", out(reg) mpidr, options(nomem, nostack)) };
    mpidr & 0xFF_00FF_FFFF
}

/// Host builds have no cores to identify.
#[cfg(not(target_arch = "aarch64"))]
pub fn current_affinity() -> u64 {
    0
}

/// Host builds never exit through semihosting.
#[cfg(not(target_arch = "aarch64"))]
pub fn semihosting_exit(_code: u32) {}
