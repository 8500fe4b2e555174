//! A small disk for tests of what a full disk does: a tmpfs, which only root may mount.
//!
//! One file shared by two crates' tests: `easycaching-tests` has it as a module, and the core's
//! `tests/cache.rs` includes it by path (a dev-dependency on this crate would build the wasm
//! host into the core's tests).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Unmounts the small disk when dropped, however the test ends.
pub struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A disk of `size` (as mount takes it: "512k", "2m") at `dir/small`, and the guard that
/// unmounts it; `None`, with a note that the test is skipped, where no tmpfs can be mounted
/// (not root).
pub fn small_disk(dir: &Path, size: &str) -> Option<(PathBuf, Mounted)> {
    let small = dir.join("small");
    std::fs::create_dir(&small).expect("a directory for the small disk");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(&small)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (not root)");
        return None;
    }
    Some((small.clone(), Mounted(small)))
}
