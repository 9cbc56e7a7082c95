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
    /// Devices a system description may name (`<memory_region device="…">`,
    /// `<irq device="…">`), so that one description serves every board.
    pub devices: &'static [Device],
    /// Names that stand for one of [`Board::devices`] by role, the same on every board
    /// (`disk0`: the disk the storage replica keeps its data on), as `(alias, device)`.
    pub aliases: &'static [(&'static str, &'static str)],
}

/// A device of a board that driver PDs use: its register block and its interrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Device {
    /// Name a system description uses (`net0`, `blk0`, `sd1`), unique on the board.
    pub name: &'static str,
    /// The device's programming model, which says which driver it needs.
    pub kind: DeviceKind,
    /// The register block, exactly (not rounded to pages).
    pub regs: PhysRange,
    /// GIC interrupt id (a shared peripheral interrupt: SPI number + 32).
    pub intid: u32,
    /// How the interrupt is signalled.
    pub trigger: Trigger,
}

/// Programming model of a [`Device`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// A virtio-mmio transport (version 2), whatever virtio device sits behind it.
    VirtioMmio,
    /// Cadence GEM Ethernet MAC (the ZynqMP's GEM).
    CadenceGem,
    /// NXP ENET Ethernet MAC (QEMU's `imx.enet`).
    ImxEnet,
    /// SD Host Controller Interface with the standard register set (QEMU's `generic-sdhci`).
    Sdhci,
    /// NXP uSDHC SD/MMC controller (QEMU's `imx-usdhc`): SDHCI-like, with its own registers.
    ImxUsdhc,
}

/// How a device signals its interrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Level-sensitive.
    Level,
    /// Edge-triggered (rising).
    Edge,
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
    devices: &[QEMU_VIRT_NET0, QEMU_VIRT_BLK0],
    aliases: &[("disk0", "blk0")],
};

/// `qemu_virt_aarch64`'s `net0`: the virtio-mmio transport at 0x0a00_3e00, QEMU's
/// `virtio-mmio-bus.31`, the highest of `virt`'s 32 transports (0x0a00_0000 + 0x200 × n),
/// which QEMU gives the first `-device virtio-*-device` on the command line that names no
/// bus: the runner's `virtio-net-device`. Its interrupt is SPI 47 (SPI 16 + n), edge
/// rising as `virt`'s device tree declares it. Checked against QEMU 10.0's `virt` (its
/// `dumpdtb` and `info qtree`).
pub const QEMU_VIRT_NET0: Device = Device {
    name: "net0",
    kind: DeviceKind::VirtioMmio,
    regs: PhysRange {
        base: 0x0A00_3E00,
        size: 0x200,
    },
    intid: 32 + 47,
    trigger: Trigger::Edge,
};

/// `qemu_virt_aarch64`'s `blk0`: the virtio-mmio transport at 0x0a00_2e00, QEMU's
/// `virtio-mmio-bus.23`: the runner places its `virtio-blk-device` there explicitly
/// (`bus=virtio-mmio-bus.23`), so that the disk never shares a 4 KiB page with the NIC
/// (which takes `virtio-mmio-bus.31`, [`QEMU_VIRT_NET0`]) and so a driver mapping one
/// cannot reach the other. Its interrupt is SPI 39, edge rising. Checked against QEMU
/// 10.0's `virt` (its `dumpdtb` and `info qtree`).
pub const QEMU_VIRT_BLK0: Device = Device {
    name: "blk0",
    kind: DeviceKind::VirtioMmio,
    regs: PhysRange {
        base: 0x0A00_2E00,
        size: 0x200,
    },
    intid: 32 + 39,
    trigger: Trigger::Edge,
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
    devices: &[ZCU102_NET0, ZCU102_SD0, ZCU102_SD1],
    // The board's SD card slot.
    aliases: &[("disk0", "sd1")],
};

/// `zcu102`'s `net0`: GEM3, the Cadence GEM wired to the board's Ethernet port, at
/// 0xff0e_0000 (4 KiB in the ZynqMP's address map; QEMU models its first 0x800 bytes), SPI
/// 63, level (both of its queue interrupts arrive on that one line). QEMU gives its NICs to
/// GEM0 to GEM3 in order, so GEM3 is the fourth `-net nic`. Checked against QEMU 10.0's
/// `xlnx-zcu102` (`info qtree`, and `qom-get` of the GEM's interrupt line into the GIC).
pub const ZCU102_NET0: Device = Device {
    name: "net0",
    kind: DeviceKind::CadenceGem,
    regs: PhysRange {
        base: 0xFF0E_0000,
        size: 0x1000,
    },
    intid: 32 + 63,
    trigger: Trigger::Level,
};

/// `zcu102`'s `sd0`: the ZynqMP's SD0 controller (an SDHCI) at 0xff16_0000 (4 KiB in the
/// address map; QEMU models 0x100 bytes), SPI 48, level; QEMU's `-drive if=sd,index=0`.
/// Checked against QEMU 10.0's `xlnx-zcu102`.
pub const ZCU102_SD0: Device = Device {
    name: "sd0",
    kind: DeviceKind::Sdhci,
    regs: PhysRange {
        base: 0xFF16_0000,
        size: 0x1000,
    },
    intid: 32 + 48,
    trigger: Trigger::Level,
};

/// `zcu102`'s `sd1`: the ZynqMP's SD1 controller at 0xff17_0000, the board's SD card
/// slot, SPI 49, level; QEMU's `-drive if=sd,index=1`. Checked against QEMU 10.0's
/// `xlnx-zcu102`.
pub const ZCU102_SD1: Device = Device {
    name: "sd1",
    kind: DeviceKind::Sdhci,
    regs: PhysRange {
        base: 0xFF17_0000,
        size: 0x1000,
    },
    intid: 32 + 49,
    trigger: Trigger::Level,
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
    devices: &[IMX8MP_NET0, IMX8MP_SD0, IMX8MP_SD1, IMX8MP_SD2],
    // The EVK's SD card slot.
    aliases: &[("disk0", "sd1")],
};

/// `imx8mp_evk`'s `net0`: ENET1, the i.MX 8M Plus's FEC-style MAC, at 0x30be_0000 (64 KiB
/// in the SoC's memory map; QEMU models 16 KiB), its MAC interrupt SPI 118, level. (ENET1
/// has three more lines, SPI 119 to 121, for its extra queues and timer; QEMU models only
/// the timer's, SPI 121, and raises the MAC's events on it too. A driver needs SPI 118.)
/// QEMU's `imx8mp-evk` has only this NIC and gives it the first `-nic`. Checked against
/// QEMU 10.0's `imx8mp-evk` (`info qtree`, and `qom-get` of the MAC's interrupt line into
/// the GIC).
pub const IMX8MP_NET0: Device = Device {
    name: "net0",
    kind: DeviceKind::ImxEnet,
    regs: PhysRange {
        base: 0x30BE_0000,
        size: 0x1_0000,
    },
    intid: 32 + 118,
    trigger: Trigger::Level,
};

/// `imx8mp_evk`'s `sd0`: uSDHC1 at 0x30b4_0000 (64 KiB in the memory map; QEMU models
/// 0x100 bytes), SPI 22, level; the EVK wires it to its Wi-Fi module's SDIO. QEMU's
/// `-drive if=sd,bus=0`. Checked against QEMU 10.0's `imx8mp-evk`.
pub const IMX8MP_SD0: Device = Device {
    name: "sd0",
    kind: DeviceKind::ImxUsdhc,
    regs: PhysRange {
        base: 0x30B4_0000,
        size: 0x1_0000,
    },
    intid: 32 + 22,
    trigger: Trigger::Level,
};

/// `imx8mp_evk`'s `sd1`: uSDHC2 at 0x30b5_0000, the EVK's SD card slot, SPI 23, level;
/// QEMU's `-drive if=sd,bus=1`. Checked against QEMU 10.0's `imx8mp-evk`.
pub const IMX8MP_SD1: Device = Device {
    name: "sd1",
    kind: DeviceKind::ImxUsdhc,
    regs: PhysRange {
        base: 0x30B5_0000,
        size: 0x1_0000,
    },
    intid: 32 + 23,
    trigger: Trigger::Level,
};

/// `imx8mp_evk`'s `sd2`: uSDHC3 at 0x30b6_0000, the EVK's eMMC, SPI 24, level; QEMU's
/// `-drive if=sd,bus=2`. Checked against QEMU 10.0's `imx8mp-evk`.
pub const IMX8MP_SD2: Device = Device {
    name: "sd2",
    kind: DeviceKind::ImxUsdhc,
    regs: PhysRange {
        base: 0x30B6_0000,
        size: 0x1_0000,
    },
    intid: 32 + 24,
    trigger: Trigger::Level,
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

    /// The device called `name` ([`Board::devices`]), or that the alias `name` stands for
    /// ([`Board::aliases`]), if the board has one.
    pub fn device(&self, name: &str) -> Option<&'static Device> {
        let name = self
            .aliases
            .iter()
            .find(|(alias, _)| *alias == name)
            .map_or(name, |(_, device)| *device);
        self.devices.iter().find(|d| d.name == name)
    }
}

/// Every supported board; the first is the default.
pub const BOARDS: &[&Board] = &[&QEMU_VIRT_AARCH64, &ZCU102, &IMX8MP_EVK];

/// The device, on any of the boards Atoll knows, whose register block starts in the 4 KiB
/// page at `paddr`: how a driver PD that is given a page of registers (a description's
/// `<memory_region device="…">`) finds what it drives, so that one program serves every
/// board. `None` for a page no board's device table has.
pub fn device_in_page(paddr: u64) -> Option<&'static Device> {
    let page = paddr & !0xFFF;
    BOARDS
        .iter()
        .flat_map(|board| board.devices.iter())
        .find(|device| device.regs.base & !0xFFF == page)
}

/// Looks a board up by name.
pub fn by_name(name: &str) -> Option<&'static Board> {
    BOARDS.iter().copied().find(|b| b.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_board_has_a_disk0_and_no_alias_hides_a_device() {
        for board in BOARDS {
            let disk = board.device("disk0").expect(board.name);
            assert!(
                matches!(
                    disk.kind,
                    DeviceKind::VirtioMmio | DeviceKind::Sdhci | DeviceKind::ImxUsdhc
                ),
                "{}",
                board.name
            );
            for (alias, device) in board.aliases {
                assert!(board.devices.iter().all(|d| d.name != *alias), "{alias}");
                assert!(board.devices.iter().any(|d| d.name == *device), "{device}");
            }
        }
        assert_eq!(QEMU_VIRT_AARCH64.device("disk0"), Some(&QEMU_VIRT_BLK0));
        assert_eq!(ZCU102.device("disk0"), Some(&ZCU102_SD1));
        assert_eq!(IMX8MP_EVK.device("disk0"), Some(&IMX8MP_SD1));
    }

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

    #[test]
    fn devices_are_consistent() {
        for board in BOARDS {
            for (i, device) in board.devices.iter().enumerate() {
                let name = (board.name, device.name);
                assert_eq!(board.device(device.name), Some(device), "{name:?}");
                assert!(device.regs.size > 0, "{name:?}");
                // A shared peripheral interrupt the board's interrupt controllers have.
                for gic in board.gics() {
                    assert!((32..gic.lines).contains(&device.intid), "{name:?}");
                }
                assert_ne!(device.intid, board.uart.intid, "{name:?}");
                assert!(!device.regs.overlaps(&board.ram), "{name:?}");
                let uart = PhysRange {
                    base: board.uart.base,
                    size: board.uart.size,
                };
                assert!(!device.regs.overlaps(&uart), "{name:?}");
                for gic in board.gics() {
                    assert!(!device.regs.overlaps(&gic.distributor), "{name:?}");
                    assert!(!device.regs.overlaps(&gic.cpu), "{name:?}");
                }
                for other in &board.devices[..i] {
                    assert_ne!(other.name, device.name, "{name:?}");
                    assert!(!other.regs.overlaps(&device.regs), "{name:?}");
                    assert_ne!(other.intid, device.intid, "{name:?}");
                }
            }
        }
        assert!(QEMU_VIRT_AARCH64.device("net1").is_none());
    }

    #[test]
    fn every_board_has_a_nic_and_virt_keeps_its_devices_in_separate_pages() {
        for board in BOARDS {
            assert!(board.device("net0").is_some(), "{}", board.name);
        }
        let (net, blk) = (
            QEMU_VIRT_AARCH64.device("net0").map(|d| d.regs),
            QEMU_VIRT_AARCH64.device("blk0").map(|d| d.regs),
        );
        let (Some(net), Some(blk)) = (net, blk) else {
            panic!("virt lacks net0 or blk0")
        };
        // First and last 4 KiB page of each: no page holds registers of both.
        let pages = |range: PhysRange| (range.base / 0x1000, (range.end() - 1) / 0x1000);
        let ((net_first, net_last), (blk_first, blk_last)) = (pages(net), pages(blk));
        assert!(net_last < blk_first || blk_last < net_first);
        assert_eq!(QEMU_VIRT_NET0.intid, 79);
        assert_eq!(QEMU_VIRT_BLK0.intid, 71);
        assert_eq!(ZCU102_NET0.intid, 95);
        assert_eq!(IMX8MP_NET0.intid, 150);
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
