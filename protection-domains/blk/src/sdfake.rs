//! A model of an SDHCI-family controller with an SD card in its slot, for host tests of
//! [`crate::sdhost`] with either variant: enough of QEMU's `sdhci` (and its `imx-usdhc`
//! translation) and `sd` models to identify the card, move data by ADMA2 and fail.
//!
//! Commands run to completion when the command register is written, as in QEMU. Data
//! moves between the card's bytes and test buffers registered with [`FakeHost::map`] under
//! made-up physical addresses.

extern crate std;

use std::vec;
use std::vec::Vec;

use crate::sdhost::{Bus, reg};

/// The card's side.
pub(crate) struct FakeCard {
    /// The card's contents.
    pub data: Vec<u8>,
    /// SDHC (block addressed) rather than SDSC.
    pub high_capacity: bool,
    /// Whether it answers CMD8 (a version 2 card).
    pub answers_if_cond: bool,
    /// ACMD41 answers "busy" this many times first.
    pub busy_op_conds: u32,
    /// After a write, CMD13 answers "programming" this many times.
    pub programming_polls: u32,
    /// No card at all: no command is answered.
    pub absent: bool,
    /// The next data transfer ends with a data CRC error.
    pub fail_next_transfer: bool,
    /// Every command (index, argument), in order.
    pub log: Vec<(u8, u32)>,
    /// The bus width ACMD6 set (1 or 4).
    pub bus_width: u32,
    /// The block length CMD16 set.
    pub block_length: u32,
    state: u32,
    rca: u16,
    app: bool,
    position: usize,
    busy: u32,
    illegal: bool,
}

/// An answer of the card.
enum Answer {
    /// 48 bits: the 32-bit payload.
    Short(u32),
    /// 136 bits: the 16-byte register.
    Long([u8; 16]),
}

/// Card states (R1 `CURRENT_STATE`).
mod state {
    pub const IDLE: u32 = 0;
    pub const READY: u32 = 1;
    pub const IDENT: u32 = 2;
    pub const STANDBY: u32 = 3;
    pub const TRANSFER: u32 = 4;
    pub const DATA: u32 = 5;
    pub const RECEIVE: u32 = 6;
}

impl FakeCard {
    /// A card of `bytes` bytes (a multiple of 512 KiB for SDHC, of 256 KiB for SDSC).
    pub fn new(bytes: usize, high_capacity: bool) -> Self {
        Self {
            data: (0..bytes).map(|i| (i * 7 + i / 512) as u8).collect(),
            high_capacity,
            answers_if_cond: true,
            busy_op_conds: 2,
            programming_polls: 2,
            absent: false,
            fail_next_transfer: false,
            log: Vec::new(),
            bus_width: 1,
            block_length: 512,
            state: state::IDLE,
            rca: 0,
            app: false,
            position: 0,
            busy: 0,
            illegal: false,
        }
    }

    /// The R1 card status.
    fn status(&mut self) -> u32 {
        let ready = if self.state == state::RECEIVE || self.busy > 0 {
            0
        } else {
            1 << 8
        };
        let state = if self.busy > 0 { 7 } else { self.state };
        let illegal = if core::mem::take(&mut self.illegal) {
            1 << 22
        } else {
            0
        };
        (state << 9) | ready | (u32::from(self.app) << 5) | illegal
    }

    /// The CSD for the card's size.
    fn csd(&self) -> [u8; 16] {
        let mut csd = [0u8; 16];
        if self.high_capacity {
            let c_size = (self.data.len() / (512 * 1024) - 1) as u32;
            csd[0] = 0x40;
            csd[7] = ((c_size >> 16) & 0x3F) as u8;
            csd[8] = (c_size >> 8) as u8;
            csd[9] = c_size as u8;
        } else {
            // READ_BL_LEN 9, C_SIZE_MULT 7: 256 KiB per C_SIZE step.
            let c_size = (self.data.len() / (256 * 1024) - 1) as u32;
            csd[5] = 0x59;
            csd[6] = 0x80 | ((c_size >> 10) & 3) as u8;
            csd[7] = (c_size >> 2) as u8;
            csd[8] = ((c_size & 3) << 6) as u8;
            csd[9] = 0x03;
            csd[10] = 0x80;
        }
        csd
    }

    /// The byte offset a data command's argument names, if inside the card.
    fn offset(&self, arg: u32) -> Option<usize> {
        let offset = if self.high_capacity {
            arg as usize * 512
        } else {
            arg as usize
        };
        (offset < self.data.len()).then_some(offset)
    }

    /// Runs a command: the answer, or `None` for none (a timeout).
    fn command(&mut self, index: u8, arg: u32) -> Option<Answer> {
        self.log.push((index, arg));
        if self.absent {
            return None;
        }
        let app = core::mem::take(&mut self.app);
        let addressed = arg >> 16 == u32::from(self.rca);
        let answer = match (app, index) {
            (_, 0) => {
                self.state = state::IDLE;
                return None;
            }
            (_, 8) if self.answers_if_cond => Answer::Short(arg & 0xFFF),
            (_, 55) => {
                self.app = true;
                Answer::Short(self.status())
            }
            (true, 41) => {
                if self.busy_op_conds > 0 {
                    self.busy_op_conds -= 1;
                    Answer::Short(0x00FF_8000)
                } else {
                    self.state = state::READY;
                    let ccs = if self.high_capacity && arg & (1 << 30) != 0 {
                        1 << 30
                    } else {
                        0
                    };
                    Answer::Short(0x80FF_8000 | ccs)
                }
            }
            (_, 2) => {
                self.state = state::IDENT;
                Answer::Long(*b"\xAAXYQEMU!\x01\xDE\xAD\xBE\xEF\x00\x00\x01")
            }
            (_, 3) => {
                self.state = state::STANDBY;
                self.rca = 0x4567;
                Answer::Short(0x4567_0500)
            }
            (_, 9) if addressed => Answer::Long(self.csd()),
            (_, 7) if addressed => {
                let status = self.status();
                self.state = state::TRANSFER;
                Answer::Short(status)
            }
            (true, 6) => {
                self.bus_width = if arg == 2 { 4 } else { 1 };
                Answer::Short(self.status())
            }
            (true, 51) => {
                let status = self.status();
                self.state = state::DATA;
                self.position = usize::MAX;
                Answer::Short(status)
            }
            (_, 16) => {
                self.block_length = arg;
                Answer::Short(self.status())
            }
            (_, 17 | 18 | 24 | 25) => {
                let status = self.status();
                match self.offset(arg) {
                    Some(offset) => {
                        self.position = offset;
                        self.state = if index < 24 {
                            state::DATA
                        } else {
                            state::RECEIVE
                        };
                        Answer::Short(status)
                    }
                    None => Answer::Short(status | (1 << 31)),
                }
            }
            (_, 12) => {
                let status = self.status();
                self.state = state::TRANSFER;
                Answer::Short(status)
            }
            (_, 13) if addressed => {
                let status = self.status();
                self.busy = self.busy.saturating_sub(1);
                Answer::Short(status)
            }
            _ => {
                self.illegal = true;
                return None;
            }
        };
        Some(answer)
    }

    /// The card sends `bytes` bytes.
    fn send(&mut self, bytes: usize) -> Vec<u8> {
        if self.position == usize::MAX {
            let mut scr = vec![0x02, 0x25, 0, 0, 0, 0, 0, 0];
            scr.truncate(bytes);
            return scr;
        }
        let out = self.data[self.position..self.position + bytes].to_vec();
        self.position += bytes;
        out
    }

    /// The card receives `bytes`.
    fn receive(&mut self, bytes: &[u8]) {
        self.data[self.position..self.position + bytes.len()].copy_from_slice(bytes);
        self.position += bytes.len();
        self.busy = self.programming_polls;
    }

    /// The end of a transfer (single-block commands stop by themselves).
    fn transfer_done(&mut self, multiple: bool) {
        if !multiple {
            self.state = state::TRANSFER;
        }
    }
}

/// The controller's side.
pub(crate) struct FakeHost {
    /// The card in the slot.
    pub card: FakeCard,
    /// Model NXP's uSDHC (`MIX_CTRL`, `PROT_CTRL`, `SYS_CTRL`) rather than a standard SDHCI.
    pub usdhc: bool,
    /// Capabilities (low word).
    pub capabilities: u32,
    /// Software resets of the command or data line seen.
    pub line_resets: u32,
    /// Transfers that used ADMA2.
    pub adma_transfers: u32,
    memory: Vec<(u64, *mut u8, usize)>,
    now: u64,
    sdma: u32,
    block: u32,
    argument: u32,
    response: [u32; 4],
    host_control: u32,
    clock: u32,
    status: u32,
    status_enable: u32,
    signal_enable: u32,
    adma: u32,
    mix: u32,
}

impl FakeHost {
    /// A standard SDHCI (the ZynqMP's capabilities, version 3.00) or a uSDHC (QEMU's
    /// default capabilities) with `card` in its slot.
    pub fn new(card: FakeCard, usdhc: bool) -> Self {
        Self {
            card,
            usdhc,
            capabilities: if usdhc { 0x0578_34B4 } else { 0x37EC_6481 },
            line_resets: 0,
            adma_transfers: 0,
            memory: Vec::new(),
            now: 0,
            sdma: 0,
            block: 0,
            argument: 0,
            response: [0; 4],
            host_control: 0,
            clock: 0,
            status: 0,
            status_enable: 0,
            signal_enable: 0,
            adma: 0,
            mix: 0,
        }
    }

    /// Lets the controller reach `bytes` at `host` under physical address `paddr`.
    ///
    /// # Safety
    ///
    /// `host` must stay valid for reads and writes of `bytes` bytes, and not be accessed
    /// otherwise while the controller may move data, for as long as this model lives.
    pub unsafe fn map(&mut self, paddr: u64, host: *mut u8, bytes: usize) {
        self.memory.push((paddr, host, bytes));
    }

    /// Whether the interrupt line is raised.
    pub fn irq(&self) -> bool {
        self.status & self.signal_enable != 0
    }

    /// The host pointer for `bytes` at `paddr` (panics, failing the test, if unmapped).
    fn host_pointer(&self, paddr: u64, bytes: usize) -> *mut u8 {
        for &(start, host, length) in &self.memory {
            if paddr >= start && paddr + bytes as u64 <= start + length as u64 {
                return host.wrapping_add((paddr - start) as usize);
            }
        }
        panic!("DMA to unmapped {paddr:#x}+{bytes:#x}");
    }

    /// Reads `bytes` of test memory at `paddr`.
    fn load(&self, paddr: u64, bytes: usize) -> Vec<u8> {
        let host = self.host_pointer(paddr, bytes);
        // SAFETY: `map`'s caller promised the range is valid and ours while the model lives.
        unsafe { core::slice::from_raw_parts(host, bytes) }.to_vec()
    }

    /// Writes `data` to test memory at `paddr`.
    fn store(&self, paddr: u64, data: &[u8]) {
        let host = self.host_pointer(paddr, data.len());
        // SAFETY: as in `load`.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), host, data.len()) }
    }

    /// Sets the status bits the driver enabled.
    fn raise(&mut self, bits: u32) {
        self.status |= bits & self.status_enable;
        if self.status & 0xFFFF_0000 != 0 && !self.usdhc {
            self.status |= 1 << 15;
        }
    }

    /// Whether the SD clock runs (QEMU's check before issuing a command).
    fn clock_on(&self) -> bool {
        self.clock & 0x7 == 0x7
    }

    /// Whether the DMA engine selected is ADMA2.
    fn adma2(&self) -> bool {
        if self.usdhc {
            (self.host_control >> 8) & 3 == 2
        } else {
            (self.host_control >> 3) & 3 == 2
        }
    }

    /// Runs the command in `command` with transfer mode `mode`.
    fn run(&mut self, command: u32, mode: u32) {
        if !self.clock_on() {
            return;
        }
        let index = ((command >> 8) & 0x3F) as u8;
        let response_type = command & 3;
        let answer = self.card.command(index, self.argument);
        match answer {
            None if response_type != 0 => {
                self.raise((1 << 16) | 1);
                return;
            }
            None => {}
            Some(Answer::Short(value)) => self.response = [value, 0, 0, 0],
            Some(Answer::Long(bytes)) => {
                let mut value: u128 = 0;
                for byte in &bytes[..15] {
                    value = (value << 8) | u128::from(*byte);
                }
                self.response = [0, 32, 64, 96].map(|shift| (value >> shift) as u32);
            }
        }
        self.raise(1);
        if response_type == 3 && !self.usdhc {
            self.raise(2);
        }
        if command & 0x20 != 0 {
            self.transfer(mode);
        }
    }

    /// Moves a command's data by DMA.
    fn transfer(&mut self, mode: u32) {
        assert!(mode & 1 != 0, "the model moves data by DMA only");
        let block_size = (self.block & 0xFFF) as usize;
        let blocks = (self.block >> 16) as usize;
        let bytes = block_size * blocks;
        let read = mode & 0x10 != 0;
        let multiple = mode & 0x20 != 0;
        if self.card.state != state::DATA && self.card.state != state::RECEIVE {
            // The card refused the command: nothing on the data lines.
            self.raise(1 << 20);
            return;
        }
        let mut pieces = Vec::new();
        if self.adma2() {
            self.adma_transfers += 1;
            let mut at = u64::from(self.adma);
            loop {
                let words = self.load(at, 8);
                let low = u32::from_le_bytes(words[..4].try_into().unwrap());
                let high = u32::from_le_bytes(words[4..].try_into().unwrap());
                assert_eq!(low & 0x31, 0x21, "a valid transfer descriptor");
                let length = match low >> 16 {
                    0 => 0x1_0000,
                    n => n as usize,
                };
                pieces.push((u64::from(high), length));
                if low & 2 != 0 {
                    break;
                }
                at += 8;
            }
        } else {
            pieces.push((u64::from(self.sdma), bytes));
        }
        assert_eq!(pieces.iter().map(|p| p.1).sum::<usize>(), bytes);
        if core::mem::take(&mut self.card.fail_next_transfer) {
            self.raise(1 << 21);
            return;
        }
        for (paddr, length) in pieces {
            if read {
                let data = self.card.send(length);
                self.store(paddr, &data);
            } else {
                let data = self.load(paddr, length);
                self.card.receive(&data);
            }
        }
        self.card.transfer_done(multiple);
        if multiple && mode & 4 != 0 {
            let answer = self.card.command(12, 0);
            if let Some(Answer::Short(value)) = answer {
                self.response[3] = value;
            }
        }
        self.raise(2);
    }
}

impl Bus for FakeHost {
    fn read(&mut self, offset: usize) -> u32 {
        match offset {
            reg::SDMA_ADDRESS => self.sdma,
            reg::BLOCK => self.block,
            reg::ARGUMENT => self.argument,
            0x10 | 0x14 | 0x18 | 0x1C => self.response[(offset - 0x10) / 4],
            reg::PRESENT => {
                let stable = if self.usdhc && self.clock & 2 != 0 {
                    1 << 3
                } else {
                    0
                };
                (1 << 16) | stable
            }
            reg::HOST_CONTROL => self.host_control,
            reg::CLOCK => self.clock,
            reg::INT_STATUS => self.status,
            reg::INT_STATUS_ENABLE => self.status_enable,
            reg::INT_SIGNAL_ENABLE => self.signal_enable,
            reg::CAPABILITIES => self.capabilities,
            0x48 if self.usdhc => 0,
            reg::ADMA_ADDRESS => self.adma,
            reg::VERSION => (if self.usdhc { 1 } else { 2 }) << 16,
            _ => 0,
        }
    }

    fn write(&mut self, offset: usize, value: u32) {
        match offset {
            reg::SDMA_ADDRESS => self.sdma = value,
            reg::BLOCK => self.block = value,
            reg::ARGUMENT => self.argument = value,
            reg::COMMAND => {
                let mode = if self.usdhc { self.mix } else { value & 0xFFFF };
                self.run(value >> 16, mode);
            }
            reg::HOST_CONTROL => self.host_control = value,
            reg::CLOCK => {
                match value >> 24 {
                    1 => {
                        let card = core::mem::replace(&mut self.card, FakeCard::new(0, false));
                        let memory = core::mem::take(&mut self.memory);
                        let (resets, adma) = (self.line_resets, self.adma_transfers);
                        *self = Self::new(card, self.usdhc);
                        self.memory = memory;
                        self.line_resets = resets;
                        self.adma_transfers = adma;
                    }
                    2 | 4 => self.line_resets += 1,
                    _ => {}
                }
                // The internal clock is stable as soon as it is enabled.
                let mut clock = value & 0x000F_FFFF;
                if clock & 1 != 0 {
                    clock |= 2;
                }
                self.clock = clock;
            }
            reg::INT_STATUS => {
                self.status &= !value;
                if self.status & 0xFFFF_0000 == 0 {
                    self.status &= !(1 << 15);
                }
            }
            reg::INT_STATUS_ENABLE => {
                self.status_enable = value;
                self.status &= value | (1 << 15);
            }
            reg::INT_SIGNAL_ENABLE => self.signal_enable = value,
            0x48 if self.usdhc => self.mix = value & 0xFFFF,
            reg::ADMA_ADDRESS => self.adma = value,
            _ => {}
        }
    }

    fn now_us(&mut self) -> u64 {
        self.now += 1;
        self.now
    }
}

#[cfg(test)]
mod tests {
    use std::boxed::Box;

    use super::*;
    use crate::driver::{Disk, Op};
    use crate::sdhci::Sdhci;
    use crate::sdhost::{SdDisk, SdError, Variant};
    use crate::usdhc::Usdhc;

    /// The DMA region's made-up physical address.
    const DMA_PADDR: u64 = 0x4000_0000;
    /// The client buffer's made-up physical address.
    const BUFFER_PADDR: u64 = 0x5000_0000;
    /// The client buffer's size (the largest request).
    const BUFFER_BYTES: usize = 64 * 512;

    /// A disk over the model, with its DMA region and one client buffer.
    struct Rig<V> {
        disk: SdDisk<V, FakeHost>,
        buffer: Box<[u8]>,
        _dma: Box<[u64]>,
    }

    /// Brings up `card` behind the `V` controller.
    fn rig<V: Variant>(card: FakeCard, usdhc: bool) -> Result<Rig<V>, SdError> {
        let mut dma = vec![0u64; 0x10000 / 8].into_boxed_slice();
        let mut buffer = vec![0u8; BUFFER_BYTES].into_boxed_slice();
        let mut host = FakeHost::new(card, usdhc);
        let dma_ptr = dma.as_mut_ptr().cast::<u8>();
        // SAFETY: both boxes live in the rig as long as the model, and the test touches the
        // buffer only while no request is in flight.
        unsafe {
            host.map(DMA_PADDR, dma_ptr, 0x10000);
            host.map(BUFFER_PADDR, buffer.as_mut_ptr(), BUFFER_BYTES);
        }
        // SAFETY: the region is a live allocation the rig keeps.
        let disk =
            unsafe { SdDisk::<V, FakeHost>::start(host, dma_ptr as usize, DMA_PADDR, 0x10000) }?;
        Ok(Rig {
            disk,
            buffer,
            _dma: dma,
        })
    }

    impl<V: Variant> Rig<V> {
        /// Runs one request to completion: whether it succeeded.
        fn run(&mut self, op: Op, block: u64, count: u32) -> bool {
            assert!(self.disk.idle());
            assert!(self.disk.submit(7, op, block, count, BUFFER_PADDR));
            for _ in 0..100 {
                if let Some((tag, ok)) = self.disk.take() {
                    assert_eq!(tag, 7);
                    assert!(!self.disk.bus().irq(), "the line is lowered");
                    return ok;
                }
                assert!(self.disk.bus().irq(), "the request waits for an interrupt");
                self.disk.interrupt();
            }
            panic!("the request never completed");
        }

        fn card(&mut self) -> &mut FakeCard {
            &mut self.disk.bus().card
        }
    }

    /// Identification, a multiple-block write and read and a single-block one, on the
    /// controller `V`.
    fn read_and_write<V: Variant>(usdhc: bool, high_capacity: bool) {
        let bytes = 1024 * 1024;
        let mut rig = rig::<V>(FakeCard::new(bytes, high_capacity), usdhc).unwrap();
        assert_eq!(rig.disk.blocks(), (bytes / 512) as u64);
        assert_eq!(rig.disk.high_capacity(), high_capacity);
        assert_eq!(rig.card().bus_width, 4);
        let commands: Vec<u8> = rig.card().log.iter().map(|c| c.0).collect();
        let mut expected = vec![0, 8, 55, 41, 55, 41, 55, 41, 2, 3, 9, 7, 55, 51, 55, 6];
        if !high_capacity {
            expected.push(16);
        }
        expected.push(13);
        assert_eq!(commands, expected);
        rig.card().log.clear();

        // Write 3 blocks at block 10, then read them back.
        for (i, byte) in rig.buffer[..3 * 512].iter_mut().enumerate() {
            *byte = (i % 251) as u8;
        }
        assert!(rig.run(Op::Write, 10, 3));
        let address = if high_capacity { 10 } else { 10 * 512 };
        assert_eq!(rig.card().log[0], (25, address));
        assert_eq!(rig.card().log[1], (12, 0), "auto-CMD12");
        // The write waits for programming: two "programming" answers, then ready.
        assert_eq!(rig.card().log.iter().filter(|c| c.0 == 13).count(), 3);
        let written: Vec<u8> = (0..3 * 512).map(|i| (i % 251) as u8).collect();
        assert_eq!(&rig.card().data[10 * 512..13 * 512], &written[..]);

        rig.buffer.fill(0);
        rig.card().log.clear();
        assert!(rig.run(Op::Read, 10, 3));
        assert_eq!(&rig.buffer[..3 * 512], &written[..]);
        assert_eq!(rig.card().log[0], (18, address));

        rig.card().log.clear();
        assert!(rig.run(Op::Read, 0, 1));
        assert_eq!(rig.card().log, vec![(17, 0)]);
        let first: Vec<u8> = rig.card().data[..512].to_vec();
        assert_eq!(&rig.buffer[..512], &first[..]);

        rig.card().log.clear();
        assert!(rig.run(Op::Write, 2047, 1));
        assert_eq!(rig.card().log[0].0, 24);
        assert!(rig.disk.bus().adma_transfers >= 5);
    }

    #[test]
    fn sdhci_with_a_standard_capacity_card() {
        read_and_write::<Sdhci>(false, false);
    }

    #[test]
    fn sdhci_with_a_high_capacity_card() {
        read_and_write::<Sdhci>(false, true);
    }

    #[test]
    fn usdhc_with_both_cards() {
        read_and_write::<Usdhc>(true, false);
        read_and_write::<Usdhc>(true, true);
    }

    #[test]
    fn a_version_1_card_is_not_asked_for_high_capacity() {
        let mut card = FakeCard::new(512 * 1024, true);
        card.answers_if_cond = false;
        let mut rig = rig::<Sdhci>(card, false).unwrap();
        // Without HCS the card reports standard capacity: byte addresses.
        assert!(!rig.disk.high_capacity());
        let acmd41 = rig.card().log.iter().find(|c| c.0 == 41).copied();
        assert_eq!(acmd41, Some((41, 0x00FF_8000)));
    }

    #[test]
    fn a_transfer_error_fails_the_request_and_the_next_one_works() {
        let mut rig = rig::<Sdhci>(FakeCard::new(1024 * 1024, true), false).unwrap();
        let resets = rig.disk.bus().line_resets;
        rig.card().fail_next_transfer = true;
        assert!(!rig.run(Op::Read, 4, 8));
        assert!(rig.disk.bus().line_resets >= resets + 2);
        assert!(rig.run(Op::Read, 4, 8));
        rig.card().fail_next_transfer = true;
        assert!(!rig.run(Op::Write, 4, 1));
        assert!(rig.run(Op::Write, 4, 1));
    }

    #[test]
    fn a_card_that_stays_busy_fails_the_write() {
        let mut rig = rig::<Usdhc>(FakeCard::new(1024 * 1024, true), true).unwrap();
        rig.card().programming_polls = u32::MAX;
        assert!(!rig.disk.submit(1, Op::Write, 0, 1, 0x5000_0002));
        assert!(rig.disk.submit(1, Op::Write, 0, 1, BUFFER_PADDR));
        let mut interrupts = 0;
        while rig.disk.take().is_none() {
            rig.disk.interrupt();
            interrupts += 1;
            assert!(interrupts <= 200_000, "bounded");
        }
        assert!(rig.disk.idle());
    }

    #[test]
    fn flush_completes_at_once() {
        let mut rig = rig::<Sdhci>(FakeCard::new(1024 * 1024, false), false).unwrap();
        assert!(rig.disk.submit(9, Op::Flush, 0, 0, 0));
        assert!(!rig.disk.idle());
        assert!(!rig.disk.submit(10, Op::Flush, 0, 0, 0));
        assert_eq!(rig.disk.take(), Some((9, true)));
        assert!(rig.disk.idle());
        assert!(!rig.disk.bus().irq());
    }

    #[test]
    fn bad_requests_are_refused_without_touching_the_card() {
        let mut rig = rig::<Sdhci>(FakeCard::new(1024 * 1024, false), false).unwrap();
        rig.card().log.clear();
        let blocks = rig.disk.blocks();
        for (block, count, paddr) in [
            (blocks, 1, BUFFER_PADDR),
            (blocks - 1, 2, BUFFER_PADDR),
            (u64::MAX, 1, BUFFER_PADDR),
            (0, 0, BUFFER_PADDR),
            (0, 65, BUFFER_PADDR),
            (0, 1, BUFFER_PADDR + 2),
            (0, 1, 0xFFFF_FF00),
        ] {
            assert!(!rig.disk.submit(1, Op::Read, block, count, paddr));
            assert!(rig.disk.idle());
        }
        assert!(rig.card().log.is_empty());
        // A spurious interrupt changes nothing.
        rig.disk.interrupt();
        assert_eq!(rig.disk.take(), None);
    }

    #[test]
    fn no_card_is_an_error() {
        let mut card = FakeCard::new(1024 * 1024, false);
        card.absent = true;
        match rig::<Sdhci>(card, false) {
            Err(SdError::Command { index: 55, .. }) => {}
            other => panic!("{:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn a_card_that_never_powers_up_is_an_error() {
        let mut card = FakeCard::new(1024 * 1024, false);
        card.busy_op_conds = u32::MAX;
        assert_eq!(
            rig::<Usdhc>(card, true).err(),
            Some(SdError::PowerUp(0x00FF_8000))
        );
    }

    #[test]
    fn a_small_dma_region_is_refused() {
        let host = FakeHost::new(FakeCard::new(1024 * 1024, false), false);
        let mut memory = vec![0u64; 16];
        // SAFETY: a live allocation (too small, so it is never written).
        let result = unsafe {
            SdDisk::<Sdhci, FakeHost>::start(host, memory.as_mut_ptr() as usize, DMA_PADDR, 128)
        };
        assert_eq!(result.err(), Some(SdError::DmaRegion));
    }

    /// A controller whose registers read as garbage.
    struct Garbage {
        seed: u64,
        now: u64,
    }

    impl Bus for Garbage {
        fn read(&mut self, _offset: usize) -> u32 {
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 7;
            self.seed ^= self.seed << 17;
            self.seed as u32
        }

        fn write(&mut self, _offset: usize, _value: u32) {}

        fn now_us(&mut self) -> u64 {
            self.now += 97;
            self.now
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        #[test]
        fn a_hostile_controller_cannot_hang_or_crash_the_driver(seed in 1u64..) {
            let mut dma = vec![0u64; 0x10000 / 8];
            let ptr = dma.as_mut_ptr() as usize;
            // SAFETY: a live allocation the test keeps.
            let disk = unsafe {
                SdDisk::<Usdhc, Garbage>::start(Garbage { seed, now: 0 }, ptr, DMA_PADDR, 0x10000)
            };
            if let Ok(mut disk) = disk {
                let blocks = disk.blocks();
                for round in 0..20u64 {
                    if disk.idle() {
                        let _ = disk.submit(round, Op::Read, round % blocks, 1, BUFFER_PADDR);
                    }
                    disk.interrupt();
                    let _ = disk.take();
                }
            }
        }
    }
}
