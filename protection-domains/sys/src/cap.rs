//! Capabilities typed by the kind of object they name, with that kind's system calls and
//! invocations. A [`Cap`] is only an address in the caller's capability space: the kernel
//! checks on every use that the slot holds a capability of the kind and rights the
//! operation needs, so a wrongly typed `Cap` gets an error, never another object.

use core::marker::PhantomData;

use atoll_abi::error::Error;
use atoll_abi::syscall::{self, MessageInfo, label};

use crate::call::{Returned, full, svc};
use crate::ipc_buffer::IpcBuffer;

/// A kind of object a [`Cap`] may name.
pub trait CapKind: Copy {}

macro_rules! kinds {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {}
        impl CapKind for $name {}
    )*};
}

kinds! {
    /// Any object: only the generic invocations.
    Any;
    /// An endpoint: send, call and receive messages.
    Endpoint;
    /// A notification: signal and wait for bits.
    Notification;
    /// A thread.
    Tcb;
    /// A reply object, which a receive fills with the caller to answer.
    Reply;
    /// A scheduling context.
    SchedContext;
    /// The handler of one interrupt.
    IrqHandler;
    /// The authority to call the firmware (seL4's `ARM_SMC`).
    Smc;
}

/// The capability at address `bits` of the caller's capability space, naming an object
/// of kind `K`.
#[derive(Debug, PartialEq, Eq)]
pub struct Cap<K: CapKind> {
    bits: u64,
    kind: PhantomData<K>,
}

impl<K: CapKind> Clone for Cap<K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K: CapKind> Copy for Cap<K> {}

/// An invocation's result from its reply tag: the kernel's error if the label is not 0
/// (a label no error has is reported as an illegal operation).
#[inline(always)]
pub fn decode(tag: MessageInfo) -> Result<(), Error> {
    match tag.label() {
        0 => Ok(()),
        e => Err(Error::from_raw(u32::try_from(e).unwrap_or(u32::MAX))
            .unwrap_or(Error::IllegalOperation)),
    }
}

impl<K: CapKind> Cap<K> {
    /// The capability at address `bits`.
    #[inline(always)]
    pub const fn from_bits(bits: u64) -> Self {
        Self {
            bits,
            kind: PhantomData,
        }
    }

    /// Its address.
    #[inline(always)]
    pub const fn bits(self) -> u64 {
        self.bits
    }

    /// The same address, as a capability of kind `L`.
    #[inline(always)]
    pub const fn cast<L: CapKind>(self) -> Cap<L> {
        Cap::from_bits(self.bits)
    }

    /// Invokes it with `label` and up to four arguments, all in registers; the reply's
    /// four register message registers, or the error. More than four arguments need
    /// [`Cap::invoke_long`].
    #[inline(always)]
    pub fn invoke(self, label: u64, args: &[u64]) -> Result<[u64; 4], Error> {
        let mut mrs = [0; 4];
        for (m, a) in mrs.iter_mut().zip(args) {
            *m = *a;
        }
        self.invoke_registers(label, args.len().min(mrs.len()), mrs)
    }

    /// [`Cap::invoke`] with up to 120 arguments: those past the fourth go through the
    /// caller's IPC buffer `buffer`. More than a message holds is an invalid argument,
    /// refused before the kernel is called.
    pub fn invoke_long(
        self,
        buffer: IpcBuffer,
        label: u64,
        args: &[u64],
    ) -> Result<[u64; 4], Error> {
        if args.len() > syscall::MAX_MESSAGE_REGISTERS {
            return Err(Error::InvalidArgument);
        }
        let mut mrs = [0; 4];
        for (i, &a) in args.iter().enumerate() {
            match mrs.get_mut(i) {
                Some(m) => *m = a,
                None => buffer.set_mr(i, a),
            }
        }
        self.invoke_registers(label, args.len(), mrs)
    }

    /// Calls with a tag of `label` and `count` message registers, the first four `mrs`.
    #[inline(always)]
    fn invoke_registers(self, label: u64, count: usize, mrs: [u64; 4]) -> Result<[u64; 4], Error> {
        let tag = MessageInfo::new(label, count as u64);
        let r = svc(syscall::CALL, self.bits, tag.0, mrs, 0);
        decode(r.tag()).map(|()| r.mrs)
    }

    /// Sends the message tagged `info` (its first four registers in `mrs`) without waiting
    /// for an answer; a notification is signalled.
    #[inline(always)]
    pub fn send(self, info: MessageInfo, mrs: [u64; 4]) {
        svc(syscall::SEND, self.bits, info.0, mrs, 0);
    }
}

impl Cap<Endpoint> {
    /// Calls: sends the message tagged `info` and waits for the reply.
    #[inline(always)]
    pub fn call(self, info: MessageInfo, mrs: [u64; 4]) -> Returned {
        svc(syscall::CALL, self.bits, info.0, mrs, 0)
    }

    /// Receives a message (or a bound notification's bits), filling `reply` with the
    /// caller to answer.
    #[inline(always)]
    pub fn recv(self, reply: Cap<Reply>) -> Returned {
        svc(syscall::RECV, self.bits, 0, [0; 4], reply.bits)
    }

    /// Answers the caller in `reply` with the message tagged `info`, then receives again.
    #[inline(always)]
    pub fn reply_recv(self, reply: Cap<Reply>, info: MessageInfo, mrs: [u64; 4]) -> Returned {
        svc(syscall::REPLY_RECV, self.bits, info.0, mrs, reply.bits)
    }

    /// Sends the empty message tagged `info` on `send` without blocking, then receives
    /// (NBSendRecv): the send half of the next receive, in one system call.
    #[inline(always)]
    pub fn nb_send_recv(self, reply: Cap<Reply>, send: Cap<Any>, info: MessageInfo) -> Returned {
        full(
            syscall::NB_SEND_RECV,
            self.bits,
            info.0,
            [0; 4],
            reply.bits,
            send.bits,
        )
    }
}

impl Cap<Notification> {
    /// Signals it.
    #[inline(always)]
    pub fn signal(self) {
        self.send(MessageInfo(0), [0; 4]);
    }

    /// Waits for it; the bits.
    #[inline(always)]
    pub fn wait(self) -> u64 {
        svc(syscall::WAIT, self.bits, 0, [0; 4], 0).badge
    }

    /// Takes its bits without blocking (0 if none are pending).
    #[inline(always)]
    pub fn poll(self) -> u64 {
        svc(syscall::NB_WAIT, self.bits, 0, [0; 4], 0).badge
    }
}

impl Cap<Tcb> {
    /// Stops the thread.
    #[inline]
    pub fn suspend(self) -> Result<(), Error> {
        self.invoke(label::TCB_SUSPEND, &[]).map(drop)
    }

    /// Lets the thread run again.
    #[inline]
    pub fn resume(self) -> Result<(), Error> {
        self.invoke(label::TCB_RESUME, &[]).map(drop)
    }

    /// Sets its program counter and stack pointer and starts it there.
    #[inline]
    pub fn restart_at(self, pc: u64, sp: u64) -> Result<(), Error> {
        self.invoke(label::TCB_WRITE_REGISTERS, &[1, pc, sp])
            .map(drop)
    }

    /// Moves the thread to `core`, a board core index of its replica (`TCB_SetAffinity`;
    /// the kernel moves the thread's own scheduling context, which decides its core).
    #[inline]
    pub fn set_affinity(self, core: u64) -> Result<(), Error> {
        self.invoke(label::TCB_SET_AFFINITY, &[core]).map(drop)
    }
}

impl Cap<SchedContext> {
    /// Binds it to `object` (a thread or a notification).
    #[inline]
    pub fn bind<K: CapKind>(self, object: Cap<K>) -> Result<(), Error> {
        self.invoke(label::SCHED_CONTEXT_BIND, &[object.bits])
            .map(drop)
    }

    /// Unbinds it from `object`.
    #[inline]
    pub fn unbind_object<K: CapKind>(self, object: Cap<K>) -> Result<(), Error> {
        self.invoke(label::SCHED_CONTEXT_UNBIND_OBJECT, &[object.bits])
            .map(drop)
    }
}

impl Cap<IrqHandler> {
    /// Acknowledges its interrupt, so it can arrive again.
    #[inline]
    pub fn ack(self) -> Result<(), Error> {
        self.invoke(label::IRQ_HANDLER_ACK, &[]).map(drop)
    }
}

impl Cap<Smc> {
    /// Calls the firmware with `regs` in `x0`–`x7` (seL4's `ARM_SMC_Call`): the registers
    /// it returns. The arguments and results past the fourth travel through `buffer`,
    /// the caller's IPC buffer. The kernel refuses PSCI's power-state calls and, on a
    /// badged capability, every function but the badge's; a call no firmware answers
    /// returns `NOT_SUPPORTED` (-1) in `x0`.
    pub fn call(self, buffer: IpcBuffer, regs: [u64; 8]) -> Result<[u64; 8], Error> {
        let [a, b, c, d] = self.invoke_long(buffer, label::ARM_SMC_CALL, &regs)?;
        Ok([
            a,
            b,
            c,
            d,
            buffer.mr(4),
            buffer.mr(5),
            buffer.mr(6),
            buffer.mr(7),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_label_decodes_to_the_error_it_numbers() {
        assert_eq!(decode(MessageInfo::new(0, 3)), Ok(()));
        assert_eq!(decode(MessageInfo::new(8, 0)), Err(Error::DeleteFirst));
        assert_eq!(decode(MessageInfo::new(10, 0)), Err(Error::NotEnoughMemory));
        assert_eq!(
            decode(MessageInfo::new(999, 0)),
            Err(Error::IllegalOperation)
        );
    }

    #[test]
    fn a_long_invocation_puts_the_arguments_past_the_fourth_in_the_buffer() {
        extern crate std;
        let mut page = std::vec![0u64; 512];
        // SAFETY: `page` outlives `buffer` and is reached only through it here.
        let buffer = unsafe { IpcBuffer::at(page.as_mut_ptr() as u64) };
        let tcb: Cap<Tcb> = Cap::from_bits(300);
        // (The host build has no kernel: the call "succeeds" with zeros.)
        assert_eq!(
            tcb.invoke_long(buffer, 10, &[1, 2, 3, 4, 5, 6, 7]),
            Ok([0; 4])
        );
        assert_eq!(page[1..9], [0, 0, 0, 0, 5, 6, 7, 0]);
        let too_many = [0u64; 121];
        assert_eq!(
            tcb.invoke_long(buffer, 10, &too_many),
            Err(Error::InvalidArgument)
        );
    }

    #[test]
    fn a_cast_keeps_the_address() {
        let ep: Cap<Endpoint> = Cap::from_bits(74);
        assert_eq!(ep.cast::<Any>().bits(), 74);
        assert_eq!(ep.cast::<Any>().cast::<Endpoint>(), ep);
    }
}
