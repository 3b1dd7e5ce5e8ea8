//! The memory pages of the arrays a read returns.
//!
//! numpy asks the kernel for transparent huge pages for every array of 4 MiB or more. Where the
//! machine owns its memory, that makes a large read's new output fault in 2 MiB at a time,
//! cheaper than 4 KiB at a time. In a virtual machine whose balloon device reports free memory
//! to the host (virtio's free page reporting), the guest hands the host its free blocks of
//! 2 MiB and up, and huge pages come from such blocks: each faults in from the host when first
//! touched, 5–30 ms a page on the benchmark machine against 0.2 ms for memory the guest holds.
//! There (`benches/spaced_reads.py`) a 256 MiB full read that was the first of its process, or
//! came seconds after the last, took 0.7–2.4 s with huge pages and 0.22–0.68 s with small
//! pages, which the guest takes from the small free blocks it still holds. Only reads back to
//! back, each reusing the huge pages the last one freed, were faster with huge pages (0.15 s
//! against 0.23 s uncompressed, 0.34 against 0.36 s zstd). So where free page reporting is on,
//! outputs use small pages unless `oxzarr.config` says otherwise.
//!
//! (Faulting an output's huge pages in one by one while they come quickly, and giving the rest
//! small pages, was tried: the guest's small freed pages do not come back as huge ones soon
//! enough, so after one such read every read found slow huge pages within its first 30 MiB,
//! and it ran no faster than small pages alone.)

use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// Which pages the outputs of reads get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HugePages {
    /// Small pages where the host takes free memory back (see [`host_reclaims_free_memory`]);
    /// numpy's choice elsewhere.
    Auto,
    /// numpy's choice: huge pages for arrays of 4 MiB or more, where the kernel allows them.
    Allowed,
    /// Small pages always.
    Avoided,
}

/// The policy in force, set from `oxzarr.config` (0 Auto, 1 Allowed, 2 Avoided).
static POLICY: AtomicU8 = AtomicU8::new(0);

pub fn set_policy(policy: HugePages) {
    let v = match policy {
        HugePages::Auto => 0,
        HugePages::Allowed => 1,
        HugePages::Avoided => 2,
    };
    POLICY.store(v, Ordering::Relaxed);
}

pub fn policy() -> HugePages {
    match POLICY.load(Ordering::Relaxed) {
        1 => HugePages::Allowed,
        2 => HugePages::Avoided,
        _ => HugePages::Auto,
    }
}

/// Outputs smaller than numpy's threshold for huge pages are left alone.
pub const MIN_BYTES: usize = 4 << 20;

/// virtio's device id of a memory balloon, and its feature bit of free page reporting
/// (the virtio specification, "Memory Balloon Device").
const BALLOON_DEVICE: &str = "0x0005";
const FEATURE_REPORTING: usize = 5;

/// Whether this machine is a virtual machine whose balloon driver reports free memory to the
/// host. Read from sysfs once per process.
pub fn host_reclaims_free_memory() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| balloon_reports_free_pages(Path::new("/sys/bus/virtio/devices")))
}

/// Whether any virtio device under `devices` (sysfs's layout: a directory per device with
/// `device`, `features` as one '0'/'1' per feature bit, and a `driver` link once bound) is a
/// bound balloon with free page reporting negotiated. Anything unreadable counts as no.
fn balloon_reports_free_pages(devices: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(devices) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let dir = entry.path();
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        read("device").trim() == BALLOON_DEVICE
            && dir.join("driver").exists()
            && read("features").as_bytes().get(FEATURE_REPORTING) == Some(&b'1')
    })
}

/// Whether outputs should avoid huge pages under the current policy.
fn avoid_huge_pages() -> bool {
    match policy() {
        HugePages::Allowed => false,
        HugePages::Avoided => true,
        HugePages::Auto => host_reclaims_free_memory(),
    }
}

/// Called on a new output before anything is written to it: asks the kernel for small pages
/// for it when the policy says so, and otherwise for huge pages when `huge_by_default` (what
/// numpy asks for its own arrays of [`MIN_BYTES`] and up, unless switched off: the outputs are
/// allocated without numpy's advice). Advice only: if the kernel refuses it, the read goes on
/// with the pages it gets.
pub fn prepare_output(buf: &mut [u8], huge_by_default: bool) {
    if buf.len() < MIN_BYTES {
        return;
    }
    if avoid_huge_pages() {
        advise(buf, Advice::SmallPages);
    } else if huge_by_default {
        advise(buf, Advice::HugePages);
    }
}

enum Advice {
    SmallPages,
    HugePages,
}

#[cfg(target_os = "linux")]
fn advise(buf: &mut [u8], advice: Advice) {
    // SAFETY: sysconf has no preconditions.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => return,
    };
    let start = (buf.as_ptr() as usize).next_multiple_of(page);
    let end = (buf.as_ptr() as usize + buf.len()) / page * page;
    if end > start {
        let advice = match advice {
            Advice::SmallPages => libc::MADV_NOHUGEPAGE,
            Advice::HugePages => libc::MADV_HUGEPAGE,
        };
        // SAFETY: [start, end) is whole pages inside `buf`, which this call borrows mutably.
        // Either advice changes how the kernel backs those pages, never what they hold.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, advice) };
    }
}

#[cfg(not(target_os = "linux"))]
fn advise(_buf: &mut [u8], _advice: Advice) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn device(root: &Path, name: &str, id: &str, features: &str, bound: bool) -> TestResult {
        let dir = root.join(name);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("device"), format!("{id}\n"))?;
        fs::write(dir.join("features"), format!("{features}\n"))?;
        if bound {
            fs::create_dir_all(dir.join("driver"))?;
        }
        Ok(())
    }

    #[test]
    fn finds_a_bound_balloon_that_reports_free_pages() -> TestResult {
        let with_reporting = "0110010100000000000000000000000010000000";
        let without = "0111000100000000000000000000000010000000";
        let none = tempfile::tempdir()?;
        assert!(!balloon_reports_free_pages(none.path()));
        assert!(!balloon_reports_free_pages(&none.path().join("missing")));

        let others = tempfile::tempdir()?;
        device(others.path(), "virtio1", "0x0002", with_reporting, true)?;
        device(others.path(), "virtio0", BALLOON_DEVICE, without, true)?;
        assert!(!balloon_reports_free_pages(others.path()));

        let unbound = tempfile::tempdir()?;
        device(
            unbound.path(),
            "virtio0",
            BALLOON_DEVICE,
            with_reporting,
            false,
        )?;
        assert!(!balloon_reports_free_pages(unbound.path()));

        let short = tempfile::tempdir()?;
        device(short.path(), "virtio0", BALLOON_DEVICE, "0110", true)?;
        assert!(!balloon_reports_free_pages(short.path()));

        let found = tempfile::tempdir()?;
        device(found.path(), "virtio1", "0x0002", without, true)?;
        device(
            found.path(),
            "virtio0",
            BALLOON_DEVICE,
            with_reporting,
            true,
        )?;
        assert!(balloon_reports_free_pages(found.path()));
        Ok(())
    }
}
