//! Board support: each board is data (memory map, devices, core clusters, QEMU machine)
//! plus the few drivers the loader and kernel need ([`uart`], [`gic`]), and the reader of
//! the device tree the firmware hands the loader ([`devicetree`]).
//!
//! Design principles: no `cfg` per board anywhere. Host tools pick a [`Board`] by name
//! ([`by_name`]); the loader is built for one board by its build script, which reads the
//! same table; the kernel gets everything it needs from its boot spec and links no board.
#![no_std]
// Nothing a thread, a peer replica, a device or the firmware controls may panic a kernel:
// outside the host tests, the constructs that can panic are refused (exceptions are marked
// `#[expect]` or `#[allow]` with their reason).
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

pub mod devicetree;
pub mod firmware;
pub mod gic;
pub mod uart;

use atoll_abi::memory_map::MemoryMap;
pub use atoll_abi::placement::GicDevice;
use atoll_abi::placement::Machine;
use atoll_abi::spec::{PhysRange, PsciConduit, UartKind};

/// A board.
#[derive(Debug)]
pub struct Board {
    /// Name used on the command line and in `system.xml` tooling (`--board`).
    pub name: &'static str,
    /// One line for humans.
    pub description: &'static str,
    /// The RAM Atoll uses.
    pub ram: PhysRange,
    /// Where the boot firmware (or QEMU) places the image, as an offset from `ram.base`
    /// (the arm64 Image `text_offset`).
    pub image_offset: u64,
    /// Bytes from `ram.base` kept for the boot stub, loader and image; replicas start above.
    pub boot_reserved: u64,
    /// MPIDR affinity of each core, by core index.
    pub cores: &'static [u64],
    /// The console UART.
    pub uart: UartDevice,
    /// The interrupt controller, which the `microkit` tool plans every image for.
    pub gic: GicDevice,
    /// Another interrupt controller the machine may have instead, at the same distributor
    /// address (QEMU's `virt` has a GICv2 unless `gic-version=3` is asked for). The loader
    /// reads the distributor's architecture version ([`gic::arch_version`]) and, finding
    /// this one, puts it in every replica's spec in place of [`Board::gic`].
    pub gic_alternative: Option<GicDevice>,
    /// Generic-timer PPI the kernel uses (the EL1 virtual timer).
    pub timer_intid: u32,
    /// PSCI conduit when entered at EL1.
    pub psci_at_el1: PsciConduit,
    /// PSCI conduit when entered at EL2.
    pub psci_at_el2: PsciConduit,
    /// Default replica layout: the cores of each replica.
    pub default_clusters: &'static [&'static [u32]],
    /// How to emulate the board.
    pub qemu: QemuMachine,
}

/// The console UART of a board.
#[derive(Debug, Clone, Copy)]
pub struct UartDevice {
    /// Model.
    pub kind: UartKind,
    /// Physical base.
    pub base: u64,
    /// Bytes of registers.
    pub size: u64,
    /// Interrupt id.
    pub intid: u32,
}

/// QEMU options for a board.
#[derive(Debug, Clone, Copy)]
pub struct QemuMachine {
    /// `-machine` value.
    pub machine: &'static str,
    /// `-cpu` value, when the machine has a choice.
    pub cpu: Option<&'static str>,
    /// `-m` value.
    pub memory: &'static str,
    /// `-smp` value, when the machine has a choice.
    pub smp: Option<u32>,
    /// Further options.
    pub extra: &'static [&'static str],
    /// Which of the machine's serial ports (QEMU's `-serial` options, in order) is the
    /// board's console UART; the runner connects the ones before it to `null`.
    pub console_serial: usize,
}

/// QEMU `virt` with GICv3 (or its default GICv2) and four Cortex-A53 cores.
pub const QEMU_VIRT_AARCH64: Board = Board {
    name: "qemu_virt_aarch64",
    description: "QEMU virt machine, GICv3 or GICv2, 4 x Cortex-A53, 1 GiB",
    ram: PhysRange {
        base: 0x4000_0000,
        size: 0x4000_0000,
    },
    image_offset: 0x8_0000,
    boot_reserved: 0x100_0000,
    cores: &[0, 1, 2, 3],
    uart: UartDevice {
        kind: UartKind::Pl011,
        base: 0x0900_0000,
        size: 0x1000,
        intid: 33,
    },
    gic: GicDevice {
        version: 3,
        distributor: PhysRange {
            base: 0x0800_0000,
            size: 0x1_0000,
        },
        cpu: PhysRange {
            base: 0x080A_0000,
            size: 4 * 0x2_0000,
        },
        // QEMU virt's 256 shared interrupts, and 32 per-core ones.
        lines: 288,
    },
    // `virt` without `gic-version=3` (Microkit's QEMU command line, for one): a GICv2 with
    // the same distributor (4 KiB of registers) and the same 288 lines, and the CPU interface
    // at 0x0801_0000 (8 KiB).
    gic_alternative: Some(GicDevice {
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
    }),
    timer_intid: 27,
    psci_at_el1: PsciConduit::Hvc,
    psci_at_el2: PsciConduit::Smc,
    default_clusters: &[&[0], &[1], &[2, 3]],
    qemu: QemuMachine {
        machine: "virt,gic-version=3",
        cpu: Some("cortex-a53"),
        memory: "1G",
        smp: Some(4),
        extra: &[],
        console_serial: 0,
    },
};

/// Xilinx ZCU102 (ZynqMP): GIC-400, four Cortex-A53 cores, Cadence UART.
pub const ZCU102: Board = Board {
    name: "zcu102",
    description: "Xilinx ZCU102 (ZynqMP), GICv2, 4 x Cortex-A53, 2 GiB low DDR",
    ram: PhysRange {
        base: 0x0,
        size: 0x8000_0000,
    },
    image_offset: 0x8_0000,
    boot_reserved: 0x100_0000,
    cores: &[0, 1, 2, 3],
    uart: UartDevice {
        kind: UartKind::Cadence,
        base: 0xFF00_0000,
        size: 0x1000,
        intid: 53,
    },
    gic: GicDevice {
        version: 2,
        distributor: PhysRange {
            base: 0xF901_0000,
            size: 0x1000,
        },
        cpu: PhysRange {
            base: 0xF902_0000,
            size: 0x2000,
        },
        // The ZynqMP GIC-400's 160 shared interrupts (QEMU's xlnx-zcu102 has the same).
        lines: 192,
    },
    gic_alternative: None,
    timer_intid: 27,
    psci_at_el1: PsciConduit::Smc,
    psci_at_el2: PsciConduit::Smc,
    default_clusters: &[&[0], &[1], &[2, 3]],
    qemu: QemuMachine {
        machine: "xlnx-zcu102",
        cpu: None,
        memory: "2G",
        smp: None,
        extra: &["-audio", "none"],
        console_serial: 0,
    },
};

/// NXP i.MX 8M Plus EVK: GICv3, four Cortex-A53 cores, i.MX UART.
pub const IMX8MP_EVK: Board = Board {
    name: "imx8mp_evk",
    description: "NXP i.MX 8M Plus EVK, GICv3, 4 x Cortex-A53, 2 GiB",
    ram: PhysRange {
        base: 0x4000_0000,
        size: 0x8000_0000,
    },
    image_offset: 0x8_0000,
    boot_reserved: 0x100_0000,
    cores: &[0, 1, 2, 3],
    // The EVK's console (the debug USB port's first channel, where U-Boot and TF-A print)
    // is UART2, not UART1: the i.MX 8M Plus reference manual's memory map puts it at
    // 0x3089_0000, and its interrupt is shared peripheral interrupt 27 (INTID 59), as in
    // QEMU's `fsl-imx8mp` (FSL_IMX8MP_UART2, FSL_IMX8MP_UART2_IRQ) and Linux's device tree.
    uart: UartDevice {
        kind: UartKind::Imx,
        base: 0x3089_0000,
        size: 0x1_0000,
        intid: 59,
    },
    gic: GicDevice {
        version: 3,
        distributor: PhysRange {
            base: 0x3880_0000,
            size: 0x1_0000,
        },
        cpu: PhysRange {
            base: 0x3888_0000,
            size: 4 * 0x2_0000,
        },
        // The i.MX 8M Plus's 160 shared interrupts (QEMU's imx8mp-evk has the same).
        lines: 192,
    },
    gic_alternative: None,
    timer_intid: 27,
    psci_at_el1: PsciConduit::Smc,
    psci_at_el2: PsciConduit::Smc,
    default_clusters: &[&[0], &[1], &[2, 3]],
    qemu: QemuMachine {
        machine: "imx8mp-evk",
        cpu: None,
        memory: "2G",
        // The machine creates only as many cores as -smp asks for (default 1).
        smp: Some(4),
        extra: &[],
        // QEMU hands its serial back-ends to the UARTs in order (`serial_hd(i)` to UART
        // i + 1 in `fsl-imx8mp.c`): the console, UART2, is the second `-serial`, as QEMU's
        // own documentation of the machine boots it (`-serial null -serial stdio`).
        console_serial: 1,
    },
};

impl Board {
    /// The machine as the image checks (`atoll_kernel_core::loadcheck`) see it: this
    /// board with interrupt controller `gic` (one of [`Board::gics`]), with the loader's code
    /// and data at `loader_code` (its start to `__loader_end`), booting on core 0, its memory
    /// the board's RAM with nothing reserved. The loader and the tool both build it here;
    /// the loader then puts in the core it finds itself on and, given a device tree, the
    /// memory the firmware reports.
    pub const fn machine(&self, loader_code: PhysRange, gic: GicDevice) -> Machine {
        Machine {
            ram: self.ram,
            loader: PhysRange {
                base: loader_code.base,
                size: self.boot_reserved.saturating_sub(self.image_offset),
            },
            loader_code,
            cores: self.cores.len(),
            boot_core: 0,
            gic,
            memory: MemoryMap::of_ram(self.ram),
        }
    }

    /// The interrupt controllers the machine may have: [`Board::gic`], then the alternative.
    pub fn gics(&self) -> impl Iterator<Item = &GicDevice> {
        core::iter::once(&self.gic).chain(&self.gic_alternative)
    }

    /// The interrupt controller of architecture version `version` (as the distributor
    /// reports it), if the board allows one.
    pub fn gic_of_version(&self, version: u32) -> Option<&GicDevice> {
        self.gics().find(|g| g.version == version)
    }
}

/// Every supported board; the first is the default.
pub const BOARDS: &[&Board] = &[&QEMU_VIRT_AARCH64, &ZCU102, &IMX8MP_EVK];

/// Looks a board up by name.
pub fn by_name(name: &str) -> Option<&'static Board> {
    BOARDS.iter().copied().find(|b| b.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boards_are_consistent() {
        for board in BOARDS {
            assert!(by_name(board.name).is_some());
            assert_eq!(
                board.ram.base % 0x20_0000,
                0,
                "{}: RAM not 2 MiB aligned",
                board.name
            );
            assert!(board.boot_reserved > board.image_offset);
            let mut seen = 0u64;
            for cluster in board.default_clusters {
                assert!(!cluster.is_empty());
                for &core in *cluster {
                    assert!(
                        (core as usize) < board.cores.len(),
                        "{}: core {core}",
                        board.name
                    );
                    assert_eq!(
                        seen & (1 << core),
                        0,
                        "{}: core {core} in two clusters",
                        board.name
                    );
                    seen |= 1 << core;
                }
            }
            assert!(!board.uart_overlaps_ram());
            // The loader finds the alternative by reading the one distributor's version.
            if let Some(alternative) = &board.gic_alternative {
                assert_eq!(alternative.distributor.base, board.gic.distributor.base);
                assert_ne!(alternative.version, board.gic.version);
            }
            for gic in board.gics() {
                assert!(matches!(gic.version, 2 | 3), "{}", board.name);
                assert_eq!(board.gic_of_version(gic.version), Some(gic));
            }
        }
        assert!(by_name("nonesuch").is_none());
    }

    #[test]
    fn virt_has_gicv3_or_gicv2_and_the_others_one_gic() {
        let virt = &QEMU_VIRT_AARCH64;
        assert_eq!(
            virt.gic_of_version(3).map(|g| g.cpu.base),
            Some(0x080A_0000)
        );
        assert_eq!(
            virt.gic_of_version(2).map(|g| g.cpu.base),
            Some(0x0801_0000)
        );
        assert!(virt.gic_of_version(4).is_none());
        assert!(ZCU102.gic_of_version(3).is_none());
        assert!(IMX8MP_EVK.gic_of_version(2).is_none());
        assert_eq!(ZCU102.gics().count(), 1);
    }

    impl Board {
        fn uart_overlaps_ram(&self) -> bool {
            PhysRange {
                base: self.uart.base,
                size: self.uart.size,
            }
            .overlaps(&self.ram)
        }
    }
}
