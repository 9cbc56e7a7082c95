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

/// Arms this core's virtual timer to fire `ticks` counter ticks from now.
pub fn arm_timer(ticks: u64) {
    CNTV_TVAL_EL0.set(ticks);
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::CLEAR);
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
pub fn wait_for_interrupt() {
    aarch64_cpu::asm::wfi();
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

/// Installs `root` as the user (TTBR0) address space, ASID 0, and turns TTBR0 walks on.
pub fn enable_low_half(root: u64) {
    aarch64_cpu::registers::TTBR0_EL1.set(root);
    TCR_EL1.modify(TCR_EL1::EPD0::EnableTTBR0Walks);
    barrier::isb(barrier::SY);
    // SAFETY: invalidating this core's own TLB entries after changing its translation.
    unsafe { core::arch::asm!("tlbi vmalle1", "dsb nsh", "isb", options(nostack)) };
}

/// Enters EL0 at `entry` with stack `sp`, `arg` in x0 and `arg1` in x1, resetting this
/// core's kernel stack to `kernel_sp` for the exceptions that bring it back.
///
/// # Safety
///
/// The current address space must map `entry` executable and `sp` writable for EL0, and
/// nothing on the current kernel stack may be needed again.
pub unsafe fn enter_user(entry: u64, sp: u64, arg: u64, arg1: u64, kernel_sp: u64) -> ! {
    // SAFETY: the caller's contract. Interrupts are masked first: an interrupt taken between
    // setting ELR/SPSR and `eret` would overwrite them. Operands sit in fixed registers so
    // none is clobbered before it is read, and every other register is cleared so no kernel
    // value reaches user space.
    unsafe {
        core::arch::asm!(
            "msr daifset, #0xf",
            "msr sp_el0, x2",
            "msr elr_el1, x3",
            "msr spsr_el1, xzr",
            "mov sp, x4",
            "mov x2, xzr", "mov x3, xzr", "mov x4, xzr", "mov x5, xzr",
            "mov x6, xzr", "mov x7, xzr", "mov x8, xzr", "mov x9, xzr", "mov x10, xzr",
            "mov x11, xzr", "mov x12, xzr", "mov x13, xzr", "mov x14, xzr", "mov x15, xzr",
            "mov x16, xzr", "mov x17, xzr", "mov x18, xzr", "mov x19, xzr", "mov x20, xzr",
            "mov x21, xzr", "mov x22, xzr", "mov x23, xzr", "mov x24, xzr", "mov x25, xzr",
            "mov x26, xzr", "mov x27, xzr", "mov x28, xzr", "mov x29, xzr", "mov x30, xzr",
            "eret",
            in("x0") arg,
            in("x1") arg1,
            in("x2") sp,
            in("x3") entry,
            in("x4") kernel_sp,
            options(noreturn),
        )
    }
}
