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

/// A login role granted reads and writes on one schema and nothing else, as an application's
/// role is where another role owns the tables; dropped, with its grants, when this is dropped
/// (after the managers that logged in as it).
#[cfg(feature = "postgres")]
pub struct ReadWriteRole {
    owner: postgres::Client,
    pub name: String,
}

#[cfg(feature = "postgres")]
impl ReadWriteRole {
    /// Makes role `name` (or takes it as it is) through `owner`, a connection of a user that
    /// may make roles, and grants it reads and writes on the tables and sequences of `schema`.
    pub fn create(mut owner: postgres::Client, name: &str, schema: &str) -> ReadWriteRole {
        owner
            .batch_execute(&format!(
                "DO $$ BEGIN CREATE ROLE {name} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
                 GRANT USAGE ON SCHEMA \"{schema}\" TO {name};
                 GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA \"{schema}\" TO {name};
                 GRANT USAGE, UPDATE ON ALL SEQUENCES IN SCHEMA \"{schema}\" TO {name};"
            ))
            .unwrap();
        ReadWriteRole { owner, name: name.to_owned() }
    }
}

#[cfg(feature = "postgres")]
impl Drop for ReadWriteRole {
    fn drop(&mut self) {
        let name = &self.name;
        let _ = self.owner.batch_execute(&format!("DROP OWNED BY {name}; DROP ROLE {name}"));
    }
}
