//! `atoll-coreclock`: a QEMU TCG plugin that times the real-time job's releases on its
//! core's own clock.
//!
//! Under `-icount`, QEMU's virtual clock advances with the instructions of every core, run
//! one after another on one host thread. A release timed on it (the job's start less its
//! deadline) therefore also holds the instructions other cores ran while the job's core
//! waited for its turn, or ran between its own: time no real machine would add. This plugin
//! keeps a clock per core instead: the instructions that core executed (one per virtual
//! nanosecond under `-icount shift=0`). A core halted in `wfi` wakes at its interrupt's
//! deadline with no instruction spent, so on that clock a release costs what the core itself
//! executes from the interrupt's entry to the job's start: the kernel's path and whatever
//! else the core was made to do (a foreign interrupt, a lock spin), and nothing of the
//! emulator's.
//!
//! Each release is found by three points (`atoll_abi::marks`):
//! 1. the core starts on an interrupt: the first instruction it executes after a `wfi`
//!    (where the kernel waits, with interrupts masked), or an IRQ entry of the kernel's
//!    exception vectors (their address is the `vectors` argument; every replica's kernel
//!    runs at the same virtual address);
//! 2. the kernel's `RELEASE_TAKEN` mark, when the interrupt is the PD timer's: the release
//!    started at the core's last such start;
//! 3. the real-time PD's `JOB_START` mark.
//!
//! For every `JOB_START`, in order, the plugin appends one little-endian `u32` to the file
//! named by its `out` argument: the core's instructions from the release's IRQ entry to the
//! job's start, or `u32::MAX` when no release was seen on that core since its last job.
//! The bench (`xtask/src/bench_rt.rs`) slices the file by the job's windows.
//!
//! Usage: `-plugin path/to/libatoll_coreclock.so,vectors=0xffffffff80000800,out=FILE`.
//!
//! The plugin is built against QEMU's plugin API version 4 (QEMU 9.2 and 10.0), whose
//! functions QEMU's binary exports; the few it calls are declared in [`ffi`].

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use atoll_abi::marks::{JOB_START, RELEASE_TAKEN, hint_encoding};

/// The A64 encoding of `wfi`.
pub const WFI: u32 = 0xd503_207f;

/// Offsets of the four IRQ entries in an AArch64 vector table: from EL1 with SP_EL0, from
/// EL1 with SP_ELx, from EL0 in AArch64, from EL0 in AArch32 (Arm ARM, "Exception vectors").
pub const IRQ_VECTOR_OFFSETS: [u64; 4] = [0x080, 0x280, 0x480, 0x680];

/// vCPUs the plugin keeps a clock for (QEMU's `virt` machine has at most 512; Atoll's
/// boards have 4). Blocks of higher vCPUs are not counted.
pub const MAX_VCPUS: usize = 64;

/// A release's progress on one core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoreClock {
    /// The core's instruction count when it last started on an interrupt, not yet matched
    /// with a release.
    entry_at: Option<u64>,
    /// The count at the IRQ entry of the PD timer's interrupt not yet matched with a job.
    release_at: Option<u64>,
}

impl CoreClock {
    /// The core started on an interrupt (it woke, or entered an IRQ vector) with `count`
    /// instructions executed.
    pub fn entry(&mut self, count: u64) {
        self.entry_at = Some(count);
    }

    /// The kernel found the interrupt is the PD timer's: a release started at the core's
    /// last start on an interrupt (if it saw none since the last release, the release is
    /// not timed).
    pub fn release_taken(&mut self) {
        self.release_at = self.entry_at.take();
    }

    /// The job started with `count` instructions executed: the instructions since its
    /// release's entry, once per release.
    pub fn job_start(&mut self, count: u64) -> Option<u64> {
        self.release_at
            .take()
            .map(|entry| count.saturating_sub(entry))
    }
}

/// What one instrumented instruction is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// An IRQ entry of the kernel's vectors.
    Entry = 1,
    /// The kernel's `RELEASE_TAKEN` mark.
    ReleaseTaken = 2,
    /// The real-time PD's `JOB_START` mark.
    JobStart = 3,
    /// A `wfi`: the core halts until an interrupt; the next instruction it executes starts
    /// it on that interrupt.
    Halt = 4,
}

impl Point {
    /// The point an instruction at `vaddr` with encoding `word` (if it is 4 bytes) is, with
    /// the kernel's vectors at `vectors`.
    #[must_use]
    pub fn of(vaddr: u64, word: Option<u32>, vectors: u64) -> Option<Point> {
        if IRQ_VECTOR_OFFSETS
            .iter()
            .any(|&o| vectors.checked_add(o) == Some(vaddr))
        {
            return Some(Point::Entry);
        }
        match word {
            Some(WFI) => Some(Point::Halt),
            Some(w) if w == hint_encoding(RELEASE_TAKEN) => Some(Point::ReleaseTaken),
            Some(w) if w == hint_encoding(JOB_START) => Some(Point::JobStart),
            _ => None,
        }
    }

    fn from_tag(tag: usize) -> Option<Point> {
        [
            Point::Entry,
            Point::ReleaseTaken,
            Point::JobStart,
            Point::Halt,
        ]
        .into_iter()
        .find(|p| *p as usize == tag)
    }
}

/// One record of the output file for a job's start: the release's instructions, or
/// `u32::MAX` if none was seen (or it does not fit).
#[must_use]
pub fn record(release: Option<u64>) -> [u8; 4] {
    release
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(u32::MAX)
        .to_le_bytes()
}

/// Reads an output file's records (a trailing partial record is dropped).
#[must_use]
pub fn read_records(bytes: &[u8]) -> Vec<Option<u32>> {
    bytes
        .chunks_exact(4)
        .map(|c| {
            let v = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            (v != u32::MAX).then_some(v)
        })
        .collect()
}

/// The arguments QEMU passes (`name=value` each).
#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    /// The kernel's exception vectors' virtual address.
    pub vectors: u64,
    /// The output file.
    pub out: String,
}

impl Args {
    /// Parses `vectors=0x…` and `out=…`.
    ///
    /// # Errors
    /// A message naming the missing or malformed argument.
    pub fn parse<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<Args, String> {
        let (mut vectors, mut out) = (None, None);
        for arg in args {
            match arg.split_once('=') {
                Some(("vectors", v)) => {
                    let hex = v.strip_prefix("0x").unwrap_or(v);
                    vectors = Some(
                        u64::from_str_radix(hex, 16).map_err(|e| format!("vectors={v}: {e}"))?,
                    );
                }
                Some(("out", v)) if !v.is_empty() => out = Some(v.to_string()),
                _ => return Err(format!("unknown argument {arg:?}")),
            }
        }
        Ok(Args {
            vectors: vectors.ok_or("missing vectors=0x<address>")?,
            out: out.ok_or("missing out=<file>")?,
        })
    }
}

/// QEMU's plugin API, as far as this plugin uses it (`include/qemu/qemu-plugin.h`, API
/// version 4). Handles are opaque; enums are C `int`s.
pub mod ffi {
    use std::ffi::{c_char, c_int, c_uint, c_void};

    /// A plugin's identifier.
    pub type PluginId = u64;

    /// `QEMU_PLUGIN_CB_NO_REGS`.
    pub const CB_NO_REGS: c_int = 0;

    /// `qemu_plugin_vcpu_tb_trans_cb_t`.
    pub type TbTransCb = extern "C" fn(PluginId, *mut c_void);
    /// `qemu_plugin_vcpu_udata_cb_t`.
    pub type VcpuUdataCb = extern "C" fn(c_uint, *mut c_void);
    /// `qemu_plugin_udata_cb_t`.
    pub type UdataCb = extern "C" fn(PluginId, *mut c_void);

    // SAFETY: these are QEMU's exported plugin functions with the signatures of its header
    // at API version 4; QEMU resolves them when it loads the plugin.
    unsafe extern "C" {
        /// Calls `cb` for every translation block translated.
        pub fn qemu_plugin_register_vcpu_tb_trans_cb(id: PluginId, cb: TbTransCb);
        /// Instructions in a block.
        pub fn qemu_plugin_tb_n_insns(tb: *const c_void) -> usize;
        /// A block's instruction `idx`.
        pub fn qemu_plugin_tb_get_insn(tb: *const c_void, idx: usize) -> *mut c_void;
        /// An instruction's virtual address.
        pub fn qemu_plugin_insn_vaddr(insn: *const c_void) -> u64;
        /// Copies up to `len` bytes of an instruction's encoding; returns how many.
        pub fn qemu_plugin_insn_data(insn: *const c_void, dest: *mut c_void, len: usize) -> usize;
        /// Calls `cb` each time the instruction executes.
        pub fn qemu_plugin_register_vcpu_insn_exec_cb(
            insn: *mut c_void,
            cb: VcpuUdataCb,
            flags: c_int,
            userdata: *mut c_void,
        );
        /// Calls `cb` when QEMU exits.
        pub fn qemu_plugin_register_atexit_cb(id: PluginId, cb: UdataCb, userdata: *mut c_void);
        /// Writes a line to QEMU's log.
        pub fn qemu_plugin_outs(string: *const c_char);
    }
}

/// The plugin's state, from `qemu_plugin_install` on.
struct Plugin {
    /// Each vCPU's instructions executed, by vCPU index.
    counts: Vec<AtomicU64>,
    /// Each vCPU halted in a `wfi` it has not yet left.
    halted: Vec<AtomicBool>,
    /// The kernel's vectors.
    vectors: u64,
    /// Each vCPU's release in progress.
    cores: Mutex<Vec<CoreClock>>,
    /// The output file.
    out: Mutex<File>,
}

static PLUGIN: OnceLock<Plugin> = OnceLock::new();

/// The plugin API version this plugin is built for (QEMU refuses one outside its range).
#[unsafe(no_mangle)]
#[allow(
    non_upper_case_globals,
    reason = "QEMU looks the symbol up by this name"
)]
pub static qemu_plugin_version: c_int = 4;

fn say(message: &str) {
    if let Ok(line) = CString::new(format!("atoll-coreclock: {message}\n")) {
        // SAFETY: a NUL-terminated string that lives across the call.
        unsafe { ffi::qemu_plugin_outs(line.as_ptr()) };
    }
}

/// QEMU's entry point: parses the arguments, opens the output and registers the translation
/// callback.
///
/// # Safety
/// Called by QEMU once, with `argv` holding `argc` NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qemu_plugin_install(
    id: ffi::PluginId,
    _info: *const c_void,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    let count = usize::try_from(argc).unwrap_or(0);
    let mut strings = Vec::with_capacity(count);
    for i in 0..count {
        // SAFETY: QEMU passes `argc` valid pointers to NUL-terminated strings.
        let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
        strings.push(arg.to_string_lossy().into_owned());
    }
    let args = match Args::parse(strings.iter().map(String::as_str)) {
        Ok(args) => args,
        Err(e) => {
            say(&e);
            return 1;
        }
    };
    let out = match File::create(&args.out) {
        Ok(f) => f,
        Err(e) => {
            say(&format!("cannot create {}: {e}", args.out));
            return 1;
        }
    };
    let plugin = Plugin {
        counts: (0..MAX_VCPUS).map(|_| AtomicU64::new(0)).collect(),
        halted: (0..MAX_VCPUS).map(|_| AtomicBool::new(false)).collect(),
        vectors: args.vectors,
        cores: Mutex::new(vec![CoreClock::default(); MAX_VCPUS]),
        out: Mutex::new(out),
    };
    if PLUGIN.set(plugin).is_err() {
        say("installed twice");
        return 1;
    }
    // SAFETY: QEMU's functions, with callbacks of the declared types.
    unsafe {
        ffi::qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
        ffi::qemu_plugin_register_atexit_cb(id, on_exit, std::ptr::null_mut());
    }
    0
}

/// Instruments a block: every instruction adds one to its vCPU's count as it executes
/// ([`on_instruction`]); the release's points also call [`on_point`], after it.
///
/// Why a callback per instruction, the slow way:
/// - An inline add per instruction (QEMU's fast way) makes QEMU 10.0 abort under `-icount`
///   (`arm_mmu_idx_el: code should not be reached`, from a system register write's flags
///   rebuild), and so does an inline add per block.
/// - A count per block, added as the block starts, is not exact under `-icount`: a block
///   whose device access is not its last instruction is rewound to that access, which then
///   runs as a block of its own without instrumentation (QEMU's `cpu_io_recompile`), and
///   the rest of the block runs again. The kernel's interrupt path reads the interrupt
///   controller mid-block, so that path's counts came out wrong.
///
/// Per instruction, a rewound block has counted exactly the instructions it ran, the
/// device access included (its callback runs before it), and the access's own block
/// counts nothing.
extern "C" fn on_translate(_id: ffi::PluginId, tb: *mut c_void) {
    let Some(plugin) = PLUGIN.get() else { return };
    // SAFETY: `tb` is the block QEMU is translating, valid during this callback.
    let n = unsafe { ffi::qemu_plugin_tb_n_insns(tb) };
    for i in 0..n {
        // SAFETY: `i` is below the block's instruction count.
        let insn = unsafe { ffi::qemu_plugin_tb_get_insn(tb, i) };
        let mut bytes = [0u8; 4];
        // SAFETY: `insn` is valid during this callback; `bytes` holds 4 bytes.
        let (vaddr, len) = unsafe {
            (
                ffi::qemu_plugin_insn_vaddr(insn),
                ffi::qemu_plugin_insn_data(insn, bytes.as_mut_ptr().cast(), bytes.len()),
            )
        };
        let word = (len == 4).then(|| u32::from_le_bytes(bytes));
        // SAFETY: QEMU's function on an instruction of the block being translated, with
        // callbacks of the declared type; the user data is a tag, never dereferenced.
        unsafe {
            ffi::qemu_plugin_register_vcpu_insn_exec_cb(
                insn,
                on_instruction,
                ffi::CB_NO_REGS,
                std::ptr::null_mut(),
            );
            if let Some(point) = Point::of(vaddr, word, plugin.vectors) {
                ffi::qemu_plugin_register_vcpu_insn_exec_cb(
                    insn,
                    on_point,
                    ffi::CB_NO_REGS,
                    point as usize as *mut c_void,
                );
            }
        }
    }
}

/// An instruction is about to execute on vCPU `vcpu`; the first after a `wfi` starts the
/// core on an interrupt.
extern "C" fn on_instruction(vcpu: c_uint, _udata: *mut c_void) {
    let Some(plugin) = PLUGIN.get() else { return };
    let index = vcpu as usize;
    let Some(count) = plugin.counts.get(index) else {
        return;
    };
    let count = count.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
    if plugin
        .halted
        .get(index)
        .is_some_and(|h| h.swap(false, Ordering::Relaxed))
        && let Ok(mut cores) = plugin.cores.lock()
        && let Some(core) = cores.get_mut(index)
    {
        core.entry(count);
    }
}

/// A release's point executed on vCPU `vcpu`.
extern "C" fn on_point(vcpu: c_uint, tag: *mut c_void) {
    let (Some(plugin), Some(point)) = (PLUGIN.get(), Point::from_tag(tag as usize)) else {
        return;
    };
    let Some(count) = plugin.counts.get(vcpu as usize) else {
        return;
    };
    let count = count.load(Ordering::Relaxed);
    let Ok(mut cores) = plugin.cores.lock() else {
        return;
    };
    let index = vcpu as usize;
    if cores.len() <= index {
        cores.resize(index + 1, CoreClock::default());
    }
    let Some(core) = cores.get_mut(index) else {
        return;
    };
    match point {
        Point::Entry => core.entry(count),
        Point::Halt => {
            if let Some(h) = plugin.halted.get(index) {
                h.store(true, Ordering::Relaxed);
            }
        }
        Point::ReleaseTaken => core.release_taken(),
        Point::JobStart => {
            let release = core.job_start(count);
            drop(cores);
            if let Ok(mut out) = plugin.out.lock()
                && out.write_all(&record(release)).is_err()
            {
                say("cannot write a record");
            }
        }
    }
}

extern "C" fn on_exit(_id: ffi::PluginId, _userdata: *mut c_void) {
    if let Some(plugin) = PLUGIN.get()
        && let Ok(out) = plugin.out.lock()
    {
        let _ = out.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: u64 = 0xffff_ffff_8000_0800;

    #[test]
    fn a_release_is_timed_from_its_interrupts_entry_to_the_jobs_start() {
        let mut c = CoreClock::default();
        c.entry(1_000); // the kernel's own tick, say
        c.entry(5_000);
        c.release_taken();
        assert_eq!(c.job_start(5_700), Some(700));
        // Once per release.
        assert_eq!(c.job_start(6_000), None);
        // A release with no start on an interrupt since the last is not timed from a stale
        // one.
        c.release_taken();
        assert_eq!(c.job_start(7_000), None);
    }

    #[test]
    fn an_interrupt_after_the_release_is_the_jobs_cost_not_a_new_start() {
        let mut c = CoreClock::default();
        c.entry(5_000);
        c.release_taken();
        c.entry(5_300); // a foreign interrupt before the job starts
        assert_eq!(c.job_start(6_000), Some(1_000));
    }

    #[test]
    fn a_job_without_a_release_has_no_figure() {
        let mut c = CoreClock::default();
        c.entry(5_000);
        assert_eq!(c.job_start(6_000), None);
        assert_eq!(read_records(&record(None)), vec![None]);
    }

    #[test]
    fn points_are_found_by_vector_address_and_mark_encoding() {
        for offset in IRQ_VECTOR_OFFSETS {
            assert_eq!(
                Point::of(VECTORS + offset, None, VECTORS),
                Some(Point::Entry)
            );
        }
        // A synchronous exception's entry is not an interrupt's.
        assert_eq!(Point::of(VECTORS + 0x400, None, VECTORS), None);
        assert_eq!(
            Point::of(0x1000, Some(hint_encoding(RELEASE_TAKEN)), VECTORS),
            Some(Point::ReleaseTaken)
        );
        assert_eq!(
            Point::of(0x1000, Some(hint_encoding(JOB_START)), VECTORS),
            Some(Point::JobStart)
        );
        assert_eq!(Point::of(0x1000, Some(WFI), VECTORS), Some(Point::Halt));
        assert_eq!(Point::of(0x1000, Some(hint_encoding(0)), VECTORS), None);
        assert_eq!(Point::of(u64::MAX, None, u64::MAX - 0x80 + 1), None);
        for p in [
            Point::Entry,
            Point::ReleaseTaken,
            Point::JobStart,
            Point::Halt,
        ] {
            assert_eq!(Point::from_tag(p as usize), Some(p));
        }
        assert_eq!(Point::from_tag(0), None);
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_dropped() {
        let mut bytes = Vec::new();
        for r in [Some(700), None, Some(u64::from(u32::MAX) + 5), Some(0)] {
            bytes.extend(record(r));
        }
        bytes.push(7);
        assert_eq!(read_records(&bytes), vec![Some(700), None, None, Some(0)]);
    }

    #[test]
    fn arguments_are_checked() {
        assert_eq!(
            Args::parse(["vectors=0xffffffff80000800", "out=/tmp/x"]),
            Ok(Args {
                vectors: VECTORS,
                out: "/tmp/x".into()
            })
        );
        assert!(Args::parse(["out=/tmp/x"]).unwrap_err().contains("vectors"));
        assert!(Args::parse(["vectors=0x800"]).unwrap_err().contains("out"));
        assert!(
            Args::parse(["vectors=zz", "out=a"])
                .unwrap_err()
                .contains("zz")
        );
        assert!(Args::parse(["speed=11"]).unwrap_err().contains("speed"));
    }
}
