//! Boot programs replayed on the kernel's portable core, exactly as a replica's initialiser
//! replays them: every invocation must succeed and every PD must end up started, with the
//! untyped memory the kernel would hand out (disjoint, device blocks over kept memory).
#![forbid(unsafe_code)]

use std::path::Path;

use atoll_abi::bootprog::pd_flags;
use atoll_abi::bootprog::{BootProgram, Pd, untyped_flags};
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
use atoll_kernel_core::pagetable::{self, Root, TableMemory};
use atoll_tool::plan::{ImagePlacement, Plan, ReplicaPlan};

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
    plan_of(&std::fs::read_to_string(path).expect("fixture"))
}

/// A system description planned as packing plans it, with every program two pages at the
/// usual link address, placed after the replica's objects.
fn plan_of(text: &str) -> Plan {
    let checked = atoll_tool::check(text, BOARD, false);
    let system = checked.system.expect("a valid system");
    let program = (0x20_0000, 0x20_2000);
    let mut plan =
        atoll_tool::plan::plan_with_prefills(&system, text, BOARD, &|_| None, &|_| Some(program))
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
        // Every core: the tool's own checks keep each PD's core inside its replica.
        cores: 0xff,
        min_budget: 0,
        ctx: Context::default(),
    };
    let untyped = program.untyped().iter().map(|u| Cap::Untyped {
        base: u.base,
        size_bits: u.size_bits as u8,
        watermark: 0,
        device: u.flags & untyped_flags::DEVICE != 0,
        read_only: u.flags & untyped_flags::READ_ONLY != 0,
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

/// A replica's boot program as packing generates it, in 8-byte words (aligned as the
/// loader's page is), and its length in bytes.
fn generate(plan: &Plan, replica: &ReplicaPlan) -> (Vec<u64>, usize) {
    let end = replica.ram.base + replica.ram.size;
    let bytes = atoll_tool::plan::bootprog::generate(plan, replica, end - 0x1_0000)
        .unwrap_or_else(|e| panic!("replica {}: {e}", replica.name));
    let words = bytes
        .chunks(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            u64::from_le_bytes(w)
        })
        .collect();
    (words, bytes.len())
}

/// A replica's boot program, generated as packing does, checked (its untyped blocks are
/// disjoint, and ordinary ones lie in the replica's RAM) and replayed on the kernel's core as
/// the initialiser does: the kernel after it, its machine, the root's IPC buffer and the
/// program's PDs.
fn replay(plan: &Plan, replica: &ReplicaPlan) -> (Box<Kernel>, FakeMachine, u64, Vec<Pd>) {
    let (words, length) = generate(plan, replica);
    let aligned = &zerocopy::IntoBytes::as_bytes(words.as_slice())[..length];
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
    (k, m, ipc, program.pds().to_vec())
}

#[test]
fn every_replica_of_the_reference_system_replays_its_boot_program() {
    let plan = reference();
    let mut made_passive = 0;
    for replica in &plan.replicas {
        let (mut k, mut m, ipc, pds) = replay(&plan, replica);
        for pd in &pds {
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
        for pd in pds.iter().filter(|pd| pd.flags & pd_flags::PASSIVE != 0) {
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

/// The fake machine's pages as translation tables, to walk a PD's address space.
struct Walker<'a>(&'a mut FakeMachine);

impl TableMemory for Walker<'_> {
    fn alloc_table(&mut self) -> Option<u64> {
        None
    }

    fn table(&mut self, pa: u64) -> &mut [u64; 512] {
        self.0.page(pa).expect("a table in RAM")
    }
}

/// Mappings anywhere below the stack of the 1 TiB user address space, as Microkit accepts
/// them: a 2 MiB region at 512 GiB (where a Microkit driver may put its DMA buffer), one in
/// the low 512 GiB and a page that ends at the stack's bottom. The boot program maps them
/// all, and the stack and IPC buffer at the top of the space.
#[test]
fn a_pd_maps_across_the_whole_user_address_space() {
    let plan = plan_of(
        r#"<system>
  <memory_region name="dma" size="0x200_000" page_size="0x200_000" />
  <memory_region name="low" size="0x1000" />
  <memory_region name="high" size="0x1000" />
  <protection_domain name="driver">
    <program_image path="driver.elf" />
    <map mr="dma" vaddr="0x80_0000_0000" perms="rw" />
    <map mr="low" vaddr="0x1000_0000" perms="rw" />
    <map mr="high" vaddr="0xff_ffff_b000" perms="r" />
  </protection_domain>
</system>"#,
    );
    let replica = &plan.replicas[0];
    let (mut k, mut m, _, pds) = replay(&plan, replica);
    let Cap::Object { data, .. } = k.cap(SlotId::from_data(pds[0].tcb).expect("a slot")) else {
        panic!("no TCB");
    };
    let thread = ThreadId::from_data(data).expect("a thread");
    let (root, _) = k
        .address_space(thread)
        .expect("the PD has an address space");
    let root = Root::user(root);
    let maps = &replica.protection_domains[0].maps;
    assert_eq!(pds[0].stack_top, 0xff_ffff_e000);
    for map in maps {
        let pa = pagetable::translate(&mut Walker(&mut m), root, map.vaddr + map.size - 8);
        let pa = pa.unwrap_or_else(|| panic!("{} at {:#x} is not mapped", map.what, map.vaddr));
        if let Some(expected) = map.phys_addr {
            assert_eq!(pa.0, expected + map.size - 8, "{}", map.what);
        }
    }
    assert_eq!(maps.iter().filter(|m| m.phys_addr.is_some()).count(), 3);
    let vaddrs: Vec<(&str, u64)> = maps.iter().map(|m| (m.what.as_str(), m.vaddr)).collect();
    assert_eq!(
        vaddrs,
        [
            ("dma", 0x80_0000_0000),
            ("low", 0x1000_0000),
            ("high", 0xff_ffff_b000),
            ("stack", 0xff_ffff_c000),
            ("ipc_buffer", 0xff_ffff_f000),
        ]
    );
    assert_eq!(
        pagetable::translate(&mut Walker(&mut m), root, 0xff_ffff_e000),
        None,
        "the guard page between the stack and the IPC buffer"
    );
}

/// A PD with `smc="true"` gets a copy of the replica's SMC capability when the boot
/// program is replayed (the original stays with the initialiser); one without gets none.
#[test]
fn the_boot_program_gives_an_smc_pd_the_firmware_capability() {
    let plan = plan_of(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/examples/smc.xml"),
        )
        .expect("fixture"),
    );
    let (k, _, _, pds) = replay(&plan, &plan.replicas[0]);
    assert_eq!(pds.len(), 2);
    let smc_caps = (0..)
        .map_while(SlotId::from_data)
        .filter(|&s| {
            matches!(
                k.cap(s),
                Cap::Object {
                    kind: ObjectKind::Smc,
                    ..
                }
            )
        })
        .count();
    assert_eq!(smc_caps, 2, "the initialiser's and one PD's");
}

/// The domain example's boot program: each PD's thread is put in its domain once it is
/// configured, the schedule's entries are written (shifted, with units, and the end
/// marker), the PDs are started, and the schedule is started last at its start entry.
#[test]
fn the_boot_program_sets_domains_and_starts_the_schedule_last() {
    use atoll_abi::syscall::{domains, initial};
    let plan = plan_of(include_str!("fixtures/examples/domains.xml"));
    let replica = &plan.replicas[0];
    let (words, length) = generate(&plan, replica);
    let bytes = &zerocopy::IntoBytes::as_bytes(words.as_slice())[..length];
    let program = BootProgram::parse(bytes).expect("the program parses");
    let calls: Vec<(u64, u64, &[u64])> = program
        .invocations()
        .iter()
        .map(|i| (i.cap, u64::from(i.label), &i.args[..i.length as usize]))
        .collect();
    let position = |cap: u64, op: u64| calls.iter().position(|c| (c.0, c.1) == (cap, op));
    let on_domain_set = |op: u64| -> Vec<&[u64]> {
        calls
            .iter()
            .filter(|c| (c.0, c.1) == (initial::DOMAIN_SET, op))
            .map(|c| c.2)
            .collect()
    };
    let pds = program.pds();
    let ids = [1, 2, 2]; // emitter, collector, logger
    let set = on_domain_set(label::DOMAIN_SET_SET);
    assert_eq!(set.len(), 3);
    for ((pd, id), args) in pds.iter().zip(ids).zip(&set) {
        assert_eq!(*args, [id, pd.tcb], "PD {}", pd.name());
        let configured = position(pd.tcb, label::TCB_CONFIGURE).expect("configured");
        let domain = calls
            .iter()
            .position(|c| c.2 == *args && c.1 == label::DOMAIN_SET_SET)
            .expect("set");
        let started = position(pd.tcb, label::TCB_WRITE_REGISTERS).expect("started");
        assert!(configured < domain && domain < started, "PD {}", pd.name());
    }
    let (us, ticks) = (domains::MICROSECONDS, domains::COUNTER_TICKS);
    assert_eq!(
        on_domain_set(label::DOMAIN_SET_SCHEDULE_CONFIGURE),
        [
            &[0, 0, 2000, us][..],
            &[1, 1, 8000, us],
            &[2, 2, 125_000, ticks],
            &[3, 0, 1000, us],
            &[4, 0, 0, us],
        ]
    );
    let last = calls.last().expect("invocations");
    assert_eq!(
        *last,
        (
            initial::DOMAIN_SET,
            label::DOMAIN_SET_SCHEDULE_START,
            &[1][..]
        )
    );
    assert_eq!(on_domain_set(label::DOMAIN_SET_SCHEDULE_START).len(), 1);
}

/// The domain example replayed: every invocation succeeds, and once the schedule is
/// started its turns decide who runs: the emitter's domain first (the start entry), then
/// the collector's, then domain 0's, where the initialiser goes on as the monitor, and then
/// the start entry again after the end marker.
#[test]
fn a_replayed_domain_schedule_gives_each_domain_its_turns() {
    let plan = plan_of(include_str!("fixtures/examples/domains.xml"));
    let (mut k, _, _, pds) = replay(&plan, &plan.replicas[0]);
    let thread = |name: &str| {
        let pd = pds.iter().find(|pd| pd.name() == name).expect("a PD");
        let Cap::Object { data, .. } = k.cap(SlotId::from_data(pd.tcb).expect("a slot")) else {
            panic!("PD {name} has no TCB");
        };
        ThreadId::from_data(data).expect("a thread")
    };
    let (emitter, collector, logger) = (thread("emitter"), thread("collector"), thread("logger"));
    assert_eq!(k.current(), Some(emitter), "the start entry: domain 1");
    // The fake machine counts one tick per microsecond; the replay ran at time 0.
    let at = |k: &mut Kernel, now: u64| {
        let core = k.core();
        k.enter(core, now);
        k.timer();
    };
    at(&mut k, 8000);
    let now = k.current();
    assert!(
        now == Some(collector) || now == Some(logger),
        "domain 2's turn: {now:?}"
    );
    at(&mut k, 133_000);
    let monitor = k.current().expect("domain 0's turn runs the initialiser");
    assert!(![emitter, collector, logger].contains(&monitor));
    at(&mut k, 134_000);
    assert_eq!(
        k.current(),
        Some(emitter),
        "after the end marker, the start entry"
    );
}

/// A shifted schedule (`index_shift="7"`, `start_index="2"`) replays too, and starts at the
/// kernel's entry 9: the turn of `b`'s domain.
#[test]
fn a_shifted_domain_schedule_starts_at_its_shifted_start_entry() {
    let plan = plan_of(include_str!(
        "fixtures/e102_schedule_start_at_end_marker/accept.xml"
    ));
    assert_eq!(
        plan.replicas[0].domain_schedule.as_ref().map(|s| s.start),
        Some(9)
    );
    let (k, _, _, pds) = replay(&plan, &plan.replicas[0]);
    let b = pds.iter().find(|pd| pd.name() == "b").expect("PD b");
    let Cap::Object { data, .. } = k.cap(SlotId::from_data(b.tcb).expect("a slot")) else {
        panic!("PD b has no TCB");
    };
    assert_eq!(k.current(), ThreadId::from_data(data));
}

/// Every PD's scheduling context is configured for the PD's core, an absolute board core of
/// its replica: `cpu` when given, the replica's first core for a PD that names only its
/// replica, the parent's core for a child that names neither. A passive PD's context is
/// configured the same way (it later moves to the PD's notification, core and all). The
/// programs still replay.
#[test]
fn the_boot_program_configures_each_scheduling_context_for_its_pds_core() {
    let plan = plan_of(
        r#"<system>
  <replica name="io" cores="0" />
  <replica name="storage" cores="2-3" />
  <protection_domain name="io" priority="150" replica="io">
    <program_image path="io.elf" />
  </protection_domain>
  <protection_domain name="fs" priority="100" replica="storage">
    <program_image path="fs.elf" />
  </protection_domain>
  <protection_domain name="blk" priority="120" budget="500" period="2000" cpu="3">
    <program_image path="blk.elf" />
    <protection_domain name="drv" priority="110" id="0">
      <program_image path="drv.elf" />
    </protection_domain>
  </protection_domain>
  <protection_domain name="cache" priority="130" replica="storage" cpu="3" passive="true">
    <program_image path="cache.elf" />
  </protection_domain>
  <channel>
    <end pd="fs" id="0" pp="true" />
    <end pd="cache" id="0" />
  </channel>
</system>"#,
    );
    let mut configured = Vec::new();
    let mut cores = Vec::new();
    for replica in &plan.replicas {
        let (words, length) = generate(&plan, replica);
        let bytes = &zerocopy::IntoBytes::as_bytes(words.as_slice())[..length];
        let program = BootProgram::parse(bytes).expect("the program parses");
        for pd in program.pds() {
            let calls: Vec<&[u64]> = program
                .invocations()
                .iter()
                .filter(|i| u64::from(i.label) == label::SCHED_CONTROL_CONFIGURE)
                .map(|i| &i.args[..i.length as usize])
                .filter(|args| args.first() == Some(&pd.sc))
                .collect();
            let [args] = calls[..] else {
                panic!("PD {}: {} configurations", pd.name(), calls.len());
            };
            configured.push((pd.name().to_string(), args[1..].to_vec()));
            // The monitor's record: the PD's core, and where its `init` runs.
            cores.push((pd.name().to_string(), pd.core, pd.init_core));
        }
        replay(&plan, replica);
    }
    configured.sort();
    let expected = [
        ("blk", [500, 2000, 3]),
        // Passive: its `init` runs on the replica's first core, beside the monitor.
        ("cache", [1000, 1000, 2]),
        ("drv", [1000, 1000, 3]),
        ("fs", [1000, 1000, 2]),
        ("io", [1000, 1000, 0]),
    ];
    let expected: Vec<(String, Vec<u64>)> = expected
        .iter()
        .map(|(name, args)| (name.to_string(), args.to_vec()))
        .collect();
    assert_eq!(configured, expected);
    cores.sort();
    assert_eq!(
        cores,
        [
            ("blk".to_string(), 3, 3),
            ("cache".to_string(), 3, 2),
            ("drv".to_string(), 3, 3),
            ("fs".to_string(), 2, 2),
            ("io".to_string(), 0, 0),
        ]
    );
}

/// The status page (`device="atoll_status"`) in each replica that maps it: its frame comes
/// from a one-page device block over the first page of the kernel shared area (never zeroed,
/// only frames are made from it), the boot program maps it read-only and cached, and the
/// replayed PD's translation is normal, inner-shareable, write-back memory, read-only and
/// never executable, like any read-only RAM mapping (not device memory: the kernels write
/// the page with normal stores).
#[test]
fn the_status_page_is_mapped_read_only_as_normal_memory() {
    use atoll_abi::spec::attrs;
    use atoll_abi::syscall::{rights, vm_attr};
    use atoll_kernel_core::pagetable::desc;
    let plan = plan_of(include_str!("fixtures/examples/status_page.xml"));
    let base = plan.kernel_shared.base;
    assert_eq!(base, 0x4100_0000);
    for replica in &plan.replicas {
        let (words, length) = generate(&plan, replica);
        let bytes = &zerocopy::IntoBytes::as_bytes(words.as_slice())[..length];
        let program = BootProgram::parse(bytes).expect("the program parses");
        let block = program
            .untyped()
            .iter()
            .find(|u| u.base == base)
            .expect("a block over the status page");
        assert_eq!(block.size_bits, 12, "one page, replica {}", replica.name);
        assert_ne!(block.flags & untyped_flags::DEVICE, 0);
        // The kernel makes read-only frames of it, whatever a boot program asks.
        assert_ne!(block.flags & untyped_flags::READ_ONLY, 0);
        let maps: Vec<&[u64]> = program
            .invocations()
            .iter()
            .filter(|i| u64::from(i.label) == label::FRAME_MAP && i.args[1] == 0x1000_0000)
            .map(|i| &i.args[..i.length as usize])
            .collect();
        assert_eq!(maps.len(), 1, "replica {}", replica.name);
        assert_eq!(maps[0][2..], [rights::READ, vm_attr::CACHED]);

        let (mut k, mut m, _, pds) = replay(&plan, replica);
        let Cap::Object { data, .. } = k.cap(SlotId::from_data(pds[0].tcb).expect("a slot")) else {
            panic!("no TCB");
        };
        let thread = ThreadId::from_data(data).expect("a thread");
        let (root, _) = k.address_space(thread).expect("an address space");
        let (pa, bits) = pagetable::translate(&mut Walker(&mut m), Root::user(root), 0x1000_0040)
            .expect("the status page is mapped");
        assert_eq!(pa, base + 0x40);
        let leaf = desc::VALID | desc::TABLE_OR_PAGE;
        assert_eq!(bits & !leaf, pagetable::descriptor_bits(attrs::USER));
        assert_eq!(bits & desc::ATTR_DEVICE, desc::ATTR_NORMAL);
        assert_ne!(bits & desc::READ_ONLY, 0);
    }
}

/// Every PD's thread is named with its index in the system directory (its record in the
/// status page's PD table) once it is configured and before it is started. The reference
/// system lists `uart` first but runs it on the second replica, and has a child (`plugin`):
/// the indices follow the directory (replicas in order, children included), not the
/// document. Replayed, the kernel publishes each PD `starting`, then `running`.
#[test]
fn the_boot_program_names_every_pd_with_its_directory_index() {
    use atoll_abi::shared::PdState;
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/examples/sdf_reference.xml");
    let text = std::fs::read_to_string(path).expect("fixture");
    let system = atoll_tool::check(&text, BOARD, false)
        .system
        .expect("a valid system");
    let directory = atoll_tool::plan::directory::encode(&system).expect("a directory");
    let plan = reference();
    let mut named = Vec::new();
    for replica in &plan.replicas {
        let (words, length) = generate(&plan, replica);
        let bytes = &zerocopy::IntoBytes::as_bytes(words.as_slice())[..length];
        let program = BootProgram::parse(bytes).expect("the program parses");
        let calls: Vec<(u64, u64, &[u64])> = program
            .invocations()
            .iter()
            .map(|i| (i.cap, u64::from(i.label), &i.args[..i.length as usize]))
            .collect();
        let position = |cap: u64, op: u64| calls.iter().position(|c| (c.0, c.1) == (cap, op));
        let mut indices = Vec::new();
        for pd in program.pds() {
            let at = position(pd.tcb, label::TCB_SET_STATUS_INDEX).expect("named");
            let configured = position(pd.tcb, label::TCB_CONFIGURE).expect("configured");
            let started = position(pd.tcb, label::TCB_WRITE_REGISTERS).expect("started");
            assert!(configured < at && at < started, "PD {}", pd.name());
            let &[index] = calls[at].2 else {
                panic!("PD {}: {:?}", pd.name(), calls[at]);
            };
            let listed = &directory.pds[index as usize];
            assert_eq!(listed.name(), pd.name());
            assert_eq!(listed.replica as usize, replica.index);
            let planned = replica
                .protection_domains
                .iter()
                .find(|p| p.name == pd.name())
                .expect("planned");
            assert_eq!(u64::from(planned.status_index), index);
            indices.push(index as u32);
            named.push((index, pd.name().to_string()));
        }
        let names = calls
            .iter()
            .filter(|c| c.1 == label::TCB_SET_STATUS_INDEX)
            .count();
        assert_eq!(names, program.pds().len(), "one name each");

        let (_, m, _, _) = replay(&plan, replica);
        let starting = indices.iter().map(|&i| (i, PdState::Starting, 0));
        let running = indices.iter().map(|&i| (i, PdState::Running, 0));
        let expected: Vec<(u32, PdState, u32)> = starting.chain(running).collect();
        assert_eq!(m.published, expected, "replica {}", replica.name);
    }
    named.sort();
    let expected: Vec<(u64, String)> = [(0, "kv"), (1, "app"), (2, "plugin"), (3, "uart")]
        .map(|(i, n)| (i, n.to_string()))
        .into();
    assert_eq!(named, expected);
    assert_eq!(directory.pd_count, 4);
}
