//! What the system-call fuzzer and the PDs that watch it share (`tests/systems/fuzz.xml`):
//! the records in their shared regions, the seed and length of a run, the calls a seed
//! makes, and the memory patterns the witness and the canary check.
//!
//! A run is deterministic: call `i` of seed `s` depends on `(s, i)` alone, so a fuzzer
//! restarted after blocking itself goes on with the same sequence, and a seed that finds a
//! defect finds it again.

use core::mem::{offset_of, size_of};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use atoll_abi::pd::slot;
use atoll_abi::syscall::{self, label};
use atoll_microkit::{debug_println, memory_region_symbol, pd_name};
use zerocopy::{FromBytes, KnownLayout};

/// The seed when the build names none (`cargo xtask fuzz-kernel --seed N` does).
pub const DEFAULT_SEED: u64 = 1;
/// Calls made when the build names no count: the short run of `cargo xtask test`.
pub const DEFAULT_CALLS: u64 = 20_000;

/// The seed of this build (the fuzzer and the watchdog are built together, with the same).
pub fn seed() -> u64 {
    option_env!("ATOLL_FUZZ_SEED")
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

/// The calls this build makes.
pub fn calls() -> u64 {
    option_env!("ATOLL_FUZZ_CALLS")
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_CALLS)
}

/// The fuzzer's progress (region `fuzz_progress`: the fuzzer writes, the watchdog reads).
/// It survives a restart of the fuzzer: the region does not go back to zero.
#[derive(FromBytes, KnownLayout)]
#[repr(C)]
pub struct Progress {
    /// The index of the next call to make, counted before the call is made: a restarted
    /// fuzzer skips the one it blocked in. Past [`calls`] once every call was made.
    pub next: AtomicU64,
    /// Calls that returned to the fuzzer.
    pub returned: AtomicU64,
}

const _: () = {
    assert!(size_of::<Progress>() == 16);
    assert!(offset_of!(Progress, returned) == 8);
};

impl Progress {
    /// Whether every call was made (the last one returned, or blocked and was skipped).
    pub fn finished(&self) -> bool {
        self.next.load(Ordering::Acquire) > calls()
    }
}

/// A PD's heartbeat and self-check (regions `witness_beat` and `canary_beat`: the PD
/// writes, the watchdog reads).
#[derive(FromBytes, KnownLayout)]
#[repr(C)]
pub struct Heartbeat {
    /// Beats so far: each is one check of the PD's own memory.
    pub beats: AtomicU64,
    /// Non-zero once a check found the memory changed: the index of the first word found
    /// changed, plus one.
    pub changed: AtomicU64,
    /// Notifications from the fuzzer seen (it may notify the PD at random).
    pub pokes: AtomicU64,
}

const _: () = {
    assert!(size_of::<Heartbeat>() == 24);
    assert!(offset_of!(Heartbeat, changed) == 8);
};

/// The fuzzer's progress record (region `fuzz_progress`, in the fuzzer and the watchdog).
pub fn progress() -> &'static Progress {
    record(memory_region_symbol!(fuzz_progress: *mut Progress))
}

/// The witness's heartbeat (region `witness_beat`, in the witness and the watchdog).
pub fn witness_beat() -> &'static Heartbeat {
    record(memory_region_symbol!(witness_beat: *mut Heartbeat))
}

/// The canary's heartbeat (region `canary_beat`, in the canary and the watchdog).
pub fn canary_beat() -> &'static Heartbeat {
    record(memory_region_symbol!(canary_beat: *mut Heartbeat))
}

/// A record in one of the shared regions above.
fn record<T: FromBytes + KnownLayout>(region: NonNull<T>) -> &'static T {
    // SAFETY: `region` is one of the regions above, which `tests/systems/fuzz.xml` maps for
    // the PD's whole life, page aligned and a page long (more than `T`); `T` is made of
    // atomics, so a peer writing it concurrently is no undefined behaviour, and any bit
    // pattern is valid.
    unsafe { region.as_ref() }
}

/// Word `i` of the memory a PD checks: a pattern no word of another PD's has.
pub fn pattern(owner: u64, i: usize) -> u64 {
    mix(owner.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i as u64)
}

/// Fills `memory` with `owner`'s pattern.
pub fn fill(owner: u64, memory: &[AtomicU64]) {
    for (i, word) in memory.iter().enumerate() {
        word.store(pattern(owner, i), Ordering::Relaxed);
    }
}

/// One beat: checks `memory` against `owner`'s pattern, records the first word found
/// changed in `heartbeat` (and says so, once), and counts the beat.
pub fn beat(owner: u64, memory: &[AtomicU64], heartbeat: &Heartbeat) {
    let changed = memory
        .iter()
        .enumerate()
        .find(|(i, w)| w.load(Ordering::Relaxed) != pattern(owner, *i));
    if let Some((i, _)) = changed
        && heartbeat.changed.load(Ordering::Relaxed) == 0
    {
        heartbeat.changed.store(i as u64 + 1, Ordering::Relaxed);
        debug_println!("{}: memory changed at word {i}", pd_name().unwrap());
    }
    bump(&heartbeat.beats);
}

/// Bumps a shared counter.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// One system call, with every register the kernel reads and the IPC buffer's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    /// `x7`.
    pub number: i64,
    /// `x0`: a capability address.
    pub cap: u64,
    /// `x1`: the message tag.
    pub tag: u64,
    /// `x2`–`x5`.
    pub mrs: [u64; 4],
    /// `x6`: the reply capability.
    pub reply: u64,
    /// `x8`: NBSendRecv's send capability.
    pub send: u64,
    /// Words 4 and on of the message, written into the IPC buffer first.
    pub buffer: [u64; 8],
    /// How many of `buffer` to write.
    pub buffer_words: usize,
}

/// A deterministic stream of random numbers (SplitMix64).
pub struct Random(u64);

impl Random {
    /// The stream of call `index` of `seed`.
    pub fn for_call(seed: u64, index: u64) -> Self {
        Self(mix(seed ^ mix(index.wrapping_add(0xA5A5_A5A5))))
    }

    /// The next number.
    pub fn number(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.number() % n.max(1)
    }
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The system calls a PD can make, weighted: the non-blocking ones more often, the ones
/// that may block the fuzzer for good (a call on its own endpoint, a halt) rarely.
const NUMBERS: &[(i64, u64)] = &[
    (syscall::CALL, 30),
    (syscall::NB_SEND, 14),
    (syscall::SEND, 8),
    (syscall::NB_RECV, 10),
    (syscall::NB_WAIT, 10),
    (syscall::RECV, 3),
    (syscall::WAIT, 3),
    (syscall::REPLY_RECV, 3),
    (syscall::NB_SEND_RECV, 3),
    (syscall::NB_SEND_WAIT, 3),
    (syscall::YIELD, 4),
    (syscall::DEBUG_PUT_CHAR, 2),
    (syscall::DEBUG_HALT, 1),
];

/// Capability addresses a PD has in Microkit's layout (and a few it does not), weighted.
fn capability(r: &mut Random) -> u64 {
    match r.below(100) {
        0..=1 => u64::from(slot::INPUT), // its own endpoint: a call there blocks for good
        2..=9 => u64::from(slot::FAULT_ENDPOINT),
        10..=15 => u64::from(slot::VSPACE),
        16..=23 => u64::from(slot::REPLY),
        24..=43 => u64::from(slot::OUTPUT_NOTIFICATION) + r.below(4),
        44..=55 => u64::from(slot::OUTPUT_ENDPOINT) + r.below(2),
        56..=67 => u64::from(slot::CHILD_TCB) + r.below(2),
        68..=79 => r.below(u64::from(slot::CNODE_SLOTS)),
        80..=89 => r.below(1 << 16),
        _ => r.number(),
    }
}

/// An argument: mostly small (slot numbers, ids, sizes), sometimes anything.
fn arg(r: &mut Random) -> u64 {
    match r.below(10) {
        0..=4 => r.below(256),
        5..=6 => capability(r),
        7 => 1 << r.below(64),
        _ => r.number(),
    }
}

/// Call `index` of `seed`.
pub fn call(seed: u64, index: u64) -> Call {
    let mut r = Random::for_call(seed, index);
    let total: u64 = NUMBERS.iter().map(|(_, w)| w).sum();
    let mut at = r.below(total);
    let mut number = syscall::YIELD;
    for &(n, w) in NUMBERS {
        if at < w {
            number = n;
            break;
        }
        at -= w;
    }
    if r.below(50) == 0 {
        // An unknown number now and then.
        number = r.number() as i64;
    }
    let op = if r.below(4) == 0 {
        r.number() >> 12
    } else {
        r.below(label::DOORBELL_CONFIGURE + 2)
    };
    let length = if r.below(8) == 0 {
        r.below(128)
    } else {
        r.below(8)
    };
    let mut mrs = [0u64; 4];
    for m in &mut mrs {
        *m = arg(&mut r);
    }
    let mut buffer = [0u64; 8];
    for b in &mut buffer {
        *b = arg(&mut r);
    }
    let cap = if number == syscall::DEBUG_PUT_CHAR {
        // Printable output only, lines of about eighty characters.
        u64::from(if r.below(80) == 0 { b'\n' } else { b'.' })
    } else {
        capability(&mut r)
    };
    // Now and then bits past the length's, which the kernel must ignore.
    let stray = if r.below(16) == 0 {
        r.below(32) << 7
    } else {
        0
    };
    Call {
        number,
        cap,
        tag: syscall::MessageInfo::new(op, length).0 | stray,
        mrs,
        reply: if r.below(4) == 0 {
            capability(&mut r)
        } else {
            u64::from(slot::REPLY)
        },
        send: capability(&mut r),
        buffer_words: length.saturating_sub(4).min(8) as usize,
        buffer,
    }
}
