// Kernel entry and exception vectors. Entered from the loader's trampoline on every core of
// the replica with the MMU on: x0 = boot spec (virtual), x1 = core index.
//
// Stack pointers: in the kernel SP_EL1 is this core's kernel stack, whose top TPIDR_EL1
// keeps. While a thread runs at EL0, SP_EL1 instead points at that thread's saved
// registers (a `Context` in its TCB, kernel_core::kernel::Context), so an exception from
// EL0 stores the registers straight into the TCB and the kernel copies nothing on a
// switch (seL4 does the same). SP_EL0 is dead while the kernel runs (the user's value is
// in the Context), so the EL1 vectors use it as their one scratch register.

// Kernel stacks (abi::spec::layout): core c's stack is the upper 16 KiB of the 32 KiB slot
// at KERNEL_STACKS_BASE + c * 32 KiB; the lower 16 KiB is an unmapped guard.
.equ KERNEL_STACKS_BASE_HI, 0xffff  // 0xffff_ffff_c000_0000, built with movz/movk
.equ STACK_SLOT_SHIFT, 15
.equ FRAME_SIZE, 288            // x0-x30, ELR, SPSR, padding
.equ EMERGENCY_STACK_SHIFT, 12  // 4 KiB per core, for reporting a stack overflow

.section .text.entry, "ax"
.global _start
_start:
    msr     daifset, #0xf
    movz    x9, #0xc000, lsl #16
    movk    x9, #0xffff, lsl #32
    movk    x9, #0xffff, lsl #48
    add     x10, x1, #1
    lsl     x10, x10, #STACK_SLOT_SHIFT
    add     sp, x9, x10
    mov     x9, sp
    msr     tpidr_el1, x9
    adrp    x9, kernel_vectors
    add     x9, x9, :lo12:kernel_vectors
    msr     vbar_el1, x9
    isb
    bl      kernel_main
1:  wfe
    b       1b

// x2-x29 at [sp + 8n]: the same place in an exception frame and in a thread's Context.
.macro STORE_X2_X29
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
.endm

.macro LOAD_X2_X29
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
.endm

.macro SAVE_FRAME
    sub     sp, sp, #FRAME_SIZE
    stp     x0, x1, [sp, #0]
    STORE_X2_X29
    mrs     x9, elr_el1
    mrs     x10, spsr_el1
    stp     x30, x9, [sp, #240]
    str     x10, [sp, #256]
.endm

.macro RESTORE_FRAME
    ldp     x30, x9, [sp, #240]
    ldr     x10, [sp, #256]
    msr     elr_el1, x9
    msr     spsr_el1, x10
    ldp     x0, x1, [sp, #0]
    LOAD_X2_X29
    add     sp, sp, #FRAME_SIZE
.endm

// Context layout (kernel_core::kernel::Context, checked by the kernel at compile time):
// x0-x30 at 0, SP_EL0 at 248, ELR at 256, SPSR at 264, TPIDR_EL0 at 272.
.equ CTX_SP, 248
.equ CTX_PC, 256
.equ CTX_TPIDR, 272

// An exception from EL0 (AArch64 or AArch32; the kernel refuses to run the latter):
// SP_EL1 is the running thread's Context.
.macro USER_VECTOR kind
    .balign 0x80
    stp     x0, x1, [sp, #0]
    mov     x1, #\kind
    b       user_entry
.endm

// kind: 0 sync, 1 irq, 2 fiq, 3 serror; source: 0 EL1 with SP0, 1 EL1 with SPx, 2 EL0 64, 3 EL0 32
// Before touching the stack, each vector checks that SP is not in the lowest 4 KiB of its
// stack or in the guard below it (offset within the 32 KiB slot under 20 KiB): a kernel
// stack overflow is reported from an emergency stack instead of faulting again forever.
.macro VECTOR kind, source
    .balign 0x80
    msr     sp_el0, x0
    mov     x0, sp
    sub     x0, x0, #1
    and     x0, x0, #0x7fff
    cmp     x0, #0x5, lsl #12
    b.lo    kernel_stack_overflow_entry
    mrs     x0, sp_el0
    SAVE_FRAME
    mov     x0, sp
    mov     x1, #\kind
    mov     x2, #\source
    b       exception_common
.endm

.balign 0x800
kernel_vectors:
    VECTOR 0, 0
    VECTOR 1, 0
    VECTOR 2, 0
    VECTOR 3, 0
    VECTOR 0, 1
    VECTOR 1, 1
    VECTOR 2, 1
    VECTOR 3, 1
    USER_VECTOR 0
    USER_VECTOR 1
    USER_VECTOR 2
    USER_VECTOR 3
    USER_VECTOR 0
    USER_VECTOR 1
    USER_VECTOR 2
    USER_VECTOR 3

exception_common:
    bl      handle_exception
    RESTORE_FRAME
    eret

// Saves the rest of the thread's registers into its Context (x1 = kind), moves to the
// kernel stack and lets the kernel choose the thread to return to.
user_entry:
    STORE_X2_X29
    mrs     x9, sp_el0
    stp     x30, x9, [sp, #240]
    mrs     x10, elr_el1
    mrs     x11, spsr_el1
    stp     x10, x11, [sp, #CTX_PC]
    mrs     x12, tpidr_el0
    str     x12, [sp, #CTX_TPIDR]
    mov     x0, x1
    mrs     x9, tpidr_el1
    mov     sp, x9
    bl      handle_user_exception
    // Falls through with x0 = the Context of the thread to run.

// Returns to the thread whose Context is at x0, interrupts masked. Only the condition
// flags of its SPSR are its own: it always returns to EL0t (AArch64) with interrupts on.
.global return_to_user
return_to_user:
    msr     daifset, #0xf
    ldp     x10, x11, [x0, #CTX_PC]
    and     x11, x11, #0xf0000000
    msr     elr_el1, x10
    msr     spsr_el1, x11
    ldp     x30, x9, [x0, #240]
    msr     sp_el0, x9
    ldr     x12, [x0, #CTX_TPIDR]
    msr     tpidr_el0, x12
    mov     sp, x0
    LOAD_X2_X29
    ldp     x0, x1, [sp, #0]
    eret

// SP was about to leave the kernel stack: continue on this core's emergency stack (core
// index = MPIDR Aff0 on every supported board) and stop the replica.
kernel_stack_overflow_entry:
    mrs     x0, mpidr_el1
    and     x0, x0, #0x7
    add     x0, x0, #1
    lsl     x0, x0, #EMERGENCY_STACK_SHIFT
    adrp    x1, EMERGENCY_STACKS
    add     x1, x1, :lo12:EMERGENCY_STACKS
    add     sp, x1, x0
    bl      kernel_stack_overflow
1:  wfe
    b       1b
