// Loader entry, EL2-to-EL1 drop and the per-core trampoline into a replica kernel.
// Assembled through global_asm! from main.rs.

.equ SCTLR_EL1_RES1,      0x30d00800
.equ SCTLR_MMU_CACHES,    (1 << 0) | (1 << 2) | (1 << 12)
.equ HCR_EL2_RW,          (1 << 31)
.equ CPTR_EL2_RES1,       0x33ff
.equ SPSR_EL1H_MASKED,    0x3c5
.equ LOADER_STACK_SIZE,   0x10000
.equ LOADER_MAIR,         0x04ff
// T0SZ=25, walks write-back inner-shareable, 4 KiB granule, TTBR1 walks off, 40-bit PA.
.equ LOADER_TCR,          0x200803519

.section .text.head, "ax"
.global _start
_start:
    // arm64 Image header (Linux boot protocol), so QEMU and U-Boot load us as a kernel.
    b       1f
    .word   0
    .quad   __image_text_offset     // text_offset
    .quad   0                       // image_size, patched by the microkit tool
    .quad   0xa                     // little-endian, 4 KiB pages, anywhere in RAM
    .quad   0, 0, 0
    .ascii  "ARM\x64"
    .word   0
1:
    msr     daifset, #0xf
    mrs     x19, CurrentEL
    lsr     x19, x19, #2
    cmp     x19, #2
    b.ne    2f
    bl      drop_to_el1
2:
    cmp     x19, #3
    b.eq    park                    // EL3 entry is not supported: no PSCI to start cores.
    // Identity map with caches on before any Rust code runs (device-memory alignment rules).
    adrp    x1, LOADER_IDENTITY_TABLE
    add     x1, x1, :lo12:LOADER_IDENTITY_TABLE
    msr     ttbr0_el1, x1
    ldr     x1, =LOADER_MAIR
    msr     mair_el1, x1
    ldr     x1, =LOADER_TCR
    msr     tcr_el1, x1
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    ldr     x1, =(SCTLR_EL1_RES1 | SCTLR_MMU_CACHES)
    msr     sctlr_el1, x1
    isb
    adrp    x1, loader_vectors
    add     x1, x1, :lo12:loader_vectors
    msr     vbar_el1, x1
    adrp    x1, LOADER_STACK
    add     x1, x1, :lo12:LOADER_STACK
    add     x1, x1, #LOADER_STACK_SIZE
    mov     sp, x1
    mov     x0, x19
    bl      loader_main
park:
    wfe
    b       park

// Drops from EL2 to EL1 and returns (at EL1) to the caller. Clobbers x9.
drop_to_el1:
    mov     x9, #HCR_EL2_RW
    msr     hcr_el2, x9
    mrs     x9, cnthctl_el2
    orr     x9, x9, #3              // EL1PCTEN | EL1PCEN: EL1 may use the physical timer
    msr     cnthctl_el2, x9
    msr     cntvoff_el2, xzr
    mov     x9, #CPTR_EL2_RES1      // no FP/SIMD traps to EL2
    msr     cptr_el2, x9
    msr     hstr_el2, xzr
    msr     vttbr_el2, xzr
    mrs     x9, id_aa64pfr0_el1
    ubfx    x9, x9, #24, #4         // GIC system-register interface implemented?
    cbz     x9, 1f
    mrs     x9, S3_4_C12_C9_5       // ICC_SRE_EL2
    mov     x10, #0x9
    orr     x9, x9, x10             // SRE | Enable: EL1 may use ICC_* registers
    msr     S3_4_C12_C9_5, x9
    isb
1:
    ldr     x9, =SCTLR_EL1_RES1
    msr     sctlr_el1, x9
    mov     x9, #SPSR_EL1H_MASKED
    msr     spsr_el2, x9
    msr     elr_el2, x30
    eret

// Enters a replica kernel on this core. x0 = physical address of the core's CoreBoot record:
// (mair, tcr, ttbr0, ttbr1, sctlr, entry, arg0, arg1). Reached by PSCI CPU_ON on secondary
// cores (MMU off, EL2 or EL1) and by a call from the boot core (MMU on, EL1).
.global replica_trampoline
replica_trampoline:
    msr     daifset, #0xf
    mov     x19, x0
    mrs     x9, CurrentEL
    lsr     x9, x9, #2
    cmp     x9, #2
    b.ne    1f
    bl      drop_to_el1
1:
    mrs     x9, sctlr_el1
    bic     x9, x9, #1
    msr     sctlr_el1, x9           // MMU off: we run identity-mapped, so this is safe
    isb
    ldp     x1, x2, [x19, #0]
    msr     mair_el1, x1
    msr     tcr_el1, x2
    ldp     x1, x2, [x19, #16]
    msr     ttbr0_el1, x1
    msr     ttbr1_el1, x2
    isb
    tlbi    vmalle1
    dsb     ish
    isb
    ldp     x1, x2, [x19, #32]
    msr     sctlr_el1, x1
    isb
    ldp     x0, x1, [x19, #48]
    br      x2

// Loader exception vectors: report and stop.
.macro VECTOR kind
    .balign 0x80
    mov     x0, #\kind
    b       loader_exception_entry
.endm
.balign 0x800
loader_vectors:
    .irp kind, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    VECTOR \kind
    .endr
loader_exception_entry:
    adrp    x1, LOADER_STACK
    add     x1, x1, :lo12:LOADER_STACK
    add     x1, x1, #LOADER_STACK_SIZE
    mov     sp, x1
    bl      loader_exception
    b       park
