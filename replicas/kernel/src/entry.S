// Kernel entry and exception vectors. Entered from the loader's trampoline on every core of
// the replica with the MMU on: x0 = boot spec (virtual), x1 = core index.

.equ STACK_SHIFT, 14            // 16 KiB per core
.equ FRAME_SIZE, 288            // x0-x30, ELR, SPSR, padding

.section .text.entry, "ax"
.global _start
_start:
    msr     daifset, #0xf
    adrp    x9, KERNEL_STACKS
    add     x9, x9, :lo12:KERNEL_STACKS
    add     x10, x1, #1
    lsl     x10, x10, #STACK_SHIFT
    add     sp, x9, x10
    adrp    x9, kernel_vectors
    add     x9, x9, :lo12:kernel_vectors
    msr     vbar_el1, x9
    isb
    bl      kernel_main
1:  wfe
    b       1b

.macro SAVE_FRAME
    sub     sp, sp, #FRAME_SIZE
    stp     x0, x1, [sp, #0]
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
    add     sp, sp, #FRAME_SIZE
.endm

// kind: 0 sync, 1 irq, 2 fiq, 3 serror; source: 0 EL1 with SP0, 1 EL1 with SPx, 2 EL0 64, 3 EL0 32
.macro VECTOR kind, source
    .balign 0x80
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
    VECTOR 0, 2
    VECTOR 1, 2
    VECTOR 2, 2
    VECTOR 3, 2
    VECTOR 0, 3
    VECTOR 1, 3
    VECTOR 2, 3
    VECTOR 3, 3

exception_common:
    bl      handle_exception
    RESTORE_FRAME
    eret
