//! The shared-memory arena of the bulk path (docs/PROTOCOL.md, "The arena").
//!
//! One sealed memfd per worker process, two regions of equal size: the
//! input region `[0, region)` that the host writes and the output region
//! `[region, 2 × region)` that the plugin writes. The host creates, seals
//! and maps it ([`Arena::create`]) and hands it to the plugin as fd 3; the
//! SDK maps that fd ([`Arena::attach`]). Pages are touched once and then
//! reused by every later job, so a bulk job costs one copy per side and no
//! page faults, where the pipes cost two kernel copies and fresh buffers.
//!
//! The memory is shared with a hostile process, so the host never forms a
//! reference into it: bytes go in and come out with one copy through raw
//! pointers ([`Arena::write`], [`Arena::read_into`]), and what the host
//! copied out is a snapshot the plugin can no longer change. The seals
//! (no shrink, no grow, no new seals) mean the plugin can never truncate the
//! file under the host's mapping, so the host cannot take a SIGBUS.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

pub use plugwarden_proto::arena::{PLUGIN_FD, THRESHOLD};

/// `MFD_NOEXEC_SEAL` (Linux 6.3): the memfd can never be made executable.
const MFD_NOEXEC_SEAL: libc::c_uint = 0x0008;

/// A mapped arena: `2 × region` bytes of a memfd, shared with one plugin.
#[derive(Debug)]
pub struct Arena {
    ptr: NonNull<u8>,
    region: usize,
    fd: OwnedFd,
}

// SAFETY: the mapping belongs to this value alone (unmapped in Drop) and is
// only accessed through raw-pointer copies, never through references held
// across calls, so moving it to another thread is sound.
unsafe impl Send for Arena {}

impl Arena {
    /// Host side: creates, sizes, seals and maps a fresh arena with two
    /// regions of `region` bytes (a multiple of the page size). The file is
    /// sparse: untouched pages cost nothing. `noexec_seal`: create it with
    /// `MFD_NOEXEC_SEAL` (Linux 6.3+; the host's kernel probe decides).
    pub fn create(region: usize, noexec_seal: bool) -> io::Result<Arena> {
        let total = region
            .checked_mul(2)
            .filter(|&t| t > 0 && i64::try_from(t).is_ok())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        let fd = memfd(noexec_seal)?;
        // SAFETY: ftruncate on a memfd we own; `total` fits in off_t (checked).
        if unsafe { libc::ftruncate(fd.as_raw_fd(), total as libc::off_t) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: F_ADD_SEALS on a memfd we own, with integer flags.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Arena::map(fd, region)
    }

    /// Plugin side: maps the arena inherited as `fd` if it is open and a
    /// regular file (a memfd) of exactly `2 × region` bytes; on success the
    /// arena owns `fd`, on failure it is left as it was. Uses only `fstat`
    /// and `mmap`, which every policy allows (`@startup`).
    ///
    /// # Safety
    ///
    /// Nothing else in this process may own or close `fd`.
    pub unsafe fn attach(fd: RawFd, region: usize) -> io::Result<Arena> {
        let einval = || io::Error::from_raw_os_error(libc::EINVAL);
        let total = region.checked_mul(2).ok_or_else(einval)?;
        // SAFETY: stat is plain data; fstat fills it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat writes one struct stat into `st`; a closed fd is EBADF.
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        if st.st_mode & libc::S_IFMT != libc::S_IFREG
            || u64::try_from(st.st_size) != Ok(total as u64)
        {
            return Err(einval());
        }
        // SAFETY: fd is open (fstat succeeded) and ours alone (the caller's
        // contract).
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Arena::map(fd, region)
    }

    fn map(fd: OwnedFd, region: usize) -> io::Result<Arena> {
        let total = region * 2;
        // SAFETY: a fresh shared mapping of our own fd; the kernel picks the
        // address, and the result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Arena { ptr, region, fd })
    }

    /// Size of each region in bytes.
    pub fn region(&self) -> usize {
        self.region
    }

    /// The memfd, to hand to the plugin at spawn.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Copies `src` into the arena at `offset`; false (and nothing written)
    /// when it does not fit.
    pub fn write(&self, offset: usize, src: &[u8]) -> bool {
        if !fits(offset, src.len(), 2 * self.region) {
            return false;
        }
        // SAFETY: [offset, offset + len) is inside the mapping (checked
        // above); `src` is our own memory, distinct from the mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(offset), src.len())
        };
        true
    }

    /// Appends `len` bytes of the arena at `offset` to `dst` (one copy: a
    /// snapshot); false (and nothing appended) when out of bounds.
    pub fn read_into(&self, offset: usize, len: usize, dst: &mut Vec<u8>) -> bool {
        if !fits(offset, len, 2 * self.region) {
            return false;
        }
        dst.reserve(len);
        let at = dst.len();
        // Only for a fresh output big enough to have its own mapping (a
        // bulk answer in one part; glibc serves smaller ones from its heap,
        // whose later tenants must not inherit the advice): on a machine
        // short of free huge pages, THP faults may compact memory first.
        if at == 0 && len >= 32 << 20 {
            advise_huge_pages(dst.spare_capacity_mut().as_mut_ptr().cast(), len);
        }
        // SAFETY: the source range is inside the mapping (checked above);
        // `dst` has `len` spare bytes after `at` (reserved above), which the
        // copy initialises before set_len.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().add(offset),
                dst.as_mut_ptr().add(at),
                len,
            );
            dst.set_len(at + len);
        }
        true
    }

    /// Drops this process's view of the whole pages inside `[offset,
    /// offset + len)` (`MADV_DONTNEED`): the memfd keeps their contents
    /// and the plugin's mapping is untouched, but they no longer count in
    /// this process's resident set. The host streams a big input or output
    /// through the arena a chunk at a time this way. Only a hint: errors
    /// are ignored.
    pub fn release(&self, offset: usize, len: usize) {
        if !fits(offset, len, 2 * self.region) {
            return;
        }
        let page = 4096;
        let start = offset.next_multiple_of(page);
        let end = (offset + len) & !(page - 1);
        if end > start {
            // SAFETY: the range lies inside our shared mapping (checked
            // above); on a MAP_SHARED mapping MADV_DONTNEED only unmaps
            // pages from this process, their data stays in the memfd.
            unsafe {
                libc::madvise(
                    self.ptr.as_ptr().add(start).cast(),
                    end - start,
                    libc::MADV_DONTNEED,
                )
            };
        }
    }

    /// Plugin side: the input region `[offset, offset + len)` as a slice,
    /// `None` when out of the input region.
    ///
    /// # Safety
    ///
    /// Nothing may write that range while the slice lives. The host writes
    /// the input region only before it sends a job and not again until the
    /// job is answered, so a slice used for one job's handler is sound.
    pub unsafe fn input(&self, offset: usize, len: usize) -> Option<&[u8]> {
        if !fits(offset, len, self.region) {
            return None;
        }
        // SAFETY: in bounds (checked above); no writer while it lives (the
        // caller's contract).
        Some(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(offset), len) })
    }
}

impl Arena {
    /// Plugin side: the output region's `[offset, offset + len)` to write
    /// in place, `None` when out of the output region.
    ///
    /// # Safety
    ///
    /// Nothing else may read or write that range while the slice lives.
    /// The host reads a part only once its frame is sent, and never writes
    /// the output region, so a slice filled before its part is sent is
    /// sound; no two live slices may overlap.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn output_mut(&self, offset: usize, len: usize) -> Option<&mut [u8]> {
        if offset < self.region || !fits(offset, len, 2 * self.region) {
            return None;
        }
        // SAFETY: in bounds of the mapping (checked above); no other
        // reader or writer while it lives (the caller's contract).
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(offset), len) })
    }
}

/// Asks for transparent huge pages over the whole 2 MiB pages inside
/// `[ptr, ptr + len)` before they are first written: a fresh 64 MiB output
/// then costs 32 page faults instead of 16384 (where THP is `madvise`).
/// Only a hint: errors are ignored.
fn advise_huge_pages(ptr: *mut u8, len: usize) {
    const HUGE: usize = 2 << 20;
    let start = (ptr as usize).next_multiple_of(HUGE);
    let end = (ptr as usize).saturating_add(len) & !(HUGE - 1);
    if end > start {
        // SAFETY: the range lies inside memory the caller owns (a Vec's
        // spare capacity); MADV_HUGEPAGE changes no contents.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

/// True when `[offset, offset + len)` lies within `[0, size)`.
fn fits(offset: usize, len: usize, size: usize) -> bool {
    offset.checked_add(len).is_some_and(|end| end <= size)
}

fn memfd(noexec_seal: bool) -> io::Result<OwnedFd> {
    let name = c"plugwarden-arena";
    let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // Before Linux 6.3 (or with PLUGWARDEN_NO_MFD_NOEXEC_SEAL=1) there is
    // no NOEXEC_SEAL; the plugin's seccomp filters still forbid executable
    // mappings and exec of a memfd.
    let flags = if noexec_seal {
        base | MFD_NOEXEC_SEAL
    } else {
        base
    };
    // SAFETY: name is NUL-terminated; flags are integers.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`; no reference into
        // it outlives `self` (the SDK's slices borrow `self`).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), 2 * self.region) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_arena_write_then_read_round_trips_and_bounds_hold() {
        let a = Arena::create(1 << 16, false).unwrap();
        assert!(a.write(100, b"hello"));
        let mut out = b"x".to_vec();
        assert!(a.read_into(100, 5, &mut out));
        assert_eq!(out, b"xhello");
        assert!(!a.write((2 << 16) - 2, b"abc"));
        assert!(!a.read_into(usize::MAX, 2, &mut out));
        assert_eq!(out, b"xhello");
    }

    #[test]
    fn test_arena_output_mut_only_in_the_output_region() {
        let region = 1 << 16;
        let a = Arena::create(region, false).unwrap();
        // SAFETY: no other slice of the arena lives in this test.
        let dst = unsafe { a.output_mut(region + 8, 4) }.unwrap();
        dst.copy_from_slice(b"page");
        let mut out = Vec::new();
        assert!(a.read_into(region + 8, 4, &mut out));
        assert_eq!(out, b"page");
        // SAFETY: as above; each call returns None and forms no slice.
        unsafe {
            assert!(
                a.output_mut(region - 1, 2).is_none(),
                "reaches the input region"
            );
            assert!(a.output_mut(2 * region - 3, 4).is_none(), "past the end");
            assert!(a.output_mut(usize::MAX, 2).is_none(), "overflow");
        }
    }

    #[test]
    fn test_arena_release_keeps_the_bytes() {
        let a = Arena::create(1 << 16, false).unwrap();
        let data = vec![7u8; 3 << 12];
        assert!(a.write(4096, &data));
        a.release(0, 1 << 16);
        let mut out = Vec::new();
        assert!(a.read_into(4096, data.len(), &mut out));
        assert_eq!(out, data);
    }

    #[test]
    fn test_arena_shrink_and_grow_are_sealed_eperm() {
        let a = Arena::create(1 << 16, false).unwrap();
        // SAFETY: ftruncate on our own fd, expected to fail.
        let shrink = unsafe { libc::ftruncate(a.fd().as_raw_fd(), 0) };
        assert_eq!(shrink, -1);
        assert_eq!(io::Error::last_os_error().raw_os_error(), Some(libc::EPERM));
        // SAFETY: as above.
        let grow = unsafe { libc::ftruncate(a.fd().as_raw_fd(), 1 << 20) };
        assert_eq!(grow, -1);
    }

    #[test]
    fn test_arena_attach_wrong_size_is_einval() {
        use std::os::fd::IntoRawFd;
        let a = Arena::create(1 << 16, false).unwrap();
        let dup = a.fd().try_clone_to_owned().unwrap().into_raw_fd();
        // SAFETY: `dup` is ours alone.
        let err = unsafe { Arena::attach(dup, 1 << 12) }.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        // SAFETY: as above; on success the arena owns it.
        let b = unsafe { Arena::attach(dup, 1 << 16) }.unwrap();
        assert!(a.write(1 << 16, b"shared"));
        let mut out = Vec::new();
        assert!(b.read_into(1 << 16, 6, &mut out));
        assert_eq!(out, b"shared");
    }
}
