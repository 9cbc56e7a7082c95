//! The SD memory card protocol, independent of the host controller: the commands the
//! drivers send and how the SDHCI family encodes them, the card's answers (OCR, R1 card
//! status, CSD, SCR) and the data address of a block.
//!
//! Everything here is pure logic over numbers the card returned, so it is host-tested, and
//! a value a card (or an emulator) invents is reported as an error, never a panic.
//!
//! References: the SD Association's Physical Layer Simplified Specification (commands,
//! responses, register layouts) and its Host Controller Simplified Specification (the
//! command register's encoding, which NXP's uSDHC shares).

/// Bytes of a block on the card, as the drivers use it (`SET_BLOCKLEN` 512 on a
/// standard-capacity card; fixed on a high-capacity one).
pub const BLOCK_BYTES: u32 = 512;

/// The argument of `SEND_IF_COND` (CMD8): 2.7–3.6 V (VHS = 1) and the check pattern 0xAA.
pub const IF_COND_ARG: u32 = 0x1AA;

/// The OCR's voltage window the host offers in `SD_SEND_OP_COND`: 2.7–3.6 V.
const OCR_VOLTAGE_WINDOW: u32 = 0x00FF_8000;
/// OCR bit 30 in the host's `SD_SEND_OP_COND` (HCS: the host supports high capacity) and
/// in the card's answer once powered up (CCS: the card is high capacity, block addressed).
const OCR_CAPACITY: u32 = 1 << 30;
/// OCR bit 31 in the card's answer: power-up finished (the card is no longer busy).
const OCR_POWERED_UP: u32 = 1 << 31;

/// The commands the drivers send (application commands follow `APP_CMD`).
pub mod cmd {
    /// CMD0: reset every card to the idle state.
    pub const GO_IDLE_STATE: u8 = 0;
    /// CMD2: the card sends its CID.
    pub const ALL_SEND_CID: u8 = 2;
    /// CMD3: the card publishes a relative card address.
    pub const SEND_RELATIVE_ADDR: u8 = 3;
    /// ACMD6: the data bus width.
    pub const SET_BUS_WIDTH: u8 = 6;
    /// CMD7: select the card (stand-by to transfer state).
    pub const SELECT_CARD: u8 = 7;
    /// CMD8: interface condition (voltage check); only version 2.00+ cards answer.
    pub const SEND_IF_COND: u8 = 8;
    /// CMD9: the card sends its CSD.
    pub const SEND_CSD: u8 = 9;
    /// CMD12: stop a multiple-block transfer.
    pub const STOP_TRANSMISSION: u8 = 12;
    /// CMD13: the card sends its status.
    pub const SEND_STATUS: u8 = 13;
    /// CMD16: the block length of a standard-capacity card.
    pub const SET_BLOCKLEN: u8 = 16;
    /// CMD17: read one block.
    pub const READ_SINGLE_BLOCK: u8 = 17;
    /// CMD18: read blocks until stopped.
    pub const READ_MULTIPLE_BLOCK: u8 = 18;
    /// CMD24: write one block.
    pub const WRITE_BLOCK: u8 = 24;
    /// CMD25: write blocks until stopped.
    pub const WRITE_MULTIPLE_BLOCK: u8 = 25;
    /// ACMD41: send the host's capacity support and voltage window; the card answers its OCR.
    pub const SD_SEND_OP_COND: u8 = 41;
    /// ACMD51: the card sends its SCR (8 bytes on the data lines).
    pub const SEND_SCR: u8 = 51;
    /// CMD55: the next command is an application command.
    pub const APP_CMD: u8 = 55;
}

/// The response a command expects (the Physical Layer specification's types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response {
    /// No response (CMD0).
    None,
    /// R1: 48 bits, the card status.
    R1,
    /// R1b: R1, then the card may hold DAT0 low while busy.
    R1b,
    /// R2: 136 bits, the CID or CSD.
    R2,
    /// R3: 48 bits, the OCR, without a valid CRC or index.
    R3,
    /// R6: 48 bits, the relative card address and some status bits.
    R6,
    /// R7: 48 bits, the interface condition echoed.
    R7,
}

/// A data transfer's direction, from the host's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Card to memory.
    Read,
    /// Memory to card.
    Write,
}

/// One command: its index, argument and expected response, and whether it moves data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command {
    /// The command index (0–63).
    pub index: u8,
    /// The 32-bit argument.
    pub arg: u32,
    /// The response it expects.
    pub response: Response,
    /// The direction of its data, if it has data.
    pub data: Option<Direction>,
}

impl Command {
    /// A command without data.
    pub const fn new(index: u8, arg: u32, response: Response) -> Self {
        Self {
            index,
            arg,
            response,
            data: None,
        }
    }

    /// A command with data in `direction`.
    pub const fn with_data(index: u8, arg: u32, direction: Direction) -> Self {
        Self {
            index,
            arg,
            response: Response::R1,
            data: Some(direction),
        }
    }

    /// The 16-bit command register value of the SDHCI family (the upper half of the
    /// 32-bit word at 0x0C on SDHCI and on the uSDHC's `CMD_XFR_TYP` alike): response
    /// type in bits 1:0, CRC check (3), index check (4), data present (5), index in 13:8.
    pub const fn register(&self) -> u16 {
        let (length, crc, index) = match self.response {
            Response::None => (0b00, false, false),
            Response::R2 => (0b01, true, false),
            Response::R3 => (0b10, false, false),
            Response::R1 | Response::R6 | Response::R7 => (0b10, true, true),
            Response::R1b => (0b11, true, true),
        };
        let mut value = length;
        if crc {
            value |= 1 << 3;
        }
        if index {
            value |= 1 << 4;
        }
        if self.data.is_some() {
            value |= 1 << 5;
        }
        value | ((self.index as u16 & 0x3F) << 8)
    }
}

/// The argument of `SD_SEND_OP_COND` (ACMD41): the voltage window, and HCS when the card
/// answered CMD8 (only such cards may be high capacity).
pub const fn op_cond_arg(answered_if_cond: bool) -> u32 {
    if answered_if_cond {
        OCR_VOLTAGE_WINDOW | OCR_CAPACITY
    } else {
        OCR_VOLTAGE_WINDOW
    }
}

/// Whether a CMD8 answer (R7) echoes [`IF_COND_ARG`]: the card accepts the voltage.
pub const fn if_cond_accepted(r7: u32) -> bool {
    r7 & 0xFFF == IF_COND_ARG
}

/// The card's OCR, as ACMD41 returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ocr(pub u32);

impl Ocr {
    /// Whether the card finished powering up (until then the other bits mean nothing).
    pub const fn powered_up(self) -> bool {
        self.0 & OCR_POWERED_UP != 0
    }

    /// Whether the card is high capacity (SDHC/SDXC: block addressed); only meaningful once
    /// [`Ocr::powered_up`].
    pub const fn high_capacity(self) -> bool {
        self.0 & OCR_CAPACITY != 0
    }
}

/// The relative card address in an R6 answer (its upper half).
pub const fn rca_of(r6: u32) -> u16 {
    (r6 >> 16) as u16
}

/// The argument of a command addressed to the card with relative address `rca`.
pub const fn rca_arg(rca: u16) -> u32 {
    (rca as u32) << 16
}

/// The data address argument of a read or write starting at `block`: the block number on
/// a high-capacity card, the byte offset on a standard-capacity one. `None` if it does not
/// fit the 32-bit argument.
pub fn data_address(block: u64, high_capacity: bool) -> Option<u32> {
    let address = if high_capacity {
        block
    } else {
        block.checked_mul(u64::from(BLOCK_BYTES))?
    };
    u32::try_from(address).ok()
}

/// The read or write command for `count` blocks from `address` (single-block commands for
/// one block, multiple-block ones, stopped by CMD12, for more).
pub const fn transfer_command(direction: Direction, address: u32, count: u32) -> Command {
    let index = match (direction, count > 1) {
        (Direction::Read, false) => cmd::READ_SINGLE_BLOCK,
        (Direction::Read, true) => cmd::READ_MULTIPLE_BLOCK,
        (Direction::Write, false) => cmd::WRITE_BLOCK,
        (Direction::Write, true) => cmd::WRITE_MULTIPLE_BLOCK,
    };
    Command::with_data(index, address, direction)
}

/// The card states of the R1 card status's `CURRENT_STATE` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardState {
    /// 0: idle.
    Idle,
    /// 1: ready.
    Ready,
    /// 2: identification.
    Ident,
    /// 3: stand-by.
    Standby,
    /// 4: transfer: selected and waiting for a command.
    Transfer,
    /// 5: sending data.
    Data,
    /// 6: receiving data.
    Receive,
    /// 7: programming what it received.
    Programming,
    /// 8: disconnected.
    Disconnect,
    /// 9–15: reserved values.
    Reserved,
}

/// The R1 card status (the answer of CMD13 and of most addressed commands).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CardStatus(pub u32);

impl CardStatus {
    /// The bits that report an error: OUT_OF_RANGE, ADDRESS_ERROR, BLOCK_LEN_ERROR,
    /// ERASE_SEQ_ERROR, ERASE_PARAM, WP_VIOLATION (31–26), LOCK_UNLOCK_FAILED,
    /// COM_CRC_ERROR, ILLEGAL_COMMAND, CARD_ECC_FAILED, CC_ERROR, ERROR (24–19),
    /// CSD_OVERWRITE (16), WP_ERASE_SKIP (15) and AKE_SEQ_ERROR (3). CARD_IS_LOCKED (25)
    /// is a state, not an error.
    pub const ERRORS: u32 = 0xFDF9_8008;
    /// READY_FOR_DATA: the card's buffer is empty.
    const READY_FOR_DATA: u32 = 1 << 8;

    /// Whether any error bit is set.
    pub const fn error(self) -> bool {
        self.0 & Self::ERRORS != 0
    }

    /// The card's state.
    pub const fn state(self) -> CardState {
        match (self.0 >> 9) & 0xF {
            0 => CardState::Idle,
            1 => CardState::Ready,
            2 => CardState::Ident,
            3 => CardState::Standby,
            4 => CardState::Transfer,
            5 => CardState::Data,
            6 => CardState::Receive,
            7 => CardState::Programming,
            8 => CardState::Disconnect,
            _ => CardState::Reserved,
        }
    }

    /// Whether the card is in the transfer state with its buffer empty: a write before
    /// this status is programmed, and the card takes the next command.
    pub const fn ready(self) -> bool {
        matches!(self.state(), CardState::Transfer) && self.0 & Self::READY_FOR_DATA != 0
    }

    /// Whether the card is still busy with a transfer (sending, receiving or programming),
    /// so that asking again makes sense.
    pub const fn busy(self) -> bool {
        matches!(
            self.state(),
            CardState::Data | CardState::Receive | CardState::Programming
        )
    }
}

/// A 136-bit (R2) response as the SDHCI family stores it: the register's bits 127:8 (the
/// CRC byte dropped) in bits 119:0 of the four response words, word 0 lowest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LongResponse(pub [u32; 4]);

impl LongResponse {
    /// The register's bits `high..=low` (bit numbers of the 128-bit CSD/CID, 8 and up).
    pub const fn bits(self, high: u32, low: u32) -> u32 {
        let value = (self.0[0] as u128)
            | ((self.0[1] as u128) << 32)
            | ((self.0[2] as u128) << 64)
            | ((self.0[3] as u128) << 96);
        let width = high - low + 1;
        ((value >> (low - 8)) & ((1u128 << width) - 1)) as u32
    }
}

/// Why a CSD cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsdError {
    /// CSD_STRUCTURE is not 1.0 or 2.0 (3.0 is SDUC, whose addresses need more than 32
    /// bits; 3 is reserved).
    Structure(u32),
    /// A version 1.0 CSD's READ_BL_LEN outside 512–2048 bytes.
    BlockLength(u32),
}

/// The card's capacity in 512-byte blocks, from its CSD (versions 1.0 and 2.0).
///
/// Version 1.0 (standard capacity): `(C_SIZE + 1) * 2^(C_SIZE_MULT + 2) * 2^READ_BL_LEN`
/// bytes, with C_SIZE in bits 73:62, C_SIZE_MULT in 49:47 and READ_BL_LEN in 83:80.
/// Version 2.0 (high and extended capacity): `(C_SIZE + 1) * 512 KiB`, C_SIZE in 69:48.
pub fn csd_blocks(csd: LongResponse) -> Result<u64, CsdError> {
    match csd.bits(127, 126) {
        0 => {
            let read_bl_len = csd.bits(83, 80);
            if !(9..=11).contains(&read_bl_len) {
                return Err(CsdError::BlockLength(read_bl_len));
            }
            let c_size = u64::from(csd.bits(73, 62));
            let c_size_mult = csd.bits(49, 47);
            let bytes = (c_size + 1) << (c_size_mult + 2 + read_bl_len);
            Ok(bytes / u64::from(BLOCK_BYTES))
        }
        1 => {
            let c_size = u64::from(csd.bits(69, 48));
            Ok((c_size + 1) * 1024)
        }
        other => Err(CsdError::Structure(other)),
    }
}

/// Whether the card's SCR (as it arrives on the data lines, most significant byte first)
/// says it supports the 4-bit data bus (SD_BUS_WIDTHS, bits 51:48, bit 2 of the field).
pub const fn scr_supports_4bit(scr: [u8; 8]) -> bool {
    scr[1] & 0x04 != 0
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    /// Packs a 16-byte register (as the card sends it, byte 0 first, byte 15 the CRC)
    /// into the SDHCI's four response words.
    pub(crate) fn long_response(register: [u8; 16]) -> LongResponse {
        let mut value: u128 = 0;
        for byte in &register[..15] {
            value = (value << 8) | u128::from(*byte);
        }
        LongResponse([
            value as u32,
            (value >> 32) as u32,
            (value >> 64) as u32,
            (value >> 96) as u32,
        ])
    }

    /// A version 1.0 CSD with the given fields (the rest as QEMU's card sets them).
    fn csd_v1(c_size: u32, c_size_mult: u32, read_bl_len: u32) -> [u8; 16] {
        let mut csd = [0u8; 16];
        csd[1] = 0x26;
        csd[3] = 0x32;
        csd[4] = 0x5F;
        csd[5] = 0x50 | read_bl_len as u8;
        csd[6] = 0xE0 | ((c_size >> 10) & 0x3) as u8;
        csd[7] = (c_size >> 2) as u8;
        csd[8] = 0x3F | ((c_size & 0x3) << 6) as u8;
        csd[9] = 0xFC | ((c_size_mult >> 1) & 0x3) as u8;
        csd[10] = 0x40 | ((c_size_mult & 1) << 7) as u8 | 0x3F;
        csd
    }

    /// A version 2.0 CSD with the given C_SIZE.
    fn csd_v2(c_size: u32) -> [u8; 16] {
        let mut csd = [0u8; 16];
        csd[0] = 0x40;
        csd[1] = 0x0E;
        csd[3] = 0x32;
        csd[4] = 0x5B;
        csd[5] = 0x59;
        csd[7] = ((c_size >> 16) & 0x3F) as u8;
        csd[8] = (c_size >> 8) as u8;
        csd[9] = c_size as u8;
        csd[10] = 0x7F;
        csd[11] = 0x80;
        csd
    }

    #[test]
    fn v1_capacity_of_a_64_mib_card() {
        // QEMU's 64 MiB card: READ_BL_LEN 9, C_SIZE_MULT 7, C_SIZE = 64 MiB / 2^18 - 1.
        let csd = long_response(csd_v1(255, 7, 9));
        assert_eq!(csd_blocks(csd), Ok(64 * 1024 * 1024 / 512));
    }

    #[test]
    fn v1_capacity_of_a_2_gib_card_with_1024_byte_blocks() {
        let csd = long_response(csd_v1(4095, 7, 10));
        assert_eq!(csd_blocks(csd), Ok(2 * 1024 * 1024 * 1024 / 512));
    }

    #[test]
    fn v2_capacity() {
        // 8 GiB: (C_SIZE + 1) * 512 KiB.
        let csd = long_response(csd_v2(16383));
        assert_eq!(csd_blocks(csd), Ok(8 * 1024 * 1024 * 1024 / 512));
        // The largest SDXC C_SIZE.
        let csd = long_response(csd_v2(0x3F_FFFF));
        assert_eq!(csd_blocks(csd), Ok(0x40_0000 * 1024));
    }

    #[test]
    fn bad_csds_are_errors() {
        let mut sduc = csd_v2(1);
        sduc[0] = 0x80;
        assert_eq!(csd_blocks(long_response(sduc)), Err(CsdError::Structure(2)));
        assert_eq!(
            csd_blocks(long_response(csd_v1(1, 1, 15))),
            Err(CsdError::BlockLength(15))
        );
        assert_eq!(
            csd_blocks(LongResponse([u32::MAX; 4])),
            Err(CsdError::Structure(3))
        );
    }

    #[test]
    fn ocr_and_addressing() {
        assert!(!Ocr(0x00FF_8000).powered_up());
        let sdsc = Ocr(0x80FF_8000);
        assert!(sdsc.powered_up() && !sdsc.high_capacity());
        let sdhc = Ocr(0xC0FF_8000);
        assert!(sdhc.powered_up() && sdhc.high_capacity());
        assert_eq!(op_cond_arg(true), 0x40FF_8000);
        assert_eq!(op_cond_arg(false), 0x00FF_8000);
        assert_eq!(data_address(3, false), Some(1536));
        assert_eq!(data_address(3, true), Some(3));
        assert_eq!(data_address(1 << 23, false), None);
        assert_eq!(data_address(u64::from(u32::MAX), true), Some(u32::MAX));
        assert_eq!(data_address(1 << 32, true), None);
        assert!(if_cond_accepted(0x1AA) && !if_cond_accepted(0x0AA));
        assert_eq!(rca_of(0x4567_0500), 0x4567);
        assert_eq!(rca_arg(0x4567), 0x4567_0000);
    }

    #[test]
    fn command_encoding() {
        assert_eq!(Command::new(0, 0, Response::None).register(), 0x0000);
        assert_eq!(Command::new(2, 0, Response::R2).register(), 0x0209);
        assert_eq!(Command::new(41, 0, Response::R3).register(), 0x2902);
        assert_eq!(Command::new(7, 0, Response::R1b).register(), 0x071B);
        assert_eq!(transfer_command(Direction::Read, 0, 4).register(), 0x123A);
        assert_eq!(transfer_command(Direction::Write, 0, 1).index, 24);
        assert_eq!(transfer_command(Direction::Write, 0, 2).index, 25);
        assert_eq!(transfer_command(Direction::Read, 0, 1).index, 17);
    }

    #[test]
    fn card_status() {
        let tran_ready = CardStatus((4 << 9) | (1 << 8));
        assert!(tran_ready.ready() && !tran_ready.error() && !tran_ready.busy());
        let programming = CardStatus(7 << 9);
        assert!(programming.busy() && !programming.ready());
        assert!(CardStatus(1 << 31).error());
        assert!(!CardStatus(1 << 25).error());
        assert_eq!(CardStatus(0xF << 9).state(), CardState::Reserved);
    }

    #[test]
    fn scr_bus_widths() {
        // QEMU's SCR: 1- and 4-bit.
        assert!(scr_supports_4bit([0x02, 0x25, 0, 0, 0, 0, 0, 0]));
        assert!(!scr_supports_4bit([0x02, 0x21, 0, 0, 0, 0, 0, 0]));
    }

    proptest::proptest! {
        #[test]
        fn csd_v1_decodes_any_fields(c_size in 0u32..4096, mult in 0u32..8, bl in 9u32..12) {
            let csd = long_response(csd_v1(c_size, mult, bl));
            let bytes = u64::from(c_size + 1) << (mult + 2 + bl);
            proptest::prop_assert_eq!(csd_blocks(csd), Ok(bytes / 512));
        }

        #[test]
        fn csd_v2_decodes_any_size(c_size in 0u32..0x40_0000) {
            let csd = long_response(csd_v2(c_size));
            proptest::prop_assert_eq!(csd_blocks(csd), Ok(u64::from(c_size + 1) * 1024));
        }

        #[test]
        fn csd_decoding_never_panics(words in proptest::array::uniform4(proptest::num::u32::ANY)) {
            let _ = csd_blocks(LongResponse(words));
        }
    }
}
