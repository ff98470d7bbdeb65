//! OLE2 compound files (the Office formats before 2007): the header,
//! the FAT and DIFAT chains, the directory's root stream names, all bounded.

use super::{u16_at, u32_at, ContainerError, OfficeFormat, ReadAt};

/// The OLE2 compound file signature.
pub const OLE2_MAGIC: &[u8; 8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1";
/// Most directory sectors read (1,024 entries with 512-byte sectors,
/// 8,192 with 4096-byte ones; documents have dozens).
pub(super) const MAX_DIRECTORY_SECTORS: usize = 256;
/// Most DIFAT sectors followed to find one FAT sector: enough for a file
/// of 4 GiB in 512-byte sectors.
pub(super) const MAX_DIFAT_HOPS: u32 = 256;
pub(super) const END_OF_CHAIN: u32 = 0xFFFF_FFFE;

/// The format of an OLE2 compound file: the name of a stream at its root.
pub fn ole_format(file: &(impl ReadAt + ?Sized)) -> Result<OfficeFormat, ContainerError> {
    let mut header = [0u8; 512];
    if !file.read_exact_at(0, &mut header) || !header.starts_with(OLE2_MAGIC) {
        return Err(ContainerError::BadOle("its header is cut short"));
    }
    let shift = u16_at(&header, 30);
    if shift != 9 && shift != 12 {
        return Err(ContainerError::BadOle(
            "a sector size other than 512 or 4096",
        ));
    }
    let ole = Ole {
        file,
        sector: 1 << shift,
        header,
    };
    let names = ole.root_names()?;
    let has = |n: &str| names.iter().any(|x| x.eq_ignore_ascii_case(n));
    if has("EncryptedPackage") {
        return Err(ContainerError::EncryptedOffice);
    }
    if has("WordDocument") {
        return Ok(OfficeFormat::Doc);
    }
    if has("Workbook") || has("Book") {
        return Ok(OfficeFormat::Xls);
    }
    if has("PowerPoint Document") {
        return Ok(OfficeFormat::Ppt);
    }
    Err(ContainerError::UnknownOle)
}

pub(super) struct Ole<'a, F: ReadAt + ?Sized> {
    file: &'a F,
    sector: u64,
    header: [u8; 512],
}

impl<F: ReadAt + ?Sized> Ole<'_, F> {
    fn sector_at(&self, n: u32) -> Option<u64> {
        u64::from(n).checked_add(1)?.checked_mul(self.sector)
    }

    /// The FAT's entry for sector `n`: which sector follows it.
    fn next(&self, n: u32) -> Result<u32, ContainerError> {
        let per = (self.sector / 4) as u32;
        let fat_index = n / per;
        let fat_sector = self.difat(fat_index)?;
        let at = self
            .sector_at(fat_sector)
            .and_then(|s| s.checked_add(u64::from(n % per) * 4))
            .ok_or(ContainerError::BadOle("a FAT sector outside the file"))?;
        let mut entry = [0u8; 4];
        if !self.file.read_exact_at(at, &mut entry) {
            return Err(ContainerError::BadOle("a FAT sector outside the file"));
        }
        Ok(u32_at(&entry, 0))
    }

    /// The `index`-th FAT sector's number, from the header's 109 or the
    /// DIFAT chain after them (followed a bounded number of steps).
    fn difat(&self, index: u32) -> Result<u32, ContainerError> {
        if index < 109 {
            return Ok(u32_at(&self.header, 76 + 4 * index as usize));
        }
        let per = (self.sector / 4 - 1) as u32;
        let (mut hop, slot) = ((index - 109) / per, (index - 109) % per);
        if hop >= MAX_DIFAT_HOPS {
            return Err(ContainerError::BadOle("a FAT larger than 4 GiB of sectors"));
        }
        let mut sector = u32_at(&self.header, 68);
        let mut buf = vec![0u8; self.sector as usize];
        loop {
            let at = self
                .sector_at(sector)
                .ok_or(ContainerError::BadOle("a DIFAT sector outside the file"))?;
            if !self.file.read_exact_at(at, &mut buf) {
                return Err(ContainerError::BadOle("a DIFAT sector outside the file"));
            }
            if hop == 0 {
                return Ok(u32_at(&buf, 4 * slot as usize));
            }
            sector = u32_at(&buf, self.sector as usize - 4);
            hop -= 1;
        }
    }

    /// The names of the root storage's children: the directory read along
    /// its chain (bounded), then the root's sibling tree walked (each entry
    /// once).
    fn root_names(&self) -> Result<Vec<String>, ContainerError> {
        let mut directory = Vec::new();
        let mut sector = u32_at(&self.header, 48);
        let mut buf = vec![0u8; self.sector as usize];
        for _ in 0..MAX_DIRECTORY_SECTORS {
            if sector == END_OF_CHAIN {
                break;
            }
            let at = self.sector_at(sector).ok_or(ContainerError::BadOle(
                "a directory sector outside the file",
            ))?;
            if !self.file.read_exact_at(at, &mut buf) {
                return Err(ContainerError::BadOle(
                    "a directory sector outside the file",
                ));
            }
            directory.extend_from_slice(&buf);
            sector = self.next(sector)?;
        }
        let entries = directory.len() / 128;
        let entry = |i: u32| {
            let at = usize::try_from(i).ok()?.checked_mul(128)?;
            directory.get(at..at.checked_add(128)?)
        };
        let root = entry(0).ok_or(ContainerError::BadOle("no root entry"))?;
        let mut names = Vec::new();
        let mut seen = vec![false; entries];
        let mut stack = vec![u32_at(root, 76)];
        while let Some(i) = stack.pop() {
            let Some(e) = entry(i) else {
                continue; // NOSTREAM (all ones) or out of range: no entry
            };
            if std::mem::replace(&mut seen[i as usize], true) {
                continue;
            }
            let len = usize::from(u16_at(e, 64)).min(64);
            let units: Vec<u16> = e[..len]
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|&u| u != 0)
                .collect();
            names.push(String::from_utf16_lossy(&units));
            stack.extend([u32_at(e, 68), u32_at(e, 72)]);
        }
        Ok(names)
    }
}
