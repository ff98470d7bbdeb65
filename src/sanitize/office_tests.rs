use std::io::Write;

use super::ole::END_OF_CHAIN;
use super::*;
use crate::sanitize::{detect_file, FileType};

fn sample(name: &str) -> Vec<u8> {
    let path = format!("{}/samples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (run samples/office/make_office.py)"))
}

fn format_of(bytes: &[u8]) -> Result<FileType, ContainerError> {
    detect_file(&bytes[..bytes.len().min(64 << 10)], bytes)
}

/// A ZIP of stored entries, written by hand so a test can break it.
fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for (name, data) in entries {
        let crc = {
            let mut h = flate2::Crc::new();
            h.update(data);
            h.sum()
        };
        let offset = out.len() as u32;
        out.extend_from_slice(b"PK\x03\x04\x14\0\0\0\0\0\0\0\x21\0");
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(b"PK\x01\x02\x14\0\x14\0\0\0\0\0\0\0\x21\0");
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let (cd_at, cd_len, n) = (out.len() as u32, central.len() as u32, entries.len() as u16);
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&cd_len.to_le_bytes());
    out.extend_from_slice(&cd_at.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

const DOCX_TYPES: &[u8] = br#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#;

/// A compound file of 512-byte sectors: sector 0 the FAT, sector 1 the
/// directory (the root and `names` as its children, chained through
/// their right links).
fn cfb(names: &[&str]) -> Vec<u8> {
    assert!(names.len() <= 3);
    let mut header = vec![0u8; 512];
    header[..8].copy_from_slice(OLE2_MAGIC);
    header[24..26].copy_from_slice(&0x3Eu16.to_le_bytes());
    header[26..28].copy_from_slice(&3u16.to_le_bytes());
    header[28..30].copy_from_slice(&0xFFFEu16.to_le_bytes());
    header[30..32].copy_from_slice(&9u16.to_le_bytes());
    header[32..34].copy_from_slice(&6u16.to_le_bytes());
    header[44..48].copy_from_slice(&1u32.to_le_bytes()); // FAT sectors
    header[48..52].copy_from_slice(&1u32.to_le_bytes()); // directory at 1
    header[56..60].copy_from_slice(&4096u32.to_le_bytes());
    header[60..64].copy_from_slice(&END_OF_CHAIN.to_le_bytes());
    header[68..72].copy_from_slice(&END_OF_CHAIN.to_le_bytes());
    for slot in 0..109 {
        header[76 + 4 * slot..80 + 4 * slot].copy_from_slice(&u32::MAX.to_le_bytes());
    }
    header[76..80].copy_from_slice(&0u32.to_le_bytes());
    let mut fat = vec![0xFFu8; 512];
    fat[..4].copy_from_slice(&0xFFFF_FFFDu32.to_le_bytes());
    fat[4..8].copy_from_slice(&END_OF_CHAIN.to_le_bytes());
    let entry = |name: &str, kind: u8, right: u32, child: u32| {
        let mut e = vec![0u8; 128];
        let units: Vec<u8> = name
            .encode_utf16()
            .chain([0])
            .flat_map(u16::to_le_bytes)
            .collect();
        e[..units.len()].copy_from_slice(&units);
        e[64..66].copy_from_slice(&(units.len() as u16).to_le_bytes());
        e[66] = kind;
        e[68..72].copy_from_slice(&u32::MAX.to_le_bytes());
        e[72..76].copy_from_slice(&right.to_le_bytes());
        e[76..80].copy_from_slice(&child.to_le_bytes());
        e
    };
    let mut directory = entry(
        "Root Entry",
        5,
        u32::MAX,
        if names.is_empty() { u32::MAX } else { 1 },
    );
    for (i, name) in names.iter().enumerate() {
        let right = if i + 1 < names.len() {
            i as u32 + 2
        } else {
            u32::MAX
        };
        directory.extend(entry(name, 2, right, u32::MAX));
    }
    directory.resize(512, 0);
    [header, fat, directory].concat()
}

#[test]
fn test_office_samples_detected_by_content() {
    for (name, format) in [
        ("office/benign.docx", OfficeFormat::Docx),
        ("office/benign.doc", OfficeFormat::Doc),
        ("office/benign.xlsx", OfficeFormat::Xlsx),
        ("office/benign.xls", OfficeFormat::Xls),
        ("office/benign.pptx", OfficeFormat::Pptx),
        ("office/benign.ppt", OfficeFormat::Ppt),
        ("office/benign.odt", OfficeFormat::Odt),
        ("office/benign.ods", OfficeFormat::Ods),
        ("office/benign.odp", OfficeFormat::Odp),
        ("office/benign.odg", OfficeFormat::Odg),
        ("office/benign.rtf", OfficeFormat::Rtf),
        ("office/hostile-macro-vba.docx", OfficeFormat::Docx),
        ("office/hostile-remote-template.docx", OfficeFormat::Docx),
        ("office/hostile-external-link.xlsx", OfficeFormat::Xlsx),
        ("office/hostile-ole-object.pptx", OfficeFormat::Pptx),
        (
            "../tests/data/office/hostile-zip-bomb.docx",
            OfficeFormat::Docx,
        ),
        (
            "../tests/data/office/hostile-million-rows.xlsx",
            OfficeFormat::Xlsx,
        ),
        ("office/hostile-odt-pdf-polyglot.odt", OfficeFormat::Odt),
        ("office/hostile-macro-onload.odt", OfficeFormat::Odt),
    ] {
        assert_eq!(
            format_of(&sample(name)),
            Ok(FileType::Office(format)),
            "{name}"
        );
    }
}

#[test]
fn test_zip_without_a_document_part_stays_a_zip() {
    assert_eq!(
        format_of(&sample("unsupported-archive.zip")),
        Err(ContainerError::PlainZip)
    );
    assert_eq!(
        format_of(&sample("hostile-polyglot-pdf-zip.pdf")),
        Ok(FileType::Pdf)
    );
    assert_eq!(ContainerError::PlainZip.to_string(), "ZIP archive");
}

#[test]
fn test_zip_content_types_found_anywhere_in_the_directory() {
    let bytes = zip(&[
        ("word/document.xml", b"<w:document/>"),
        ("[Content_Types].xml", DOCX_TYPES),
    ]);

    assert_eq!(format_of(&bytes), Ok(FileType::Office(OfficeFormat::Docx)));
}

#[test]
fn test_zip_cut_short_bad_zip() {
    let bytes = zip(&[("[Content_Types].xml", DOCX_TYPES)]);

    let cut = &bytes[..bytes.len() - 10];

    assert_eq!(
        format_of(cut),
        Err(ContainerError::BadZip("no end of central directory record"))
    );
}

#[test]
fn test_zip_directory_offset_past_the_end_bad_zip() {
    let mut bytes = zip(&[("[Content_Types].xml", DOCX_TYPES)]);
    let at = bytes.len() - 6;
    bytes[at..at + 4].copy_from_slice(&0x7FFF_FFFFu32.to_le_bytes());

    assert_eq!(
        format_of(&bytes),
        Err(ContainerError::BadZip("central directory outside the file"))
    );
}

#[test]
fn test_zip_entry_claiming_four_gib_is_not_read() {
    let mut bytes = zip(&[("[Content_Types].xml", DOCX_TYPES)]);
    // The central entry's compressed size: 0xFFFFFFF0.
    let cd = bytes.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    bytes[cd + 20..cd + 24].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());

    assert!(matches!(
        format_of(&bytes),
        Err(ContainerError::BadPart { why, .. }) if why == "larger than 1 MiB"
    ));
}

#[test]
fn test_zip_part_inflating_past_one_mib_refused() {
    let mut deflated = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    deflated
        .write_all(&vec![b' '; (MAX_PART + 10) as usize])
        .unwrap();
    let deflated = deflated.finish().unwrap();
    let mut bytes = zip(&[("[Content_Types].xml", &deflated)]);
    // Mark the entry deflated, in its local and central headers.
    for sig in [&b"PK\x03\x04"[..], b"PK\x01\x02"] {
        let at = bytes.windows(4).position(|w| w == sig).unwrap();
        let method = if sig == b"PK\x03\x04" {
            at + 8
        } else {
            at + 10
        };
        bytes[method] = 8;
    }

    assert!(matches!(
        format_of(&bytes),
        Err(ContainerError::BadPart { why, .. }) if why == "it inflates to more than 1 MiB"
    ));
}

#[test]
fn test_ooxml_with_two_kinds_of_main_part_refused() {
    let types = br#"<Types><Override ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/><Override ContentType='application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml'/></Types>"#;

    assert_eq!(
        format_of(&zip(&[("[Content_Types].xml", types)])),
        Err(ContainerError::AmbiguousOoxml)
    );
}

#[test]
fn test_ooxml_type_in_another_attribute_does_not_count() {
    let types = br#"<Types><Override PartName="/x" XContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml" ContentType="text/plain"/></Types>"#;

    assert_eq!(
        format_of(&zip(&[("[Content_Types].xml", types)])),
        Err(ContainerError::UnknownOoxml)
    );
}

#[test]
fn test_odf_unknown_mimetype_named_escaped() {
    let bytes = zip(&[(
        "mimetype",
        b"application/vnd.oasis.opendocument.formula\x1b[2J",
    )]);

    assert_eq!(
        format_of(&bytes),
        Err(ContainerError::UnknownOdf(
            "\"application/vnd.oasis.opendocument.formula\\x1b[2J\"".into()
        ))
    );
}

#[test]
fn test_ole_root_streams_give_the_format() {
    assert_eq!(
        format_of(&cfb(&["WordDocument"])),
        Ok(FileType::Office(OfficeFormat::Doc))
    );
    assert_eq!(
        format_of(&cfb(&["Workbook"])),
        Ok(FileType::Office(OfficeFormat::Xls))
    );
    assert_eq!(
        format_of(&cfb(&["Current User", "PowerPoint Document"])),
        Ok(FileType::Office(OfficeFormat::Ppt))
    );
    assert_eq!(
        format_of(&cfb(&["__substg1.0_0037001F"])),
        Err(ContainerError::UnknownOle)
    );
}

#[test]
fn test_ole_encrypted_ooxml_said_so() {
    assert_eq!(
        format_of(&cfb(&["EncryptionInfo", "EncryptedPackage"])),
        Err(ContainerError::EncryptedOffice)
    );
}

#[test]
fn test_ole_sibling_cycle_ends() {
    let mut bytes = cfb(&["Stream", "Other"]);
    // Entry 2's right sibling back to entry 1.
    let e2 = 1024 + 2 * 128;
    bytes[e2 + 72..e2 + 76].copy_from_slice(&1u32.to_le_bytes());

    assert_eq!(format_of(&bytes), Err(ContainerError::UnknownOle));
}

#[test]
fn test_ole_directory_chain_cycle_ends() {
    let mut bytes = cfb(&["Stream"]);
    // The FAT says sector 1 (the directory) is followed by itself.
    bytes[512 + 4..512 + 8].copy_from_slice(&1u32.to_le_bytes());

    assert_eq!(format_of(&bytes), Err(ContainerError::UnknownOle));
}

#[test]
fn test_ole_directory_outside_the_file_bad_ole() {
    let mut bytes = cfb(&["WordDocument"]);
    bytes[48..52].copy_from_slice(&0x7FFF_FFFFu32.to_le_bytes());

    assert_eq!(
        format_of(&bytes),
        Err(ContainerError::BadOle(
            "a directory sector outside the file"
        ))
    );
}

#[test]
fn test_ole_header_cut_short_bad_ole() {
    assert_eq!(
        format_of(&OLE2_MAGIC[..]),
        Err(ContainerError::BadOle("its header is cut short"))
    );
}
