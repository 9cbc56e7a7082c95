// Loader entry, self-relocation, EL2-to-EL1 drop and the per-core trampoline into a replica
// kernel. Assembled through global_asm! from main.rs.

.equ SCTLR_EL1_RES1,      0x30d00800
.equ SCTLR_MMU_CACHES,    (1 << 0) | (1 << 2) | (1 << 12)
.equ HCR_EL2_RW,          (1 << 31)
.equ CPTR_EL2_RES1,       0x33ff
.equ SPSR_EL1H_MASKED,    0x3c5
.equ LOADER_STACK_SIZE,   0x10000
.equ LOADER_MAIR,         0x04ff
// T0SZ=25, walks write-back inner-shareable, 4 KiB granule, TTBR1 walks off, 40-bit PA.
.equ LOADER_TCR,          0x200803519
// A move shorter than this would overwrite the code doing it: it is made in two, through
// a place 2 * RELOC_HOP below the link address. The same as build.rs's RELOC_HOP, with which
// the linker script checks that the code up to `relocate_end` is shorter, and build.rs that
// the board has that room below the link address.
.equ RELOC_HOP,           0x1000
.equ IMAGE_SIZE_FIELD,    16

.section .text.head, "ax"
.global _start
_start:
    // arm64 Image header (Linux boot protocol), so QEMU and U-Boot load us as a kernel. The
    // loader is linked at RAM base + text_offset, and `relocate` below copies the whole
    // image there first wherever it was loaded (U-Boot's booti, QEMU's -device loader),
    // so the flags may honestly say "anywhere in RAM": what must be free is the image's
    // size at RAM base + text_offset.
    b       relocate
    .word   0
    .quad   __image_text_offset     // text_offset
    .quad   0                       // image_size (the whole file), patched by the microkit tool
    .quad   0xa                     // little-endian, 4 KiB pages, anywhere in RAM
    .quad   0, 0, 0
    .ascii  "ARM\x64"
    .word   0

// Self-relocation, with the MMU off and before anything else: if the image does not run
// where it is linked, it copies itself there (header, loader, its zeroed .bss, and the image
// proper after it: image_size bytes, the file) and starts again from the copy. Only
// PC-relative code runs until then. x0-x3 (the boot protocol's arguments) are kept.
//
// The copy is a memmove that is correct for ranges overlapping either way, and never
// overwrites the code doing it: moving up, it copies from the end, and the writes start at
// least RELOC_HOP above this code; moving down, it first copies this code (up to
// `relocate_end`) to the destination, at least RELOC_HOP below, and runs the whole copy from
// there, which rewrites that code with the same bytes. A move shorter than RELOC_HOP goes
// through a place 2 * RELOC_HOP below the link address first. Cache lines of the
// destination are cleaned and invalidated before it is written (nothing stale is written
// back over the copy or hit once caches are on), and the instruction cache is invalidated
// before the copy runs.
relocate:
    adr     x4, _start                  // where the image runs
    ldr     x5, link_start              // where it is linked
    cmp     x4, x5
    b.eq    relocated
    tst     x4, #7                      // the copy moves 16 bytes at a time, 8-byte aligned
    b.ne    park
    ldr     x6, [x4, #IMAGE_SIZE_FIELD]
    ldr     x7, link_end
    sub     x7, x7, x5                  // the loader alone: an image the tool did not size
    cmp     x6, x7
    csel    x6, x6, x7, hs
    ldr     x7, image_max_size          // the most the board reserves for the image
    cmp     x6, x7
    csel    x6, x6, x7, ls
    add     x6, x6, #15
    and     x6, x6, #~15                // x6: bytes to copy
    mov     x9, x5                      // x9: the destination, the link address...
    subs    x10, x4, x5
    cneg    x10, x10, lo                // |run - link|
    cmp     x10, #RELOC_HOP
    b.hs    1f
    sub     x9, x5, #(2 * RELOC_HOP)    // ...or, first, the place for a short move
1:  mrs     x11, ctr_el0
    ubfx    x11, x11, #16, #4
    mov     x12, #4
    lsl     x11, x12, x11               // x11: the smallest data cache line
    sub     x12, x11, #1
    bic     x12, x9, x12
    add     x13, x9, x6
2:  dc      civac, x12
    add     x12, x12, x11
    cmp     x12, x13
    b.lo    2b
    dsb     sy
    cmp     x9, x4
    b.hi    5f
    // Moving down: this code first, then the whole copy from the destination's copy of it.
    mov     x16, x4
    mov     x17, x9
    adr     x13, relocate_end
3:  ldp     x14, x15, [x16], #16
    stp     x14, x15, [x17], #16
    cmp     x16, x13
    b.lo    3b
    bl      relocate_check
    adr     x12, 4f
    adr     x13, _start
    sub     x12, x12, x13
    add     x12, x12, x9
    br      x12
4:  mov     x16, x4                     // (running at the destination)
    mov     x17, x9
    add     x13, x4, x6
41: ldp     x14, x15, [x16], #16
    stp     x14, x15, [x17], #16
    cmp     x16, x13
    b.lo    41b
    b       6f
    // Moving up: from the end down, never reaching this code.
5:  add     x16, x4, x6
    add     x17, x9, x6
51: ldp     x14, x15, [x16, #-16]!
    stp     x14, x15, [x17, #-16]!
    cmp     x16, x4
    b.hi    51b
6:  bl      relocate_check              // (running at the source or the destination)
    adr     x12, relocate
    adr     x13, _start
    sub     x12, x12, x13
    add     x12, x12, x9
    br      x12                         // again, from the copy: at the link address, it is done

// Checks that the destination x9 reads back the header's magic (a
// link address that is not RAM is found here, as far as writes there are ignored rather
// than fault: then the loader stops where it was loaded) and makes the instruction fetches
// that follow see the copy. Clobbers x14, x15.
relocate_check:
    mov     w14, #0x5241
    movk    w14, #0x644d, lsl #16       // "ARM\x64"
    ldr     w15, [x9, #0x38]
    cmp     w14, w15
    b.ne    park
    dsb     ish
    ic      iallu
    dsb     ish
    isb
    ret

    .balign 8
link_start:
    .quad   _start
link_end:
    .quad   __loader_end
image_max_size:
    .quad   __image_max_size
relocate_end:
.global __relocate_end                  // for the linker script's check of the length
__relocate_end:

relocated:
    mov     x20, x0                 // the firmware's x0 (a device tree's address, or 0)
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
    mov     x1, x20
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
