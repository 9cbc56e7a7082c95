//! A machine and replica specs to check images against in host tests: this crate's
//! placement tests and the kernel core's image-check tests (feature `fixtures` outside this
//! crate's tests). Three replicas of 64 MiB each fit above the shared area.
#![allow(
    clippy::arithmetic_side_effects,
    reason = "test fixtures of small constants"
)]

use crate::placement::Machine;
use crate::spec::{PhysRange, ReplicaSpec};

/// A mebibyte.
pub const MIB: u64 = 0x10_0000;
/// 1 GiB of RAM at 1 GiB, the loader at +512 KiB, four cores booting on core 0, and a
/// GIC of 288 lines (QEMU's virt machine).
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
    irq_lines: 288,
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

/// A valid spec of replica `replica` of `count`, on core `replica`, without kernel mappings.
pub fn spec(replica: u32, count: u32) -> ReplicaSpec {
    let mut spec = ReplicaSpec::new_zeroed();
    spec.replica = replica;
    spec.replica_count = count;
    spec.core_mask = 1 << replica;
    spec.tick_hz = 100;
    spec.gic.version = 3;
    spec.ram = ram_of(replica);
    spec.tables_offset = 0x2_0000;
    spec.tables_size = 0x2_0000;
    spec.free_offset = 2 * MIB;
    spec.shared.pa = SHARED;
    spec.shared.size = 2 * MIB;
    spec
}
