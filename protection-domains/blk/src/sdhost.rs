//! The SD host-controller driver shared by the SDHCI family: the ZynqMP's standard SDHCI
//! ([`crate::sdhci`]) and NXP's uSDHC ([`crate::usdhc`]) keep the standard register
//! layout for everything but the transfer mode, the host control (bus width, DMA
//! selection) and the clock, which each supplies through a [`Variant`].
//!
//! **Identification** runs once, in the constructor, by polling with bounded waits: reset
//! the controller, power the card, a 400 kHz clock, CMD0, CMD8 (a card that does not
//! answer is a version 1 card), ACMD41 until the card is powered up (up to a second), CMD2,
//! CMD3, CMD9 (the capacity from the CSD), CMD7, ACMD51 (the SCR) and ACMD6 for the 4-bit
//! bus if the card has it, CMD16 512 on a standard-capacity card, and a 25 MHz clock. Every
//! answer is checked; none can make the driver panic or wait forever.
//!
//! **Transfers** use ADMA2 (32-bit descriptors in the driver's private DMA region, one per
//! contiguous piece of the client's buffer), or SDMA where the controller lacks ADMA2:
//! CMD17/CMD24 for one block, CMD18/CMD25 with auto-CMD12 for more. They are interrupt
//! driven: [`Disk::submit`] issues the command, [`Disk::interrupt`] reads and clears the
//! interrupt status and moves the request on. A write is reported done only once CMD13
//! says the card is back in the transfer state with its buffer empty, that is, once the
//! card has programmed the data. An error interrupt, an error bit in the card's status, or
//! a request still unfinished past its deadline when the controller next interrupts fails
//! the request; the driver then resets the command and data lines and, if the card is
//! still in a data state, stops it with CMD12, so that the next request starts clean.
//!
//! **Flush** completes at once: an SD card answers a write's busy phase only after
//! programming it, and the driver never turns on the card's optional cache (CMD48/CMD49).

use core::marker::PhantomData;
use core::ptr::NonNull;

use atoll_channels::block::BLOCK_MAX_BLOCKS;
use atoll_pd_net::barrier;
use atoll_pd_net::regs::Regs;

use crate::driver::{Disk, Op};
use crate::sd::{
    self, BLOCK_BYTES, CardStatus, Command, Direction, LongResponse, Ocr, Response, cmd,
};

/// The registers both controllers share, by offset.
pub mod reg {
    /// SDMA system address (the next address SDMA uses).
    pub const SDMA_ADDRESS: usize = 0x00;
    /// Block size (bits 11:0; the SDHCI's SDMA boundary in 14:12) and block count (31:16).
    pub const BLOCK: usize = 0x04;
    /// The command's argument.
    pub const ARGUMENT: usize = 0x08;
    /// Transfer mode (15:0, the SDHCI's; reserved on the uSDHC) and command (31:16): the
    /// write that starts a command.
    pub const COMMAND: usize = 0x0C;
    /// The response, four words (bits 31:0 of the response in the first).
    pub const RESPONSE: usize = 0x10;
    /// Present state: inhibit bits, line levels, clock stable (uSDHC).
    pub const PRESENT: usize = 0x24;
    /// Host control (SDHCI) / protocol control (uSDHC): bus width and DMA selection.
    pub const HOST_CONTROL: usize = 0x28;
    /// Clock control (15:0), data timeout (19:16), software resets (26:24).
    pub const CLOCK: usize = 0x2C;
    /// Interrupt status, write 1 to clear: normal (15:0), error (31:16).
    pub const INT_STATUS: usize = 0x30;
    /// Which interrupt status bits are recorded.
    pub const INT_STATUS_ENABLE: usize = 0x34;
    /// Which recorded status bits raise the interrupt line.
    pub const INT_SIGNAL_ENABLE: usize = 0x38;
    /// Capabilities (the low word).
    pub const CAPABILITIES: usize = 0x40;
    /// The ADMA descriptor table's address (low word).
    pub const ADMA_ADDRESS: usize = 0x58;
    /// The ADMA descriptor table's address (high word, 64-bit controllers).
    pub const ADMA_ADDRESS_HIGH: usize = 0x5C;
    /// Slot interrupt status (15:0) and host controller version (31:16).
    pub const VERSION: usize = 0xFC;
}

/// Interrupt status bits.
pub mod int {
    /// Command complete.
    pub const COMMAND_COMPLETE: u32 = 1 << 0;
    /// Transfer complete (and the end of an R1b busy phase on SDHCI).
    pub const TRANSFER_COMPLETE: u32 = 1 << 1;
    /// DMA interrupt: SDMA reached its buffer boundary.
    pub const DMA: u32 = 1 << 3;
    /// Every error: the SDHCI's summary bit and the error half (the uSDHC has no summary
    /// bit and reports its errors in the same half).
    pub const ERRORS: u32 = 0xFFFF_8000;
    /// The error interrupts enabled: command timeout, CRC, end bit and index (16–19), data
    /// timeout, CRC and end bit (20–22), current limit (23), auto-CMD12 (24), ADMA (25),
    /// tuning (26) and the uSDHC's DMA error (28).
    pub const ERRORS_ENABLED: u32 = 0x17FF_0000;
    /// Every status bit the driver enables.
    pub const ENABLED: u32 = COMMAND_COMPLETE | TRANSFER_COMPLETE | DMA | ERRORS_ENABLED;
}

/// Present-state bits.
mod present {
    /// A command is in progress (command inhibit, CMD).
    pub const COMMAND_INHIBIT: u32 = 1 << 0;
    /// The data lines are in use (command inhibit, DAT), also during an R1b busy phase.
    pub const DATA_INHIBIT: u32 = 1 << 1;
}

/// The software reset bits of the clock register's top byte.
mod reset {
    /// Reset everything.
    pub const ALL: u32 = 1 << 24;
    /// Reset the command line's state machine.
    pub const COMMAND: u32 = 1 << 25;
    /// Reset the data lines' state machine and the DMA.
    pub const DATA: u32 = 1 << 26;
}

/// Transfer mode bits (the SDHCI's transfer mode register and the uSDHC's `MIX_CTRL`
/// agree on them).
pub mod mode {
    /// Use DMA.
    pub const DMA: u16 = 1 << 0;
    /// Count blocks.
    pub const BLOCK_COUNT: u16 = 1 << 1;
    /// Send CMD12 after the last block.
    pub const AUTO_CMD12: u16 = 1 << 2;
    /// Card to host.
    pub const READ: u16 = 1 << 4;
    /// More than one block.
    pub const MULTIPLE: u16 = 1 << 5;
}

/// The data timeout counter value (bits 19:16 of the clock register): the longest the
/// SDHCI offers (2^27 clocks of the timeout clock); on the uSDHC 2^28 SD clocks.
const DATA_TIMEOUT: u32 = 0xE << 16;

/// The clock during identification (at most 400 kHz).
const IDENTIFICATION_HZ: u32 = 400_000;
/// The clock for transfers: default speed, at most 25 MHz.
const TRANSFER_HZ: u32 = 25_000_000;

/// How long a register poll may wait for a reset, a clock or a command, in microseconds.
const POLL_US: u64 = 100_000;
/// How long a polled data transfer, or a card's busy phase, may take, in microseconds.
const BUSY_US: u64 = 1_000_000;
/// Register polls at most, whatever the clock says (in case it does not move).
const MAX_POLLS: u32 = 2_000_000;
/// ACMD41 tries at most (a card has a second to power up; one try a millisecond).
const OP_COND_TRIES: u32 = 1000;
/// The pause between ACMD41 tries, in microseconds.
const OP_COND_PAUSE_US: u64 = 1000;
/// How long a request may take, from submission to completion (a write's programming
/// included), in microseconds.
const REQUEST_US: u64 = 2_000_000;
/// CMD13 polls at most while waiting for a write to be programmed.
const MAX_STATUS_POLLS: u32 = 100_000;

/// Where in the DMA region the ADMA2 descriptor table starts.
const TABLE_OFFSET: usize = 0;
/// ADMA2 descriptors the table holds.
const TABLE_ENTRIES: usize = 8;
/// Where in the DMA region the driver's own small transfers (the SCR) land.
const SCRATCH_OFFSET: usize = 0x200;
/// The smallest DMA region the driver accepts.
pub const DMA_MIN_BYTES: usize = 0x400;
/// The most bytes one ADMA2 descriptor moves here (its length field is 16 bits).
const ADMA_PIECE: u32 = 0x8000;
/// The most bytes a request moves.
const REQUEST_MAX_BYTES: u32 = BLOCK_MAX_BLOCKS * BLOCK_BYTES;
const _: () = assert!(REQUEST_MAX_BYTES <= ADMA_PIECE * TABLE_ENTRIES as u32);
const _: () = assert!(TABLE_OFFSET + TABLE_ENTRIES * 8 <= SCRATCH_OFFSET);
const _: () = assert!(SCRATCH_OFFSET + BLOCK_BYTES as usize <= DMA_MIN_BYTES);

/// ADMA2 attribute bits (the low half of a descriptor's first word).
mod adma {
    /// The descriptor is valid.
    pub const VALID: u32 = 1 << 0;
    /// The last descriptor.
    pub const END: u32 = 1 << 1;
    /// Transfer data (action 10b).
    pub const TRANSFER: u32 = 1 << 5;
}

/// Why the card could not be brought up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SdError {
    /// The DMA region is too small, misaligned or above 4 GiB.
    DmaRegion,
    /// The controller offers neither ADMA2 nor SDMA.
    NoDma,
    /// A software reset did not finish.
    Reset,
    /// The SD clock did not become stable.
    Clock,
    /// A command got no answer in time, or the controller reported an error for it (the
    /// command's index and the interrupt status). No card in the slot looks like this.
    Command {
        /// The command's index.
        index: u8,
        /// The interrupt status (0 for a timeout without one).
        status: u32,
    },
    /// The card refused a command: its status has an error bit.
    Card {
        /// The command's index.
        index: u8,
        /// The R1 card status.
        status: u32,
    },
    /// The card does not accept the host's voltage (its CMD8 answer).
    Voltage(u32),
    /// The card stayed busy powering up (its last OCR).
    PowerUp(u32),
    /// The card's CSD is not one the driver can use.
    Csd(sd::CsdError),
    /// The card reported no capacity.
    Empty,
}

impl core::fmt::Display for SdError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::DmaRegion => f.write_str("DMA region unusable"),
            Self::NoDma => f.write_str("controller without ADMA2 or SDMA"),
            Self::Reset => f.write_str("software reset did not finish"),
            Self::Clock => f.write_str("SD clock not stable"),
            Self::Command { index, status } => {
                write!(f, "CMD{index} failed (interrupt status {status:#010x})")
            }
            Self::Card { index, status } => {
                write!(f, "CMD{index} refused (card status {status:#010x})")
            }
            Self::Voltage(r7) => write!(f, "card refuses the voltage (CMD8 answer {r7:#x})"),
            Self::PowerUp(ocr) => write!(f, "card stayed busy powering up (OCR {ocr:#010x})"),
            Self::Csd(error) => write!(f, "unusable CSD ({error:?})"),
            Self::Empty => f.write_str("card of no capacity"),
        }
    }
}

/// How the driver reaches the controller's registers and time: the MMIO page and the
/// counter in a PD ([`Mmio`]), a model in the tests.
pub trait Bus {
    /// Reads the 32-bit register at `offset`.
    fn read(&mut self, offset: usize) -> u32;
    /// Writes the 32-bit register at `offset`.
    fn write(&mut self, offset: usize, value: u32);
    /// Microseconds since some fixed moment (never going back).
    fn now_us(&mut self) -> u64;
}

/// What one controller of the family does its own way.
pub trait Variant {
    /// The block register's SDMA buffer boundary bits (14:12) the driver writes.
    const BLOCK_BOUNDARY: u32;
    /// Whether the capabilities (low word) say the controller has ADMA2.
    fn has_adma2(capabilities: u32) -> bool;
    /// Powers the card, just after a full reset.
    fn power_on<B: Bus>(port: &mut Port<B>, capabilities: u32);
    /// The clock register's bits 15:0 (the divider, the clock off) for an SD clock of at
    /// most `hz`.
    fn clock_divider(capabilities: u32, version: u8, hz: u32) -> u16;
    /// Runs the SD clock with `divider` (from [`Variant::clock_divider`]): the clock
    /// register's bits 15:0 as they stay while it runs, or `None` if it did not become
    /// stable.
    fn start_clock<B: Bus>(port: &mut Port<B>, divider: u16) -> Option<u16>;
    /// Sets the bus width (4 bits or 1) and the DMA engine (ADMA2 or SDMA).
    fn host_control<B: Bus>(port: &mut Port<B>, four_bit: bool, adma2: bool);
    /// Issues a command with transfer `mode` (0 without data) and command register value
    /// `command` (the argument, block and DMA registers already written).
    fn issue<B: Bus>(port: &mut Port<B>, mode: u16, command: u16);
}

/// The controller's registers and time, with the bounded waits the driver uses.
pub struct Port<B> {
    /// The registers.
    pub bus: B,
    /// The clock register's bits 15:0 while the clock runs (written back with every reset).
    clock: u16,
}

impl<B: Bus> Port<B> {
    /// Reads a register.
    pub fn read(&mut self, offset: usize) -> u32 {
        self.bus.read(offset)
    }

    /// Writes a register.
    pub fn write(&mut self, offset: usize, value: u32) {
        self.bus.write(offset, value);
    }

    /// Waits up to `us` microseconds (and a bounded number of reads) for `done` to hold of the
    /// register at `offset`; whether it did.
    pub fn wait(&mut self, offset: usize, us: u64, done: impl Fn(u32) -> bool) -> bool {
        let deadline = self.bus.now_us().saturating_add(us);
        for _ in 0..MAX_POLLS {
            if done(self.bus.read(offset)) {
                return true;
            }
            if self.bus.now_us() >= deadline {
                break;
            }
            core::hint::spin_loop();
        }
        done(self.bus.read(offset))
    }

    /// Waits `us` microseconds (at most [`MAX_POLLS`] polls of the clock).
    fn pause(&mut self, us: u64) {
        let deadline = self.bus.now_us().saturating_add(us);
        for _ in 0..MAX_POLLS {
            if self.bus.now_us() >= deadline {
                return;
            }
            core::hint::spin_loop();
        }
    }

    /// Writes the clock register with the running clock, the data timeout and `resets`,
    /// and waits for the resets to finish.
    fn reset(&mut self, resets: u32) -> bool {
        let clock = if resets & reset::ALL != 0 {
            0
        } else {
            u32::from(self.clock)
        };
        self.write(reg::CLOCK, clock | DATA_TIMEOUT | resets);
        self.wait(reg::CLOCK, POLL_US, |value| value & resets == 0)
    }
}

/// The driver's private DMA region: the ADMA2 descriptor table and a scratch buffer.
#[derive(Clone, Copy)]
pub struct DmaArea {
    vaddr: usize,
    paddr: u64,
}

impl DmaArea {
    /// The region at `vaddr` (physical `paddr`) of `bytes` bytes, if the driver can use it.
    fn new(vaddr: usize, paddr: u64, bytes: usize) -> Option<Self> {
        let fits = paddr
            .checked_add(bytes as u64)
            .is_some_and(|end| end <= 1 << 32);
        (bytes >= DMA_MIN_BYTES && vaddr.is_multiple_of(8) && paddr.is_multiple_of(8) && fits)
            .then_some(Self { vaddr, paddr })
    }

    /// Writes the 32-bit word at byte `offset` (below [`DMA_MIN_BYTES`], 4-aligned).
    fn write(&self, offset: usize, value: u32) {
        debug_assert!(offset.is_multiple_of(4) && offset + 4 <= DMA_MIN_BYTES);
        // SAFETY: the constructor's caller promised a region of at least `DMA_MIN_BYTES`
        // (checked) at `vaddr` (8-aligned, checked), mapped into this PD for the driver
        // alone; `offset` is an aligned word inside its first `DMA_MIN_BYTES`.
        unsafe { ((self.vaddr + offset) as *mut u32).write_volatile(value) }
    }

    /// Reads the byte at `offset` (below [`DMA_MIN_BYTES`]).
    fn read_byte(&self, offset: usize) -> u8 {
        debug_assert!(offset < DMA_MIN_BYTES);
        // SAFETY: as for `write`; a byte inside the region's first `DMA_MIN_BYTES`.
        unsafe { ((self.vaddr + offset) as *const u8).read_volatile() }
    }
}

/// Splits `bytes` at physical `paddr` into ADMA2 descriptors (32-bit addressing: the
/// attributes and length in the low word, the address in the high one), the last marked
/// END, into `table`: how many, or `None` if the buffer is not 4-byte aligned, not a
/// multiple of 4 bytes, empty, above 4 GiB or needs more descriptors than `table` holds.
pub fn adma2_table(paddr: u64, bytes: u32, table: &mut [[u32; 2]]) -> Option<usize> {
    if bytes == 0 || !paddr.is_multiple_of(4) || !bytes.is_multiple_of(4) {
        return None;
    }
    if paddr.checked_add(u64::from(bytes))? > 1 << 32 {
        return None;
    }
    let count = bytes.div_ceil(ADMA_PIECE) as usize;
    if count > table.len() {
        return None;
    }
    let mut address = paddr;
    let mut left = bytes;
    for (index, slot) in table.iter_mut().take(count).enumerate() {
        let length = left.min(ADMA_PIECE);
        let end = if index + 1 == count { adma::END } else { 0 };
        *slot = [
            (length << 16) | adma::TRANSFER | end | adma::VALID,
            address as u32,
        ];
        address += u64::from(length);
        left -= length;
    }
    Some(count)
}

/// The DMA engine in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dma {
    /// ADMA2 with 32-bit descriptors.
    Adma2,
    /// SDMA (a single address; boundary interrupts restart it).
    Sdma,
}

/// A data transfer: `blocks` blocks of `block_size` bytes at physical `paddr`.
#[derive(Clone, Copy)]
struct Transfer {
    blocks: u32,
    block_size: u32,
    paddr: u64,
    direction: Direction,
}

/// Where the request in flight is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No request.
    Idle,
    /// The read or write command is issued; waiting for the transfer to complete.
    Data {
        tag: u64,
        write: bool,
        card_error: bool,
        deadline: u64,
    },
    /// A write's data is sent; CMD13 is issued to see whether the card programmed it.
    Programming { tag: u64, polls: u32, deadline: u64 },
}

/// An SD card behind an SDHCI-family controller, as a [`Disk`]. [`crate::sdhci::SdhciDisk`]
/// and [`crate::usdhc::UsdhcDisk`] are this type with their variant and MMIO.
pub struct SdDisk<V, B = Mmio> {
    port: Port<B>,
    dma_area: DmaArea,
    dma: Dma,
    blocks: u64,
    high_capacity: bool,
    rca: u16,
    state: State,
    done: Option<(u64, bool)>,
    variant: PhantomData<V>,
}

impl<V: Variant, B: Bus> SdDisk<V, B> {
    /// Brings up the controller and the card behind `bus`, with the DMA region at `vaddr`
    /// (physical `paddr`, `bytes` long): see the module's description.
    ///
    /// # Safety
    ///
    /// `vaddr` must be the start of `bytes` bytes of memory mapped into this PD for this
    /// driver alone (uncached, or the caller keeps it coherent), at physical `paddr`, for
    /// the life of the returned value.
    pub unsafe fn start(bus: B, vaddr: usize, paddr: u64, bytes: usize) -> Result<Self, SdError> {
        let dma_area = DmaArea::new(vaddr, paddr, bytes).ok_or(SdError::DmaRegion)?;
        let mut disk = Self {
            port: Port { bus, clock: 0 },
            dma_area,
            dma: Dma::Sdma,
            blocks: 0,
            high_capacity: false,
            rca: 0,
            state: State::Idle,
            done: None,
            variant: PhantomData,
        };
        disk.identify()?;
        Ok(disk)
    }

    /// The controller's registers (for the tests' model).
    #[cfg(test)]
    pub(crate) fn bus(&mut self) -> &mut B {
        &mut self.port.bus
    }

    /// Whether the card is high capacity (block addressed).
    pub fn high_capacity(&self) -> bool {
        self.high_capacity
    }

    /// Resets the controller and identifies the card (polling, interrupts masked).
    fn identify(&mut self) -> Result<(), SdError> {
        let port = &mut self.port;
        port.write(reg::INT_SIGNAL_ENABLE, 0);
        if !port.reset(reset::ALL) {
            return Err(SdError::Reset);
        }
        let capabilities = port.read(reg::CAPABILITIES);
        let version = (port.read(reg::VERSION) >> 16) as u8;
        self.dma = if V::has_adma2(capabilities) {
            Dma::Adma2
        } else if capabilities & (1 << 22) != 0 {
            Dma::Sdma
        } else {
            return Err(SdError::NoDma);
        };
        V::power_on(port, capabilities);
        V::host_control(port, false, self.dma == Dma::Adma2);
        port.write(reg::INT_SIGNAL_ENABLE, 0);
        port.write(reg::INT_STATUS_ENABLE, int::ENABLED);
        port.write(reg::INT_STATUS, u32::MAX);
        self.set_clock(capabilities, version, IDENTIFICATION_HZ)?;
        // The card needs 74 clocks after power before its first command.
        self.port.pause(1000);

        self.command(Command::new(cmd::GO_IDLE_STATE, 0, Response::None))?;
        let answered_if_cond = match self.command(Command::new(
            cmd::SEND_IF_COND,
            sd::IF_COND_ARG,
            Response::R7,
        )) {
            Ok(r7) if sd::if_cond_accepted(r7) => true,
            Ok(r7) => return Err(SdError::Voltage(r7)),
            // A version 1.x card does not know CMD8.
            Err(SdError::Command { .. }) => false,
            Err(other) => return Err(other),
        };
        let ocr = self.power_up(answered_if_cond)?;
        self.high_capacity = ocr.high_capacity();

        self.long_command(Command::new(cmd::ALL_SEND_CID, 0, Response::R2))?;
        self.rca = self.relative_address()?;
        let csd = self.long_command(Command::new(
            cmd::SEND_CSD,
            sd::rca_arg(self.rca),
            Response::R2,
        ))?;
        self.blocks = sd::csd_blocks(csd).map_err(SdError::Csd)?;
        if self.blocks == 0 {
            return Err(SdError::Empty);
        }
        self.card_command(Command::new(
            cmd::SELECT_CARD,
            sd::rca_arg(self.rca),
            Response::R1b,
        ))?;
        if self.read_scr().is_some_and(sd::scr_supports_4bit) {
            self.app_command(Command::new(cmd::SET_BUS_WIDTH, 2, Response::R1))?;
            V::host_control(&mut self.port, true, self.dma == Dma::Adma2);
        }
        if !self.high_capacity {
            self.card_command(Command::new(cmd::SET_BLOCKLEN, BLOCK_BYTES, Response::R1))?;
        }
        self.set_clock(capabilities, version, TRANSFER_HZ)?;
        // Reads (and so clears) any error bit an earlier command left in the card status.
        let _ = self.command(Command::new(
            cmd::SEND_STATUS,
            sd::rca_arg(self.rca),
            Response::R1,
        ));
        self.port.write(reg::INT_STATUS, u32::MAX);
        self.port.write(reg::INT_SIGNAL_ENABLE, int::ENABLED);
        Ok(())
    }

    /// Stops the SD clock, sets it to at most `hz` and starts it again.
    fn set_clock(&mut self, capabilities: u32, version: u8, hz: u32) -> Result<(), SdError> {
        let divider = V::clock_divider(capabilities, version, hz);
        self.port.clock = 0;
        self.port.write(reg::CLOCK, DATA_TIMEOUT);
        let running = V::start_clock(&mut self.port, divider).ok_or(SdError::Clock)?;
        self.port.clock = running;
        Ok(())
    }

    /// ACMD41 until the card reports it is powered up: its OCR.
    fn power_up(&mut self, answered_if_cond: bool) -> Result<Ocr, SdError> {
        let arg = sd::op_cond_arg(answered_if_cond);
        let mut ocr = Ocr(0);
        for _ in 0..OP_COND_TRIES {
            ocr = Ocr(self.app_command(Command::new(cmd::SD_SEND_OP_COND, arg, Response::R3))?);
            if ocr.powered_up() {
                return Ok(ocr);
            }
            self.port.pause(OP_COND_PAUSE_US);
        }
        Err(SdError::PowerUp(ocr.0))
    }

    /// CMD3 until the card publishes a non-zero relative address (0 would deselect it).
    fn relative_address(&mut self) -> Result<u16, SdError> {
        let mut rca = 0;
        for _ in 0..3 {
            let r6 = self.command(Command::new(cmd::SEND_RELATIVE_ADDR, 0, Response::R6))?;
            rca = sd::rca_of(r6);
            if rca != 0 {
                return Ok(rca);
            }
        }
        Err(SdError::Card {
            index: cmd::SEND_RELATIVE_ADDR,
            status: u32::from(rca),
        })
    }

    /// ACMD51 into the scratch buffer: the SCR, or `None` if the card did not send it (the
    /// driver then keeps the 1-bit bus).
    fn read_scr(&mut self) -> Option<[u8; 8]> {
        self.command(Command::new(
            cmd::APP_CMD,
            sd::rca_arg(self.rca),
            Response::R1,
        ))
        .ok()?;
        let transfer = Transfer {
            blocks: 1,
            block_size: 8,
            paddr: self.dma_area.paddr + SCRATCH_OFFSET as u64,
            direction: Direction::Read,
        };
        let command = Command::with_data(cmd::SEND_SCR, 0, Direction::Read);
        let status = self.polled(command, Some(transfer)).ok()?;
        if CardStatus(status[0]).error() {
            return None;
        }
        barrier::ring_reads();
        let mut scr = [0u8; 8];
        for (index, byte) in scr.iter_mut().enumerate() {
            *byte = self.dma_area.read_byte(SCRATCH_OFFSET + index);
        }
        Some(scr)
    }

    /// Runs `command` (no data) by polling: its 32-bit response.
    fn command(&mut self, command: Command) -> Result<u32, SdError> {
        self.polled(command, None).map(|response| response[0])
    }

    /// Runs a command with an R2 response by polling: the response.
    fn long_command(&mut self, command: Command) -> Result<LongResponse, SdError> {
        self.polled(command, None).map(LongResponse)
    }

    /// Runs an addressed command by polling and checks the card status it answers.
    fn card_command(&mut self, command: Command) -> Result<u32, SdError> {
        let status = self.command(command)?;
        if CardStatus(status).error() {
            return Err(SdError::Card {
                index: command.index,
                status,
            });
        }
        Ok(status)
    }

    /// Runs CMD55 and then the application command `command` by polling: its response.
    /// CMD55's own status is not checked: it may carry an error bit an earlier command
    /// left (ILLEGAL_COMMAND after a version 1 card ignored CMD8).
    fn app_command(&mut self, command: Command) -> Result<u32, SdError> {
        self.command(Command::new(
            cmd::APP_CMD,
            sd::rca_arg(self.rca),
            Response::R1,
        ))?;
        if command.response == Response::R3 {
            self.command(command)
        } else {
            self.card_command(command)
        }
    }

    /// Issues `command` and polls for its completion (and its transfer's, and the end of an
    /// R1b busy phase): the response words. On an error or a timeout the command line (and
    /// the data line, for a transfer) is reset.
    fn polled(
        &mut self,
        command: Command,
        transfer: Option<Transfer>,
    ) -> Result<[u32; 4], SdError> {
        let failed = |status| SdError::Command {
            index: command.index,
            status,
        };
        if !self.issue(command, transfer) {
            self.reset_lines();
            return Err(failed(0));
        }
        let done = |status: u32| status & (int::COMMAND_COMPLETE | int::ERRORS) != 0;
        let finished = self.port.wait(reg::INT_STATUS, POLL_US, done);
        let status = self.port.read(reg::INT_STATUS);
        if !finished || status & int::ERRORS != 0 {
            self.reset_lines();
            return Err(failed(status));
        }
        let response = [0, 1, 2, 3].map(|word| self.port.read(reg::RESPONSE + 4 * word));
        if transfer.is_some() {
            let done = |status: u32| status & (int::TRANSFER_COMPLETE | int::ERRORS) != 0;
            let finished = self.port.wait(reg::INT_STATUS, BUSY_US, done);
            let status = self.port.read(reg::INT_STATUS);
            if !finished || status & int::ERRORS != 0 {
                self.reset_lines();
                return Err(failed(status));
            }
        } else if command.response == Response::R1b {
            let idle = |present: u32| present & present::DATA_INHIBIT == 0;
            if !self.port.wait(reg::PRESENT, BUSY_US, idle) {
                self.reset_lines();
                return Err(failed(0));
            }
        }
        self.port.write(reg::INT_STATUS, u32::MAX);
        Ok(response)
    }

    /// Writes the registers for `command` (and its `transfer`) and issues it: `false` if
    /// the controller stayed busy with an earlier command or the buffer cannot be described.
    fn issue(&mut self, command: Command, transfer: Option<Transfer>) -> bool {
        let inhibit = if transfer.is_some() || command.response == Response::R1b {
            present::COMMAND_INHIBIT | present::DATA_INHIBIT
        } else {
            present::COMMAND_INHIBIT
        };
        if !self
            .port
            .wait(reg::PRESENT, POLL_US, |present| present & inhibit == 0)
        {
            return false;
        }
        self.port.write(reg::INT_STATUS, u32::MAX);
        let mut transfer_mode = 0;
        if let Some(transfer) = transfer {
            let Some(bytes) = transfer.blocks.checked_mul(transfer.block_size) else {
                return false;
            };
            match self.dma {
                Dma::Adma2 => {
                    let mut table = [[0u32; 2]; TABLE_ENTRIES];
                    let Some(count) = adma2_table(transfer.paddr, bytes, &mut table) else {
                        return false;
                    };
                    for (index, [low, high]) in table.iter().take(count).enumerate() {
                        self.dma_area.write(TABLE_OFFSET + 8 * index, *low);
                        self.dma_area.write(TABLE_OFFSET + 8 * index + 4, *high);
                    }
                    let table_paddr = self.dma_area.paddr + TABLE_OFFSET as u64;
                    self.port.write(reg::ADMA_ADDRESS, table_paddr as u32);
                    self.port.write(reg::ADMA_ADDRESS_HIGH, 0);
                }
                Dma::Sdma => {
                    let Ok(address) = u32::try_from(transfer.paddr) else {
                        return false;
                    };
                    if address.checked_add(bytes).is_none() {
                        return false;
                    }
                    self.port.write(reg::SDMA_ADDRESS, address);
                }
            }
            self.port.write(
                reg::BLOCK,
                (transfer.blocks << 16) | V::BLOCK_BOUNDARY | transfer.block_size,
            );
            transfer_mode = mode::DMA | mode::BLOCK_COUNT;
            if transfer.blocks > 1 {
                transfer_mode |= mode::MULTIPLE | mode::AUTO_CMD12;
            }
            if transfer.direction == Direction::Read {
                transfer_mode |= mode::READ;
            }
        }
        self.port.write(reg::ARGUMENT, command.arg);
        // The descriptors and the client's buffer (cleaned by the loop) must be in memory
        // before the controller is told to go and read them.
        barrier::before_kick();
        V::issue(&mut self.port, transfer_mode, command.register());
        true
    }

    /// Resets the command and data lines (each alone: QEMU's model takes one reset bit per
    /// write) and clears the interrupt status.
    fn reset_lines(&mut self) {
        let _ = self.port.reset(reset::COMMAND);
        let _ = self.port.reset(reset::DATA);
        self.port.write(reg::INT_STATUS, u32::MAX);
    }

    /// After a failed request: resets the lines and, if the card is still sending or
    /// receiving, stops it with CMD12 and waits (bounded) for it to return to the transfer
    /// state. Best effort: a failure here shows in the next request.
    fn recover(&mut self) {
        self.port.write(reg::INT_SIGNAL_ENABLE, 0);
        self.reset_lines();
        let status = Command::new(cmd::SEND_STATUS, sd::rca_arg(self.rca), Response::R1);
        if let Ok(card) = self.command(status) {
            let card = CardStatus(card);
            if matches!(card.state(), sd::CardState::Data | sd::CardState::Receive) {
                let stop = Command::new(cmd::STOP_TRANSMISSION, 0, Response::R1b);
                let _ = self.command(stop);
            }
            for _ in 0..1000 {
                match self.command(status) {
                    Ok(card) if CardStatus(card).busy() => self.port.pause(100),
                    _ => break,
                }
            }
        }
        self.port.write(reg::INT_STATUS, u32::MAX);
        self.port.write(reg::INT_SIGNAL_ENABLE, int::ENABLED);
    }

    /// Fails the request `tag` and makes the controller and card usable again.
    fn fail(&mut self, tag: u64) {
        self.recover();
        self.finish(tag, false);
    }

    /// Hands request `tag` back with `ok`.
    fn finish(&mut self, tag: u64, ok: bool) {
        self.state = State::Idle;
        self.done = Some((tag, ok));
    }

    /// Issues CMD13 for a write's programming (poll number `polls`).
    fn ask_status(&mut self, tag: u64, polls: u32, deadline: u64) {
        let status = Command::new(cmd::SEND_STATUS, sd::rca_arg(self.rca), Response::R1);
        if self.issue(status, None) {
            self.state = State::Programming {
                tag,
                polls,
                deadline,
            };
        } else {
            self.fail(tag);
        }
    }
}

impl<V: Variant> SdDisk<V, Mmio> {
    /// Resets the controller whose registers are at `regs` and identifies the card in its
    /// slot (see the module's description), with the driver's private DMA region at
    /// `dma_vaddr` (physical `dma_paddr`, `dma_bytes` long, at least [`DMA_MIN_BYTES`],
    /// 8-byte aligned, below 4 GiB). This is `SdhciDisk::new` and `UsdhcDisk::new`.
    ///
    /// # Safety
    ///
    /// `regs` must be the controller's register block (at least its first page) and
    /// `dma_vaddr` the start of `dma_bytes` bytes at physical `dma_paddr`, both mapped
    /// uncached into this PD for this driver alone, for the life of the returned value.
    pub unsafe fn new(
        regs: NonNull<u8>,
        dma_vaddr: usize,
        dma_paddr: u64,
        dma_bytes: usize,
    ) -> Result<Self, SdError> {
        // SAFETY: the caller's promise about `regs`.
        let mmio = unsafe { Mmio::new(regs) };
        // SAFETY: the caller's promise about the DMA region.
        unsafe { Self::start(mmio, dma_vaddr, dma_paddr, dma_bytes) }
    }
}

impl<V: Variant, B: Bus> Disk for SdDisk<V, B> {
    const COHERENT: bool = false;

    fn blocks(&self) -> u64 {
        self.blocks
    }

    fn idle(&self) -> bool {
        self.state == State::Idle && self.done.is_none()
    }

    fn submit(&mut self, tag: u64, op: Op, block: u64, count: u32, paddr: u64) -> bool {
        if !self.idle() {
            return false;
        }
        let direction = match op {
            // Every earlier write completed (the loop waits for it), and a completed write
            // is programmed (see the module's description): nothing to do.
            Op::Flush => {
                self.done = Some((tag, true));
                return true;
            }
            Op::Read => Direction::Read,
            Op::Write => Direction::Write,
        };
        let in_disk = block
            .checked_add(u64::from(count))
            .is_some_and(|end| end <= self.blocks);
        if !(1..=BLOCK_MAX_BLOCKS).contains(&count) || !in_disk {
            return false;
        }
        let Some(address) = sd::data_address(block, self.high_capacity) else {
            return false;
        };
        let transfer = Transfer {
            blocks: count,
            block_size: BLOCK_BYTES,
            paddr,
            direction,
        };
        let command = sd::transfer_command(direction, address, count);
        if !self.issue(command, Some(transfer)) {
            return false;
        }
        self.state = State::Data {
            tag,
            write: direction == Direction::Write,
            card_error: false,
            deadline: self.port.bus.now_us().saturating_add(REQUEST_US),
        };
        true
    }

    fn interrupt(&mut self) {
        let status = self.port.read(reg::INT_STATUS);
        if status != 0 {
            self.port.write(reg::INT_STATUS, status);
        }
        let now = self.port.bus.now_us();
        match self.state {
            State::Idle => {}
            State::Data {
                tag,
                write,
                mut card_error,
                deadline,
            } => {
                if status & int::ERRORS != 0 {
                    return self.fail(tag);
                }
                if status & int::COMMAND_COMPLETE != 0 {
                    card_error |= CardStatus(self.port.read(reg::RESPONSE)).error();
                }
                if status & int::TRANSFER_COMPLETE != 0 {
                    barrier::ring_reads();
                    if card_error {
                        self.fail(tag);
                    } else if write {
                        self.ask_status(tag, 0, deadline);
                    } else {
                        self.finish(tag, true);
                    }
                    return;
                }
                if status & int::DMA != 0 && self.dma == Dma::Sdma {
                    // SDMA stopped at a buffer boundary: writing the next address (where
                    // it stopped) restarts it.
                    let next = self.port.read(reg::SDMA_ADDRESS);
                    self.port.write(reg::SDMA_ADDRESS, next);
                }
                if now > deadline {
                    return self.fail(tag);
                }
                self.state = State::Data {
                    tag,
                    write,
                    card_error,
                    deadline,
                };
            }
            State::Programming {
                tag,
                polls,
                deadline,
            } => {
                if status & int::ERRORS != 0 {
                    return self.fail(tag);
                }
                if status & int::COMMAND_COMPLETE == 0 {
                    if now > deadline {
                        self.fail(tag);
                    }
                    return;
                }
                let card = CardStatus(self.port.read(reg::RESPONSE));
                if card.error() {
                    self.fail(tag);
                } else if card.ready() {
                    self.finish(tag, true);
                } else if card.busy() && polls < MAX_STATUS_POLLS && now <= deadline {
                    self.ask_status(tag, polls + 1, deadline);
                } else {
                    self.fail(tag);
                }
            }
        }
    }

    fn take(&mut self) -> Option<(u64, bool)> {
        self.done.take()
    }
}

/// The controller's register window in a PD (every register the driver uses is in its
/// first page: the network drivers' bounds-checked register page), and the virtual counter
/// for time.
pub struct Mmio {
    regs: Regs,
}

impl Mmio {
    /// The registers at `base`.
    ///
    /// # Safety
    ///
    /// `base` must be the controller's register block (at least a page), mapped uncached
    /// into this PD for this driver alone, for the life of the returned value.
    pub unsafe fn new(base: NonNull<u8>) -> Self {
        // SAFETY: the caller's guarantee, which is `Regs::new`'s.
        let regs = unsafe { Regs::new(base) };
        Self { regs }
    }
}

impl Bus for Mmio {
    fn read(&mut self, offset: usize) -> u32 {
        self.regs.read(offset)
    }

    fn write(&mut self, offset: usize, value: u32) {
        self.regs.write(offset, value);
    }

    fn now_us(&mut self) -> u64 {
        now_us()
    }
}

/// Microseconds of the virtual counter, which the kernel lets EL0 read.
#[cfg(target_arch = "aarch64")]
fn now_us() -> u64 {
    use atoll_microkit::timer::{counter, counter_frequency};
    (u128::from(counter()) * 1_000_000 / u128::from(counter_frequency())) as u64
}

/// Elsewhere (host builds, which never drive a real controller) time moves a microsecond
/// per look, so every bounded wait still ends.
#[cfg(not(target_arch = "aarch64"))]
fn now_us() -> u64 {
    use core::sync::atomic::{AtomicU64, Ordering};
    static NOW: AtomicU64 = AtomicU64::new(0);
    NOW.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    extern crate std;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn one_descriptor_for_a_request() {
        let mut table = [[0u32; 2]; TABLE_ENTRIES];
        assert_eq!(adma2_table(0x4000_1000, 32 * 1024, &mut table), Some(1));
        assert_eq!(table[0], [0x8000_0023, 0x4000_1000]);
        assert_eq!(adma2_table(0x4000_0004, 512, &mut table), Some(1));
        assert_eq!(table[0], [0x0200_0023, 0x4000_0004]);
    }

    #[test]
    fn large_buffers_are_split() {
        let mut table = [[0u32; 2]; TABLE_ENTRIES];
        assert_eq!(adma2_table(0x1000, 0x8000 * 2 + 512, &mut table), Some(3));
        assert_eq!(table[0], [0x8000_0021, 0x1000]);
        assert_eq!(table[1], [0x8000_0021, 0x9000]);
        assert_eq!(table[2], [0x0200_0023, 0x11000]);
    }

    #[test]
    fn unusable_buffers_are_refused() {
        let mut table = [[0u32; 2]; 2];
        assert_eq!(adma2_table(0x1002, 512, &mut table), None);
        assert_eq!(adma2_table(0x1000, 0, &mut table), None);
        assert_eq!(adma2_table(0x1000, 6, &mut table), None);
        assert_eq!(adma2_table(0xFFFF_FE00, 1024, &mut table), None);
        assert_eq!(adma2_table(0x1000, 0x8000 * 3, &mut table), None);
        assert_eq!(adma2_table(0xFFFF_FE00, 512, &mut table), Some(1));
    }

    proptest::proptest! {
        #[test]
        fn descriptors_cover_the_buffer_exactly(
            paddr in (0u64..0x4000_0000).prop_map(|a| a * 4),
            words in 1u32..0x1_0000,
        ) {
            let bytes = words * 4;
            let mut table = [[0u32; 2]; TABLE_ENTRIES];
            // 32-bit ADMA2 reaches the first 4 GiB only: a buffer past them has no table.
            let Some(count) = adma2_table(paddr, bytes, &mut table) else {
                proptest::prop_assert!(paddr + u64::from(bytes) > 1 << 32);
                return Ok(());
            };
            let mut next = paddr;
            for (index, [low, high]) in table.iter().take(count).enumerate() {
                proptest::prop_assert_eq!(u64::from(*high), next);
                let length = low >> 16;
                proptest::prop_assert!(length > 0 && length <= ADMA_PIECE);
                proptest::prop_assert_eq!(low & adma::END != 0, index + 1 == count);
                next += u64::from(length);
            }
            proptest::prop_assert_eq!(next, paddr + u64::from(bytes));
        }
    }
}
