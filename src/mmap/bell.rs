//! The journal's doorbell: a futex word in a small shared file mapping.

use super::*;

/// A doorbell: the first 32-bit word of a small file that every process mapping it shares
/// read-write, on which a journal's writer rings after it publishes and readers wait with a
/// futex (docs/FORMAT.md, "The doorbell file"). Bit 0 says that someone is about to sleep;
/// bits 1 to 31 count rings (wrapping). The word holds no data: any value is valid.
pub(crate) struct Bell {
    region: Region,
}

/// Bytes of the doorbell file that are mapped (the file is at least this long).
pub(crate) const BELL_LEN: usize = 8;

impl Bell {
    /// Maps the first [`BELL_LEN`] bytes of `file`, which must be open for reading and
    /// writing and at least that long (the caller checked).
    pub(crate) fn map(file: &File) -> io::Result<Bell> {
        let map = MmapOptions::new().len(BELL_LEN).map_raw(file)?;
        Ok(Bell {
            region: Region::mapped(map),
        })
    }

    fn word(&self) -> &AtomicU32 {
        check_range(0, 4, self.region.len);
        // SAFETY: the word is inside the region (checked above) and 4-aligned (a mapping
        // starts on a page). The region is mapped read-write and shared, and every process
        // accesses this word only atomically (this type is the only code that touches it);
        // the reference borrows `self`, so it cannot outlive the mapping.
        unsafe { AtomicU32::from_ptr(self.region.at(0).cast::<u32>()) }
    }

    /// Rings after a publication: counts it, and wakes every sleeper if one said it would
    /// sleep (one atomic add when no one waits; the system call only when someone does).
    pub(crate) fn ring(&self) {
        let word = self.word();
        if word.fetch_add(2, Ordering::SeqCst) & 1 != 0 {
            word.fetch_and(!1, Ordering::SeqCst);
            self.wake();
        }
    }

    /// Says that the caller is about to sleep and returns the word to pass to
    /// [`Bell::wait`]: its ring count (bits 1 to 31) tells whether a ring came since the
    /// last call. A ring after this call wakes the sleeper (or makes it not sleep).
    pub(crate) fn arm(&self) -> u32 {
        self.word().fetch_or(1, Ordering::SeqCst) | 1
    }

    /// Sleeps until a ring, `timeout`, or a spurious wake-up; returns at once if the word is
    /// no longer `armed` (a ring came in between).
    pub(crate) fn wait(&self, armed: u32, timeout: std::time::Duration) {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: FUTEX_WAIT reads the 4-byte word at the pointer (inside the region, aligned:
        // see `word`) and the timespec, alive for the call; it writes no memory. The word is
        // in a shared file mapping, so the futex is a shared one (no FUTEX_PRIVATE_FLAG) that
        // wakers in other processes reach.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.word().as_ptr(),
                libc::FUTEX_WAIT,
                armed,
                &ts as *const libc::timespec,
                std::ptr::null::<u32>(),
                0u32,
            )
        };
    }

    /// Wakes every sleeper on the word, without ringing.
    pub(crate) fn wake(&self) {
        // SAFETY: FUTEX_WAKE only uses the word's address as a key (inside the region, see
        // `word`); it reads and writes no memory.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.word().as_ptr(),
                libc::FUTEX_WAKE,
                i32::MAX,
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                0u32,
            )
        };
    }
}
