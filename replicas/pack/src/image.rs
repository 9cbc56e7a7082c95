//! Packs the loader, kernel and replica specs into one bootable image file.

use std::mem::size_of;

use atoll_abi::image::{
    ALL_REPLICAS, IMAGE_ALIGN, IMAGE_MAGIC, IMAGE_VERSION, ImageHeader, PartEntry, PartKind,
    encode_board_name, image_checksum,
};
use atoll_boards::Board;
use zerocopy::IntoBytes;

use crate::PackError;
use crate::elf::{KernelImage, LoaderImage};
use crate::plan::PlannedReplica;

/// Offset of the arm64 Image header's `image_size` field.
const ARM64_IMAGE_SIZE_OFFSET: usize = 16;

/// A part beyond the kernel and the specs: a PD image or a region's initial contents.
#[derive(Clone, Debug)]
pub struct ExtraPart {
    /// Its table entry (`offset` is filled in when packing).
    pub entry: PartEntry,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// The image proper: header, table of parts and parts.
pub fn image_proper(
    board: &Board,
    kernel: &KernelImage,
    initialiser: Option<&KernelImage>,
    replicas: &[PlannedReplica],
    extra: &[ExtraPart],
) -> Result<Vec<u8>, PackError> {
    let board_field = encode_board_name(board.name)
        .ok_or_else(|| PackError::Layout(format!("board name `{}` is too long", board.name)))?;
    // A program every replica runs, flattened: one copy in the image, placed by the loader.
    let program = |kind: PartKind, program: &KernelImage, dest_offset: u64| PartEntry {
        kind: kind as u32,
        replica: ALL_REPLICAS,
        offset: 0,
        file_size: program.bytes.len() as u64,
        mem_size: program.mem_size,
        dest_offset,
        vaddr: program.vaddr,
        entry: program.entry,
        reserved: 0,
    };
    let mut parts: Vec<(PartEntry, &[u8])> =
        vec![(program(PartKind::Kernel, kernel, 0), &kernel.bytes)];
    if let (Some(init), Some(first)) = (initialiser, replicas.first()) {
        let offset = first.spec.initialiser.offset;
        parts.push((program(PartKind::Initialiser, init, offset), &init.bytes));
    }
    for r in replicas {
        let bytes = r.spec.as_bytes();
        let entry = PartEntry {
            kind: PartKind::ReplicaSpec as u32,
            replica: r.spec.replica,
            offset: 0,
            file_size: bytes.len() as u64,
            mem_size: bytes.len() as u64,
            dest_offset: r.spec_offset,
            vaddr: 0,
            entry: 0,
            reserved: 0,
        };
        parts.push((entry, bytes));
    }
    for part in extra {
        parts.push((part.entry, &part.bytes));
    }
    let table_end = (size_of::<ImageHeader>() + parts.len() * size_of::<PartEntry>()) as u64;
    let mut offset = table_end.next_multiple_of(IMAGE_ALIGN);
    for (entry, bytes) in &mut parts {
        entry.offset = offset;
        offset = (offset + bytes.len() as u64).next_multiple_of(IMAGE_ALIGN);
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
    for (i, (entry, bytes)) in parts.iter().enumerate() {
        let at = size_of::<ImageHeader>() + i * size_of::<PartEntry>();
        out[at..at + size_of::<PartEntry>()].copy_from_slice(entry.as_bytes());
        out[entry.offset as usize..entry.offset as usize + bytes.len()].copy_from_slice(bytes);
    }
    let checksum = image_checksum(&out);
    let at = std::mem::offset_of!(ImageHeader, checksum);
    out[at..at + 4].copy_from_slice(&checksum.to_le_bytes());
    Ok(out)
}

/// The whole bootable file: loader, then the image proper at the loader's end.
pub fn bootable_image(
    board: &Board,
    loader: &LoaderImage,
    kernel: &KernelImage,
    initialiser: Option<&KernelImage>,
    replicas: &[PlannedReplica],
    extra: &[ExtraPart],
) -> Result<Vec<u8>, PackError> {
    let expected_base = board.ram.base + board.image_offset;
    if loader.base != expected_base {
        return Err(PackError::Layout(format!(
            "loader is linked at {:#x}, but {} loads images at {expected_base:#x}",
            loader.base, board.name
        )));
    }
    let proper = image_proper(board, kernel, initialiser, replicas, extra)?;
    let mut out = loader.bytes.clone();
    out.extend_from_slice(&proper);
    if board.image_offset + out.len() as u64 > board.boot_reserved {
        return Err(PackError::Layout(format!(
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
    use crate::plan::{LayoutRequest, plan};
    use atoll_abi::image::{ImageError, ImageView};
    use atoll_abi::spec::ReplicaSpec;

    fn packed() -> Vec<u8> {
        let board = &atoll_boards::QEMU_VIRT_AARCH64;
        let kernel = crate::plan::tests::fake_kernel();
        let replicas = plan(board, &LayoutRequest::default_for(board), &kernel).unwrap();
        image_proper(board, &kernel, None, &replicas, &[]).unwrap()
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
