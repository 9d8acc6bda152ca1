//! The manifest file a standalone data plane (`sluice-dataplane --manifests`) or the
//! operator's `serve-manifests` runs from, watched for changes by both the same way: its
//! modification time and length, checked on each tick of the caller's timer (no inotify,
//! which misses edits through some bind mounts and editors' rename-over). A file that
//! vanished (an editor mid-save) is not a change; its return is.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A manifest file and the state it was last read in.
#[derive(Debug, Clone)]
pub struct ManifestFile {
    path: PathBuf,
    seen: Option<(SystemTime, u64)>,
}

impl ManifestFile {
    /// Watches `path`, taking its present state as read.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let seen = stamp(&path);
        ManifestFile { path, seen }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file changed since it was last read (then it counts as read).
    pub fn changed(&mut self) -> bool {
        match stamp(&self.path) {
            None => false,
            now if now == self.seen => false,
            now => {
                self.seen = now;
                true
            }
        }
    }

    /// Takes the file's present state as read (after a reload for another reason, e.g.
    /// SIGHUP).
    pub fn mark_read(&mut self) {
        self.seen = stamp(&self.path);
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_change_is_seen_once_and_a_vanished_file_is_no_change() {
        let dir = std::env::temp_dir().join(format!("sluice-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gateway.yaml");
        std::fs::write(&path, "a: 1\n").unwrap();
        let mut f = ManifestFile::new(&path);
        assert!(!f.changed());
        std::fs::write(&path, "a: 22\n").unwrap();
        assert!(f.changed());
        assert!(!f.changed());
        std::fs::remove_file(&path).unwrap();
        assert!(!f.changed());
        std::fs::write(&path, "a: 333\n").unwrap();
        assert!(f.changed());
        std::fs::write(&path, "a: 4444\n").unwrap();
        f.mark_read();
        assert!(!f.changed());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
