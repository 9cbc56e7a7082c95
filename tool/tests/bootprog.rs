//! Boot programs replayed on the kernel's portable core, exactly as a replica's initialiser
//! replays them: every invocation must succeed and every PD must end up started, with the
//! untyped memory the kernel would hand out (disjoint, device blocks over kept memory).
#![forbid(unsafe_code)]

use std::path::Path;

use atoll_abi::bootprog::pd_flags;
use atoll_abi::bootprog::{BootProgram, untyped_flags};
use atoll_abi::error::Error;
use atoll_abi::object::ObjectKind;
use atoll_abi::spec::PhysRange;
use atoll_abi::syscall::label;
use atoll_abi::syscall::{self, MessageInfo};
use atoll_kernel_core::cap::Cap;
use atoll_kernel_core::id::{SlotId, ThreadId};
use atoll_kernel_core::ipc::ThreadState;
use atoll_kernel_core::kernel::fake::FakeMachine;
use atoll_kernel_core::kernel::{Context, InitialiserBoot, Kernel, Machine};
use atoll_tool::plan::{ImagePlacement, Plan};

const BOARD: &atoll_boards::Board = &atoll_boards::QEMU_VIRT_AARCH64;

/// The kernel core's fake machine as the boot program needs it: every page exists and starts
/// zeroed, every interrupt may be claimed, and there are as many channel words as the
/// kernels' shared region holds.
fn machine() -> FakeMachine {
    let mut m = FakeMachine::default();
    let words = atoll_abi::shared::pd_words::count(atoll_abi::limits::LARGE_PAGE_SIZE);
    m.words = vec![0; words as usize];
    m
}

/// The reference system planned as packing plans it, with every program two pages at
/// the usual link address, placed after the replica's objects.
fn reference() -> Plan {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/examples/sdf_reference.xml");
    let text = std::fs::read_to_string(path).expect("fixture");
    let checked = atoll_tool::check(&text, BOARD, false);
    let system = checked.system.expect("a valid system");
    let program = (0x20_0000, 0x20_2000);
    let mut plan =
        atoll_tool::plan::plan_with_prefills(&system, &text, BOARD, &|_| None, &|_| Some(program))
            .expect("a plan");
    for replica in &mut plan.replicas {
        // As packing does: programs start on the page after the objects.
        let objects_end = replica.ram.base + replica.ram.size - replica.free_bytes;
        let mut next = objects_end.next_multiple_of(0x1000);
        for pd in &mut replica.protection_domains {
            pd.image = Some(ImagePlacement {
                phys_addr: next,
                size: 0x2000,
                entry: 0x20_0000,
                segments: vec![
                    (0x20_0000, 0x800, "r-x".into()),
                    (0x20_1000, 0x100, "rw-".into()),
                ],
            });
            next += 0x2000;
        }
        replica.free_bytes -= next - objects_end;
    }
    plan
}

/// Boots an initialiser holding `program`'s untyped blocks, as the kernel does.
fn boot(program: &BootProgram<'_>, boot_pages: u64) -> (Box<Kernel>, FakeMachine, u64) {
    let mut k = Box::new(Kernel::new());
    let layout = InitialiserBoot {
        cnode: boot_pages,
        tcb: boot_pages + 0x8000,
        vspace: boot_pages + 0x9000,
        sched_context: boot_pages + 0xA000,
        ipc_buffer: boot_pages + 0xB000,
        budget: 1_000_000,
        priority: 255,
        ctx: Context::default(),
    };
    let untyped = program.untyped().iter().map(|u| Cap::Untyped {
        base: u.base,
        size_bits: u.size_bits as u8,
        watermark: 0,
        device: u.flags & untyped_flags::DEVICE != 0,
    });
    k.boot_initialiser(&layout, untyped).unwrap();
    (k, machine(), layout.ipc_buffer)
}

/// The root thread invokes `cap` as the initialiser does.
fn invoke(
    k: &mut Kernel,
    m: &mut FakeMachine,
    ipc: u64,
    cap: u64,
    op: u64,
    args: &[u64],
) -> Option<Error> {
    let root = k.current().expect("the root thread runs");
    let ctx = k.context_mut(root).unwrap();
    ctx.x[0] = cap;
    ctx.x[1] = MessageInfo::new(op, args.len() as u64).0;
    ctx.x[7] = syscall::CALL as u64;
    for (i, &a) in args.iter().enumerate() {
        if i < 4 {
            ctx.x[2 + i] = a;
        }
    }
    for (i, &a) in args.iter().enumerate().skip(4) {
        m.page(ipc).unwrap()[syscall::ipc_buffer::MR0 + i] = a;
    }
    k.syscall(m);
    if let Some((thread, label, _)) = m.unhandled.first() {
        panic!("thread {thread:?} faulted with no handler: {label}");
    }
    let c = k.context(root).unwrap();
    Error::from_raw(MessageInfo(c.x[1]).label() as u32)
}

#[test]
fn every_replica_of_the_reference_system_replays_its_boot_program() {
    let plan = reference();
    let mut made_passive = 0;
    for replica in &plan.replicas {
        let end = replica.ram.base + replica.ram.size;
        let bytes = atoll_tool::plan::bootprog::generate(&plan, replica, end - 0x1_0000)
            .unwrap_or_else(|e| panic!("replica {}: {e}", replica.name));
        // Keep the bytes 8-byte aligned, as the loader's page is.
        let words: Vec<u64> = bytes
            .chunks(8)
            .map(|c| {
                let mut w = [0u8; 8];
                w[..c.len()].copy_from_slice(c);
                u64::from_le_bytes(w)
            })
            .collect();
        let aligned = &zerocopy::IntoBytes::as_bytes(words.as_slice())[..bytes.len()];
        let program = BootProgram::parse(aligned).expect("the program parses");
        assert_eq!(program.pds().len(), replica.protection_domains.len());

        // The untyped blocks are disjoint; ordinary ones lie in the replica's RAM past the
        // kernel's reserve.
        let ranges: Vec<(PhysRange, bool)> = program
            .untyped()
            .iter()
            .map(|u| {
                let r = PhysRange {
                    base: u.base,
                    size: 1 << u.size_bits,
                };
                (r, u.flags & untyped_flags::DEVICE != 0)
            })
            .collect();
        let ram = PhysRange {
            base: replica.ram.base,
            size: replica.ram.size,
        };
        for (i, (a, device)) in ranges.iter().enumerate() {
            assert!(
                *device || ram.contains(a),
                "{a:?} outside the replica's RAM"
            );
            for (b, _) in &ranges[..i] {
                assert!(!a.overlaps(b), "untyped {a:?} overlaps {b:?}");
            }
        }

        let (mut k, mut m, ipc) = boot(&program, replica.ram.base + 0x10_0000);
        for (step, inv) in program.invocations().iter().enumerate() {
            let args = &inv.args[..inv.length as usize];
            if let Some(e) = invoke(&mut k, &mut m, ipc, inv.cap, u64::from(inv.label), args) {
                panic!(
                    "replica {}: step {step} {inv:?} failed: {e:?}",
                    replica.name
                );
            }
        }
        for pd in program.pds() {
            let Cap::Object {
                kind: ObjectKind::Tcb,
                data,
                ..
            } = k.cap(SlotId::from_data(pd.tcb).expect("a slot"))
            else {
                panic!("PD {}: slot {} holds no TCB", pd.name(), pd.tcb);
            };
            let thread = ThreadId::from_data(data).expect("a thread");
            assert_ne!(
                k.thread_state(thread),
                ThreadState::Inactive,
                "PD {} was not started",
                pd.name()
            );
            assert_eq!(k.context(thread).unwrap().pc, 0x20_0000);
        }
        // What the monitor does when a passive PD reports that its init is done: its
        // scheduling context moves from its thread to its notification.
        for pd in program
            .pds()
            .iter()
            .filter(|pd| pd.flags & pd_flags::PASSIVE != 0)
        {
            for (op, object) in [
                (label::SCHED_CONTEXT_UNBIND_OBJECT, pd.tcb),
                (label::SCHED_CONTEXT_BIND, pd.notification),
            ] {
                if let Some(e) = invoke(&mut k, &mut m, ipc, pd.sc, op, &[object]) {
                    panic!("PD {}: making it passive failed: {e:?}", pd.name());
                }
            }
            made_passive += 1;
        }
    }
    assert!(made_passive > 0, "the reference system has a passive PD");
}
