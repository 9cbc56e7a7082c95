/*
 * Atoll SDK: the part of seL4's user library (libsel4) that microkit.h and Microkit's
 * programs use, for Atoll's kernel. Types and names are seL4's; the functions not marked
 * static inline are in libmicrokit.a, over the same system-call layer as Atoll's Rust PD
 * runtime. docs/c-api.md lists what is here and how it differs from seL4.
 */
#pragma once

#include <kernel/gen_config.h>

typedef unsigned char seL4_Uint8;
typedef unsigned short seL4_Uint16;
typedef unsigned int seL4_Uint32;
typedef unsigned long long seL4_Uint64;
typedef signed char seL4_Int8;
typedef signed short seL4_Int16;
typedef signed int seL4_Int32;
typedef signed long long seL4_Int64;

typedef seL4_Uint64 seL4_Word;
typedef seL4_Word seL4_CPtr;
typedef seL4_Int8 seL4_Bool;

#define seL4_True ((seL4_Bool)1)
#define seL4_False ((seL4_Bool)0)
#define seL4_Null ((void *)0)
#define seL4_CapNull ((seL4_CPtr)0)

#define seL4_WordBits 64
#define seL4_PageBits 12
/* Message registers a message can carry (seL4's seL4_MsgMaxLength). */
#define seL4_MsgMaxLength 120
/* One past the highest user address (1 TiB); the IPC buffer is its top page. */
#define seL4_UserVSpaceTop 0x10000000000ull

/* Errors, with seL4's numbering (the kernel uses the same). */
typedef enum {
    seL4_NoError = 0,
    seL4_InvalidArgument = 1,
    seL4_InvalidCapability = 2,
    seL4_IllegalOperation = 3,
    seL4_RangeError = 4,
    seL4_AlignmentError = 5,
    seL4_FailedLookup = 6,
    seL4_TruncatedMessage = 7,
    seL4_DeleteFirst = 8,
    seL4_RevokeFirst = 9,
    seL4_NotEnoughMemory = 10,
    seL4_NumErrors
} seL4_Error;

/* Label of the interrupt acknowledgement invocation (Atoll's number), which
 * microkit_signal_msg carries for a deferred acknowledgement. */
#define IRQAckIRQ 41

/* Fault labels: the label of the message a parent's fault() receives, with seL4's
 * numbering (seL4_Fault_tag_t of AArch64 with MCS). seL4_Fault_Panic is Atoll's: the PD's
 * library stopped it (a missing entry point, a refused call), in a message of one
 * register, the address of the library's panic handler. */
typedef enum {
    seL4_Fault_NullFault = 0,
    seL4_Fault_CapFault = 1,
    seL4_Fault_UnknownSyscall = 2,
    seL4_Fault_UserException = 3,
    seL4_Fault_VMFault = 6,
    seL4_Fault_Panic = 7,
} seL4_Fault_tag_t;

/* Message registers of a VM fault, as seL4's (the fault status is the ESR). */
typedef enum {
    seL4_VMFault_IP = 0,
    seL4_VMFault_Addr = 1,
    seL4_VMFault_PrefetchFault = 2,
    seL4_VMFault_FSR = 3,
    seL4_VMFault_Length = 4,
} seL4_VMFault_Msg;

/* Message registers of a capability fault that match seL4's: the pc and the capability
 * address (Atoll's third register is the system call number, and no lookup-failure
 * description follows). */
#define seL4_CapFault_IP 0
#define seL4_CapFault_Addr 1

/* A message tag: label in bits 12 and up, capsUnwrapped in 9-11, extraCaps in 7-8, length
 * in 0-6, as seL4's. Atoll carries no capabilities in messages: extraCaps and
 * capsUnwrapped are always 0 in what the kernel delivers. */
typedef struct seL4_MessageInfo {
    seL4_Word words[1];
} seL4_MessageInfo_t;

static inline seL4_MessageInfo_t seL4_MessageInfo_new(seL4_Word label, seL4_Word capsUnwrapped,
                                                      seL4_Word extraCaps, seL4_Word length)
{
    seL4_MessageInfo_t info;
    info.words[0] = ((label & 0xfffffffffffffull) << 12) | ((capsUnwrapped & 0x7) << 9)
                    | ((extraCaps & 0x3) << 7) | (length & 0x7f);
    return info;
}

static inline seL4_Word seL4_MessageInfo_get_label(seL4_MessageInfo_t info)
{
    return info.words[0] >> 12;
}

static inline seL4_Word seL4_MessageInfo_get_capsUnwrapped(seL4_MessageInfo_t info)
{
    return (info.words[0] >> 9) & 0x7;
}

static inline seL4_Word seL4_MessageInfo_get_extraCaps(seL4_MessageInfo_t info)
{
    return (info.words[0] >> 7) & 0x3;
}

static inline seL4_Word seL4_MessageInfo_get_length(seL4_MessageInfo_t info)
{
    return info.words[0] & 0x7f;
}

static inline seL4_MessageInfo_t seL4_MessageInfo_set_label(seL4_MessageInfo_t info, seL4_Word label)
{
    info.words[0] = (info.words[0] & 0xfffull) | ((label & 0xfffffffffffffull) << 12);
    return info;
}

static inline seL4_MessageInfo_t seL4_MessageInfo_set_length(seL4_MessageInfo_t info, seL4_Word length)
{
    info.words[0] = (info.words[0] & ~0x7full) | (length & 0x7f);
    return info;
}

/* The IPC buffer: word 0 the tag, then the message registers, as seL4's. */
typedef struct seL4_IPCBuffer_ {
    seL4_MessageInfo_t tag;
    seL4_Word msg[seL4_MsgMaxLength];
} seL4_IPCBuffer;

/* Points at this thread's IPC buffer (the top page of user memory). */
extern seL4_Word __sel4_ipc_buffer;

static inline seL4_IPCBuffer *seL4_GetIPCBuffer(void)
{
    return (seL4_IPCBuffer *)__sel4_ipc_buffer;
}

/* Message register i; an index past the last register reads 0 (seL4 does not check). */
static inline seL4_Word seL4_GetMR(int i)
{
    if (i < 0 || i >= seL4_MsgMaxLength) {
        return 0;
    }
    return seL4_GetIPCBuffer()->msg[i];
}

/* Sets message register i; an index past the last register is ignored (seL4 does not
 * check). */
static inline void seL4_SetMR(int i, seL4_Word value)
{
    if (i < 0 || i >= seL4_MsgMaxLength) {
        return;
    }
    seL4_GetIPCBuffer()->msg[i] = value;
}

/* System calls (MCS forms). */
void seL4_Send(seL4_CPtr dest, seL4_MessageInfo_t msgInfo);
void seL4_NBSend(seL4_CPtr dest, seL4_MessageInfo_t msgInfo);
seL4_MessageInfo_t seL4_Call(seL4_CPtr dest, seL4_MessageInfo_t msgInfo);
seL4_MessageInfo_t seL4_Recv(seL4_CPtr src, seL4_Word *sender, seL4_CPtr reply);
void seL4_Signal(seL4_CPtr dest);
seL4_MessageInfo_t seL4_Wait(seL4_CPtr src, seL4_Word *sender);
seL4_MessageInfo_t seL4_Poll(seL4_CPtr src, seL4_Word *sender);
void seL4_Yield(void);
void seL4_DebugPutChar(char c);

/* Thread invocations. */
typedef struct seL4_UserContext_ {
    seL4_Word pc, sp, spsr, x0, x1, x2, x3, x4, x5, x6, x7, x8, x16, x17, x18, x29, x30,
              x9, x10, x11, x12, x13, x14, x15, x19, x20, x21, x22, x23, x24, x25, x26, x27, x28,
              tpidr_el0, tpidrro_el0;
} seL4_UserContext;

seL4_Error seL4_TCB_Suspend(seL4_CPtr service);
seL4_Error seL4_TCB_Resume(seL4_CPtr service);
/* Atoll sets pc, sp and x0-x3: count is at most 7 (pc, sp, spsr - ignored - and x0-x3). */
seL4_Error seL4_TCB_WriteRegisters(seL4_CPtr service, seL4_Bool resume_target, seL4_Uint8 arch_flags,
                                   seL4_Word count, seL4_UserContext *regs);

/* Interrupts. */
seL4_Error seL4_IRQHandler_Ack(seL4_CPtr service);

/* Firmware calls (a PD with smc="true"). */
typedef struct seL4_ARM_SMCContext_ {
    seL4_Word x0, x1, x2, x3, x4, x5, x6, x7;
} seL4_ARM_SMCContext;

seL4_Error seL4_ARM_SMC_Call(seL4_CPtr service, seL4_ARM_SMCContext *smc_args, seL4_ARM_SMCContext *smc_response);

/* Cache maintenance over [start, end) of the PD's own address space (its VSpace
 * capability, slot 3, is the only one accepted). */
seL4_Error seL4_ARM_VSpace_Clean_Data(seL4_CPtr service, seL4_Word start, seL4_Word end);
seL4_Error seL4_ARM_VSpace_Invalidate_Data(seL4_CPtr service, seL4_Word start, seL4_Word end);
seL4_Error seL4_ARM_VSpace_CleanInvalidate_Data(seL4_CPtr service, seL4_Word start, seL4_Word end);
seL4_Error seL4_ARM_VSpace_Unify_Instruction(seL4_CPtr service, seL4_Word start, seL4_Word end);
