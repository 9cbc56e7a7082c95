//! A machine of plain memory for host tests: the one [`Machine`] the kernel core's own tests
//! and the tool's boot-program replay drive the kernel with (feature `fake-machine` outside
//! this crate's tests). Pages exist on first touch and start zeroed; what the kernel asks of
//! the CPU (debug output, unhandled faults, interrupts, doorbells, new threads, TLB
//! flushes, published PD records) is recorded for the test to look at.

extern crate std;

use core::ops::Range;
use std::boxed::Box;
use std::collections::HashMap;
use std::vec::Vec;

use atoll_abi::shared::PdState;

use super::Machine;
use crate::id::{CoreId, ThreadId};

/// Bytes of a page.
const PAGE: u64 = 0x1000;

/// Plain memory and recorders; the fields say what it accepts.
pub struct FakeMachine {
    pages: HashMap<u64, Box<[u64; 512]>>,
    /// Physical addresses the kernel may touch as RAM.
    pub ram: Range<u64>,
    /// The replica's object memory: what [`Machine::zero`] clears.
    pub object_memory: Range<u64>,
    /// The interrupts this replica may claim; `None`: every one.
    pub claimable: Option<Vec<u32>>,
    /// A replica that is down: a doorbell to it delivers nothing.
    pub down_replica: Option<u32>,
    /// The cross-replica channel words. They stand for every replica's: a test can ring a
    /// word and watch it on the same kernel.
    pub words: Vec<u64>,
    /// Every replica's epoch, as `Machine::replica_epochs` reports them.
    pub epochs: Vec<u32>,
    /// Debug output, every thread's together.
    pub out: Vec<u8>,
    /// Faults with no handler: (thread, label, message registers).
    pub unhandled: Vec<(ThreadId, u64, [u64; 4])>,
    /// Each interrupt's last enabled state.
    pub irqs: HashMap<u32, bool>,
    /// Doorbells rung: (replica, word, bits).
    pub rung: Vec<(u32, u32, u64)>,
    /// Threads the kernel said it made.
    pub created: Vec<ThreadId>,
    /// TLB flushes asked for.
    pub flushes: usize,
    /// Firmware calls made, with their registers.
    pub firmware_calls: Vec<[u64; 8]>,
    /// Cores stopped by `Machine::stall`, in order.
    pub stalls: Vec<CoreId>,
    /// What `Machine::stall` answers: whether the stopped core had trapped for a system
    /// call.
    pub stall_in_syscall: bool,
    /// PD records published, in order: (directory index, state, fault count).
    pub published: Vec<(u32, PdState, u32)>,
}

impl Default for FakeMachine {
    /// Every address is RAM and object memory, every interrupt may be claimed, no replica
    /// is down, and there are no channel words.
    fn default() -> Self {
        Self {
            pages: HashMap::new(),
            ram: 0..u64::MAX,
            object_memory: 0..u64::MAX,
            claimable: None,
            down_replica: None,
            words: Vec::new(),
            epochs: Vec::new(),
            out: Vec::new(),
            unhandled: Vec::new(),
            irqs: HashMap::new(),
            rung: Vec::new(),
            created: Vec::new(),
            flushes: 0,
            firmware_calls: Vec::new(),
            stalls: Vec::new(),
            stall_in_syscall: false,
            published: Vec::new(),
        }
    }
}

impl Machine for FakeMachine {
    fn page(&mut self, pa: u64) -> Option<&mut [u64; 512]> {
        if !self.ram.contains(&pa) || !pa.is_multiple_of(PAGE) {
            return None;
        }
        Some(self.pages.entry(pa).or_insert_with(|| Box::new([0; 512])))
    }

    fn zero(&mut self, pa: u64, size: u64) -> bool {
        let Some(end) = pa.checked_add(size) else {
            return false;
        };
        if pa < self.object_memory.start || end > self.object_memory.end {
            return false;
        }
        let mut p = pa & !(PAGE - 1);
        while p < end {
            self.pages.remove(&p);
            p = p.saturating_add(PAGE);
        }
        true
    }

    fn put_char(&mut self, _thread: ThreadId, c: u8) {
        self.out.push(c);
    }

    fn unhandled_fault(&mut self, thread: ThreadId, label: u64, mrs: &[u64; 4]) {
        self.unhandled.push((thread, label, *mrs));
    }

    fn flush_tlb(&mut self, _asid: u16, _va: Option<u64>) {
        self.flushes = self.flushes.saturating_add(1);
    }

    fn claim_irq(&mut self, irq: u32, _edge: bool) -> bool {
        self.claimable.as_ref().is_none_or(|c| c.contains(&irq))
    }

    fn set_irq_enabled(&mut self, irq: u32, enabled: bool) {
        self.irqs.insert(irq, enabled);
    }

    fn ring_doorbell(&mut self, replica: u32, word: u32, bits: u64) -> bool {
        self.rung.push((replica, word, bits));
        let up = self.down_replica != Some(replica);
        match usize::try_from(word)
            .ok()
            .and_then(|w| self.words.get_mut(w))
        {
            Some(w) if up => {
                *w |= bits;
                true
            }
            _ => false,
        }
    }

    fn replica_epochs(&mut self) -> (usize, [u32; atoll_abi::limits::MAX_REPLICAS]) {
        (self.epochs.len(), {
            let mut all = [0; atoll_abi::limits::MAX_REPLICAS];
            for (e, v) in all.iter_mut().zip(&self.epochs) {
                *e = *v;
            }
            all
        })
    }

    fn take_pending_word(&mut self, word: u32) -> Option<u64> {
        let w = self.words.get_mut(usize::try_from(word).ok()?)?;
        Some(core::mem::take(w))
    }

    /// One tick a microsecond.
    fn counter_hz(&self) -> u64 {
        1_000_000
    }

    fn thread_created(&mut self, thread: ThreadId) {
        self.created.push(thread);
    }

    /// Records the call; the firmware answers with each register plus one (a result
    /// that shows it came back through the firmware).
    fn firmware_call(&mut self, regs: [u64; 8]) -> [u64; 8] {
        self.firmware_calls.push(regs);
        regs.map(|r| r.wrapping_add(1))
    }

    fn publish_pd(&mut self, index: u32, state: PdState, faults: u32) {
        self.published.push((index, state, faults));
    }

    /// Records the core; it had trapped for a system call if the test says so.
    fn stall(&mut self, core: CoreId) -> bool {
        self.stalls.push(core);
        self.stall_in_syscall
    }
}
