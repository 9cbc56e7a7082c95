//! The few aarch64 operations the kernel needs, over `aarch64-cpu`'s typed registers.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    CNTFRQ_EL0, CNTV_CTL_EL0, CNTV_TVAL_EL0, CNTVCT_EL0, DAIF, ELR_EL1, ESR_EL1, FAR_EL1,
    ReadWriteable, Readable, TCR_EL1, Writeable,
};

/// Generic-timer frequency in Hz.
pub fn counter_frequency() -> u64 {
    CNTFRQ_EL0.get()
}

/// Virtual counter value.
pub fn counter() -> u64 {
    CNTVCT_EL0.get()
}

/// This core's index, from the top of its kernel stack (`entry.S`: core `c`'s stack is
/// the upper half of the 32 KiB slot `c` above `KERNEL_STACKS_BASE`).
#[inline]
pub fn this_core() -> usize {
    let top = aarch64_cpu::registers::TPIDR_EL1.get();
    (top.wrapping_sub(atoll_abi::spec::layout::KERNEL_STACKS_BASE) >> 15).wrapping_sub(1) as usize
}

/// Arms this core's virtual timer to fire when the counter reaches `deadline` (at once if
/// it has).
pub fn arm_timer_at(deadline: u64) {
    aarch64_cpu::registers::CNTV_CVAL_EL0.set(deadline);
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET);
}

/// Stops this core's virtual timer (nothing is due).
pub fn disarm_timer() {
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::CLEAR);
}

/// Arms this core's virtual timer to fire `ticks` counter ticks from now.
pub fn arm_timer(ticks: u64) {
    CNTV_TVAL_EL0.set(ticks);
    // Enabled, and (every other field written zero) not masked.
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET);
}

/// Stops walks of TTBR0 (the loader's trampoline map): the kernel lives in TTBR1 only.
pub fn disable_low_half() {
    TCR_EL1.modify(TCR_EL1::EPD0::DisableTTBR0Walks);
    barrier::isb(barrier::SY);
    // SAFETY: invalidating this core's own TLB entries; the low half is no longer used.
    unsafe { core::arch::asm!("tlbi vmalle1", "dsb nsh", "isb", options(nostack)) };
}

/// Syndrome, fault address and return address of the exception being handled.
pub fn exception_registers() -> (u64, u64, u64) {
    (ESR_EL1.get(), FAR_EL1.get(), ELR_EL1.get())
}

/// The syndrome of the exception being served (`ESR_EL1`).
pub fn exception_syndrome() -> u64 {
    ESR_EL1.get()
}

/// Whether IRQs are masked on this core.
pub fn irqs_masked() -> bool {
    DAIF.is_set(DAIF::I)
}

/// Masks IRQs on this core and returns the previous mask state.
pub fn irq_save() -> u64 {
    let saved = DAIF.get();
    DAIF.modify(DAIF::I::Masked);
    saved
}

/// Restores an IRQ mask state from [`irq_save`].
pub fn irq_restore(saved: u64) {
    DAIF.set(saved);
}

/// Unmasks IRQs on this core.
pub fn irq_enable() {
    DAIF.modify(DAIF::I::Unmasked);
}

/// Waits for an interrupt.
///
/// The `yield` hint before `wfi` costs one instruction and does nothing on hardware. Under
/// QEMU's `-icount` it ends QEMU's current run of guest code, so QEMU has counted every
/// instruction before `wfi` by the time the core halts. Without it, QEMU's main loop can see
/// the core halted before QEMU has counted the instructions of that run, and then moves
/// virtual time that many nanoseconds past the next timer event: an interrupt measured from
/// its deadline then looked later by up to a few hundred instructions, in about one boot in
/// seven, depending on the host's timing. With the hint, at most the `wfi` itself is
/// uncounted at that moment.
pub fn wait_for_interrupt() {
    // SAFETY: `yield` is a hint: it touches no memory, register or flag.
    unsafe { core::arch::asm!("yield", options(nomem, nostack, preserves_flags)) };
    aarch64_cpu::asm::wfi();
}

/// Tells the machine this core is spinning (`yield`): a machine that shares one host thread
/// among its cores, as QEMU's round-robin does, runs another core meanwhile.
pub fn yield_hint() {
    // SAFETY: a hint with no effect on memory or registers.
    unsafe { core::arch::asm!("yield", options(nomem, nostack, preserves_flags)) };
}

/// Waits for an event (or an interrupt).
pub fn wait_for_event() {
    aarch64_cpu::asm::wfe();
}

/// Wakes cores of this replica waiting in [`wait_for_event`].
pub fn send_event() {
    barrier::dsb(barrier::ISH);
    aarch64_cpu::asm::sev();
}

/// Switches the user address space to `root` tagged `asid` (TTBR0 walks stay on).
pub fn switch_user_space(root: u64, asid: u16) {
    aarch64_cpu::registers::TTBR0_EL1.set(root | (u64::from(asid) << 48));
    barrier::isb(barrier::SY);
}

/// Invalidates user translations of `asid` (for `va`, or all): on every core of the
/// inner-shareable domain (`broadcast`: the whole chip, as no instruction reaches a chosen
/// set of cores), or on this core alone.
pub fn flush_user_tlb(asid: u16, va: Option<u64>, broadcast: bool) {
    let asid = u64::from(asid) << 48;
    let page = va.map(|va| asid | ((va >> 12) & 0xFFF_FFFF_FFFF));
    // SAFETY: TLB maintenance has no effect on memory; the barriers order it with the
    // table writes before and the accesses after (for this core alone, non-shareable
    // barriers suffice: no other core walks the tables).
    unsafe {
        match (page, broadcast) {
            (Some(page), true) => core::arch::asm!(
                "dsb ishst", "tlbi vae1is, {0}", "dsb ish", "isb",
                in(reg) page,
                options(nostack)
            ),
            (None, true) => core::arch::asm!(
                "dsb ishst", "tlbi aside1is, {0}", "dsb ish", "isb",
                in(reg) asid,
                options(nostack)
            ),
            (Some(page), false) => core::arch::asm!(
                "dsb nshst", "tlbi vae1, {0}", "dsb nsh", "isb",
                in(reg) page,
                options(nostack)
            ),
            (None, false) => core::arch::asm!(
                "dsb nshst", "tlbi aside1, {0}", "dsb nsh", "isb",
                in(reg) asid,
                options(nostack)
            ),
        }
    }
}

/// Lets EL0 (and the kernel's save and restore code) use FP/SIMD registers (`true`), or
/// makes any use trap (`false`), for lazy switching.
pub fn set_fp_enabled(enabled: bool) {
    let fpen = if enabled { 0b11 } else { 0b00 };
    aarch64_cpu::registers::CPACR_EL1.set(fpen << 20);
    barrier::isb(barrier::SY);
}

/// Installs `root` as the user (TTBR0) address space, ASID 0, and turns TTBR0 walks on.
pub fn enable_low_half(root: u64) {
    aarch64_cpu::registers::TTBR0_EL1.set(root);
    TCR_EL1.modify(TCR_EL1::EPD0::EnableTTBR0Walks);
    barrier::isb(barrier::SY);
    // SAFETY: invalidating this core's own TLB entries after changing its translation.
    unsafe { core::arch::asm!("tlbi vmalle1", "dsb nsh", "isb", options(nostack)) };
}

/// Lets EL0 read the virtual counter and its frequency (`CNTKCTL_EL1.EL0VCTEN`), as seL4
/// does on AArch64; the timer registers stay the kernel's.
pub fn allow_user_counter() {
    aarch64_cpu::registers::CNTKCTL_EL1.set(1 << 1);
}

/// Reads one of this core's EL1 physical timer registers for the thread that owns the
/// timer (`el0::emulate_pd_timer`).
pub fn read_phys_timer(reg: atoll_kernel_core::esr::PhysTimerReg) -> u64 {
    use aarch64_cpu::registers::{CNTP_CTL_EL0, CNTP_CVAL_EL0, CNTP_TVAL_EL0};
    use atoll_kernel_core::esr::PhysTimerReg;
    match reg {
        PhysTimerReg::Tval => CNTP_TVAL_EL0.get(),
        PhysTimerReg::Ctl => CNTP_CTL_EL0.get(),
        PhysTimerReg::Cval => CNTP_CVAL_EL0.get(),
    }
}

/// Writes one of this core's EL1 physical timer registers for the thread that owns the
/// timer; the kernel keeps the virtual timer, so nothing of its own changes.
pub fn write_phys_timer(reg: atoll_kernel_core::esr::PhysTimerReg, value: u64) {
    use aarch64_cpu::registers::{CNTP_CTL_EL0, CNTP_CVAL_EL0, CNTP_TVAL_EL0};
    use atoll_kernel_core::esr::PhysTimerReg;
    match reg {
        PhysTimerReg::Tval => CNTP_TVAL_EL0.set(value),
        PhysTimerReg::Ctl => CNTP_CTL_EL0.set(value),
        PhysTimerReg::Cval => CNTP_CVAL_EL0.set(value),
    }
    barrier::isb(barrier::SY);
}

/// Starts event counter 0 counting retired instructions at EL0 and EL1 (event 0x08,
/// `INST_RETIRED`), and lets EL0 read it and the cycle counter (`PMUSERENR_EL0.ER`, `.CR`;
/// not `.EN`, which would also let EL0 write the PMU's control and counter registers): the
/// benchmarks count instructions with it. Under QEMU's `-icount` it counts
/// the instructions every core executed, but not the virtual time skipped while all cores
/// were idle, which the virtual counter includes.
pub fn start_instruction_counter() {
    // SAFETY: configures this core's own PMU; nothing else depends on its registers (EL0
    // may only read the counters: PMUSERENR_EL0.EN and .SW stay clear).
    unsafe {
        core::arch::asm!(
            "msr pmevtyper0_el0, {event}",
            "msr pmcntenset_el0, {enable}",
            "mrs {tmp}, pmcr_el0",
            "orr {tmp}, {tmp}, #1",
            "msr pmcr_el0, {tmp}",
            "msr pmuserenr_el0, {user}",
            "isb",
            event = in(reg) 0x08u64,
            enable = in(reg) (1u64 << 31) | 1,
            user = in(reg) 0b1100u64,
            tmp = out(reg) _,
            options(nostack),
        );
    }
}
