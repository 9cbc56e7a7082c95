//! A machine and replica specs to check images against in host tests: this crate's
//! placement tests and the kernel core's image-check tests (feature `fixtures` outside this
//! crate's tests). Three replicas of 64 MiB each fit above the shared area.
#![allow(
    clippy::arithmetic_side_effects,
    reason = "test fixtures of small constants"
)]

use crate::memory_map::MemoryMap;
use crate::placement::{GicDevice, Machine};
use crate::spec::{DeviceWindow, PhysRange, ReplicaSpec, layout};

/// A mebibyte.
pub const MIB: u64 = 0x10_0000;
/// 1 GiB of RAM at 1 GiB, the loader at +512 KiB, four cores booting on core 0, and a
/// GICv3 of 288 lines (QEMU's virt machine).
pub const MACHINE: Machine = Machine {
    ram: PhysRange {
        base: 0x4000_0000,
        size: 0x4000_0000,
    },
    loader: PhysRange {
        base: 0x4008_0000,
        size: 0xF8_0000,
    },
    loader_code: PhysRange {
        base: 0x4008_0000,
        size: 0x2_0000,
    },
    cores: 4,
    boot_core: 0,
    gic: GICV3,
    memory: MemoryMap::of_ram(PhysRange {
        base: 0x4000_0000,
        size: 0x4000_0000,
    }),
};
/// QEMU virt's GICv3: 288 lines, redistributors for four cores.
pub const GICV3: GicDevice = GicDevice {
    version: 3,
    distributor: PhysRange {
        base: 0x0800_0000,
        size: 0x1_0000,
    },
    cpu: PhysRange {
        base: 0x080A_0000,
        size: 0x8_0000,
    },
    lines: 288,
};
/// QEMU virt's GICv2 (its default): the same distributor, a CPU interface.
pub const GICV2: GicDevice = GicDevice {
    version: 2,
    distributor: PhysRange {
        base: 0x0800_0000,
        size: 0x1000,
    },
    cpu: PhysRange {
        base: 0x0801_0000,
        size: 0x2000,
    },
    lines: 288,
};
/// The shared area (2 MiB).
pub const SHARED: u64 = 0x4100_0000;
/// Where each replica's spec goes in its RAM.
pub const SPEC_OFFSET: u64 = 0x1_0000;

/// Replica `replica`'s 64 MiB of RAM.
pub fn ram_of(replica: u32) -> PhysRange {
    PhysRange {
        base: 0x4200_0000 + u64::from(replica) * 64 * MIB,
        size: 64 * MIB,
    }
}

/// Where the kernel maps the GIC's distributor and its CPU interface or redistributors.
pub const GIC_VA: [u64; 2] = [
    layout::DEVICE_BASE,
    layout::DEVICE_BASE + layout::DEVICE_SLOT,
];

/// A valid spec of replica `replica` of `count`, on core `replica`, with [`MACHINE`]'s GIC
/// and without kernel mappings.
pub fn spec(replica: u32, count: u32) -> ReplicaSpec {
    let mut spec = ReplicaSpec::new_zeroed();
    spec.replica = replica;
    spec.replica_count = count;
    spec.core_mask = 1 << replica;
    spec.tick_hz = 100;
    spec.gic.version = GICV3.version;
    let window = |range: PhysRange, va: u64| DeviceWindow {
        kind: 0,
        intid: 0,
        pa: range.base,
        va,
        size: range.size,
    };
    spec.gic.distributor = window(GICV3.distributor, GIC_VA[0]);
    spec.gic.cpu = window(GICV3.cpu, GIC_VA[1]);
    spec.ram = ram_of(replica);
    spec.tables_offset = 0x2_0000;
    spec.tables_size = 0x2_0000;
    spec.free_offset = 2 * MIB;
    spec.shared.pa = SHARED;
    spec.shared.size = 2 * MIB;
    spec
}
