//! Writes the bootable image file: the loader, then the image proper (header, table of
//! parts, parts). It only writes bytes: what the parts are and where they go is planned by
//! the `microkit` tool.

use std::mem::size_of;

use atoll_abi::image::{
    IMAGE_ALIGN, IMAGE_MAGIC, IMAGE_VERSION, ImageHeader, PartEntry, encode_board_name,
    image_checksum,
};
use atoll_boards::Board;
use zerocopy::IntoBytes;

use crate::elf::{BinaryError, LoaderImage};

/// Offset of the arm64 Image header's `image_size` field.
const ARM64_IMAGE_SIZE_OFFSET: usize = 16;

/// One part to write: its table entry (`offset` is filled in when writing) and its bytes.
#[derive(Clone, Debug)]
pub struct ImagePart<'a> {
    /// Its table entry.
    pub entry: PartEntry,
    /// Its bytes.
    pub bytes: &'a [u8],
}

/// The image proper for `board`: header, table of parts and parts, in the order given.
pub fn image_proper(board: &Board, parts: &[ImagePart<'_>]) -> Result<Vec<u8>, BinaryError> {
    let board_field = encode_board_name(board.name)
        .ok_or_else(|| BinaryError::Layout(format!("board name `{}` is too long", board.name)))?;
    let mut entries: Vec<PartEntry> = parts.iter().map(|p| p.entry).collect();
    let table_end = (size_of::<ImageHeader>() + parts.len() * size_of::<PartEntry>()) as u64;
    let mut offset = table_end.next_multiple_of(IMAGE_ALIGN);
    for (entry, part) in entries.iter_mut().zip(parts) {
        entry.offset = offset;
        offset = (offset + part.bytes.len() as u64).next_multiple_of(IMAGE_ALIGN);
    }
    let header = ImageHeader {
        magic: IMAGE_MAGIC,
        version: IMAGE_VERSION,
        part_count: parts.len() as u32,
        image_size: offset,
        checksum: 0,
        header_size: size_of::<ImageHeader>() as u32,
        board: board_field,
        reserved: 0,
    };
    let mut out = vec![0u8; offset as usize];
    out[..size_of::<ImageHeader>()].copy_from_slice(header.as_bytes());
    for (i, (entry, part)) in entries.iter().zip(parts).enumerate() {
        let at = size_of::<ImageHeader>() + i * size_of::<PartEntry>();
        out[at..at + size_of::<PartEntry>()].copy_from_slice(entry.as_bytes());
        let start = entry.offset as usize;
        out[start..start + part.bytes.len()].copy_from_slice(part.bytes);
    }
    let checksum = image_checksum(&out);
    let at = std::mem::offset_of!(ImageHeader, checksum);
    out[at..at + 4].copy_from_slice(&checksum.to_le_bytes());
    Ok(out)
}

/// The whole bootable file: `loader`, then the image proper at the loader's end.
pub fn bootable_image(
    board: &Board,
    loader: &LoaderImage,
    parts: &[ImagePart<'_>],
) -> Result<Vec<u8>, BinaryError> {
    let expected_base = board.ram.base + board.image_offset;
    if loader.base != expected_base {
        return Err(BinaryError::Layout(format!(
            "loader is linked at {:#x}, but {} loads images at {expected_base:#x}",
            loader.base, board.name
        )));
    }
    let proper = image_proper(board, parts)?;
    let mut out = loader.bytes.clone();
    out.extend_from_slice(&proper);
    if board.image_offset + out.len() as u64 > board.boot_reserved {
        return Err(BinaryError::Layout(format!(
            "image is {} KiB, more than the {} KiB the board reserves for it",
            out.len() >> 10,
            (board.boot_reserved - board.image_offset) >> 10
        )));
    }
    let size = (out.len() as u64).to_le_bytes();
    out[ARM64_IMAGE_SIZE_OFFSET..ARM64_IMAGE_SIZE_OFFSET + 8].copy_from_slice(&size);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_abi::image::{ALL_REPLICAS, ImageError, ImageView, PartKind};
    use atoll_abi::spec::ReplicaSpec;

    /// A spec that passes `ReplicaSpec::check`.
    fn spec(replica: u32, core_mask: u64) -> ReplicaSpec {
        let mut spec = ReplicaSpec::new_zeroed();
        spec.replica = replica;
        spec.replica_count = 3;
        spec.core_mask = core_mask;
        spec.tick_hz = 100;
        spec.gic.version = 3;
        spec.ram.size = 0x400_0000;
        spec
    }

    /// A kernel of 0x5000 bytes of 0xAA and three replicas on cores 0, 1 and 2-3.
    fn packed() -> Vec<u8> {
        let board = &atoll_boards::QEMU_VIRT_AARCH64;
        let kernel = vec![0xAA; 0x5000];
        let specs = [spec(0, 0b1), spec(1, 0b10), spec(2, 0b1100)];
        let mut parts = vec![ImagePart {
            entry: PartEntry::new(PartKind::Kernel, ALL_REPLICAS, 0x5000, 0x2_6000, 0),
            bytes: &kernel,
        }];
        for s in &specs {
            let bytes = s.as_bytes();
            let size = bytes.len() as u64;
            parts.push(ImagePart {
                entry: PartEntry::new(PartKind::ReplicaSpec, s.replica, size, size, 0x2_6000),
                bytes,
            });
        }
        image_proper(board, &parts).unwrap()
    }

    #[test]
    fn packed_image_parses_back() {
        let image = packed();
        let view = ImageView::parse(&image, Some("qemu_virt_aarch64")).unwrap();
        assert_eq!(view.part_count(), 4);
        let specs: Vec<ReplicaSpec> = view
            .parts()
            .filter(|p| p.kind == PartKind::ReplicaSpec)
            .map(|p| ReplicaSpec::parse(p.bytes).unwrap())
            .collect();
        assert_eq!(specs.len(), 3);
        assert_eq!(specs[2].core_mask, 0b1100);
        let kernel = view.parts().find(|p| p.kind == PartKind::Kernel).unwrap();
        assert!(kernel.bytes.iter().all(|&b| b == 0xAA));
    }

    #[test]
    fn packing_is_deterministic() {
        assert_eq!(packed(), packed());
    }

    #[test]
    fn any_flipped_byte_is_refused() {
        let image = packed();
        for at in [0usize, 9, 24, 40, 70, 200, 0x1000, image.len() - 1] {
            let mut bad = image.clone();
            bad[at] ^= 0x40;
            assert!(
                ImageView::parse(&bad, Some("qemu_virt_aarch64")).is_err(),
                "flip at {at} accepted"
            );
        }
        let mut bad = image.clone();
        bad[0x1000] ^= 1;
        assert!(matches!(
            ImageView::parse(&bad, None),
            Err(ImageError::ChecksumMismatch { .. })
        ));
    }

    #[test]
    fn truncated_and_foreign_images_are_refused() {
        let image = packed();
        assert_eq!(
            ImageView::parse(&image[..10], None).unwrap_err(),
            ImageError::Truncated
        );
        assert!(matches!(
            ImageView::parse(&image[..image.len() - 1], None),
            Err(ImageError::BadHeader(_))
        ));
        assert_eq!(
            ImageView::parse(&image, Some("zcu102")).unwrap_err(),
            ImageError::WrongBoard
        );
        assert_eq!(
            ImageView::parse(&[0u8; 4096], None).unwrap_err(),
            ImageError::BadMagic
        );
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics_on_mutations(flips in proptest::collection::vec((0usize..0x6000, proptest::num::u8::ANY), 0..8), cut in 0usize..0x8000) {
            let mut image = packed();
            for (at, v) in flips {
                if at < image.len() { image[at] = v; }
            }
            image.truncate(cut.max(1).min(image.len()));
            let _ = ImageView::parse(&image, None);
        }
    }
}
