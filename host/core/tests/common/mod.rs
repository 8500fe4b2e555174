//! What the core's test files share. Each file under `tests/` is a crate of its own and uses
//! some of these, so the others are unused there.
#![allow(dead_code)]

use easycaching::{CacheManager, Json};

/// A manager on a new database file, in a directory removed when the `TempDir` is dropped.
pub fn manager() -> (tempfile::TempDir, CacheManager) {
    let dir = tempfile::tempdir().unwrap();
    let manager = CacheManager::open(dir.path().join("test.db")).unwrap();
    (dir, manager)
}

/// Two managers on one file, as two processes have.
pub fn two_managers() -> (tempfile::TempDir, CacheManager, CacheManager) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let (a, b) = (CacheManager::open(&path).unwrap(), CacheManager::open(&path).unwrap());
    (dir, a, b)
}

/// `text`, which the test knows to be JSON, as a [`Json`].
pub fn json(text: &str) -> Json {
    Json::parse(text).unwrap()
}
