//! `CacheManager::backup`: a whole, consistent copy in a new file, made while others write.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use easycaching::{CacheManager, Error};
use serde_json::json;

/// The files in `dir`, by name, sorted.
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_backup_holds_every_cache_and_queue_and_opens_as_a_database_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CacheManager::open(dir.path().join("app.db")).unwrap();
    let test = manager.create_cache("test").unwrap();
    test.set_value("foo", &json!({"bar": [1, 2]})).unwrap();
    test.set_value("line\nbreak \"quoted\" ключ", &json!(null)).unwrap();
    manager.create_cache("empty").unwrap();
    let jobs = manager.create_queue("jobs").unwrap();
    for job in ["first", "second", "third"] {
        jobs.put_value(&job).unwrap();
    }
    jobs.get().unwrap();

    let dest = dir.path().join("app-backup.db");
    let backup = manager.backup(&dest).unwrap();
    let names: Vec<(&str, u64)> = backup.caches.iter().map(|c| (c.name.as_str(), c.entries)).collect();
    assert_eq!(names, [("empty", 0), ("test", 2)]);
    assert_eq!((backup.queues[0].name.as_str(), backup.queues[0].entries), ("jobs", 2));
    assert_eq!(backup.bytes, std::fs::metadata(&dest).unwrap().len());

    // Written after the backup: not in it.
    test.set_value("later", &1).unwrap();

    let copy = CacheManager::open(&dest).unwrap();
    let copied = copy.open_cache("test").unwrap();
    let entries: Vec<(String, String)> = copied
        .iter()
        .map(|entry| entry.map(|(key, value)| (key, value.as_str().to_owned())).unwrap())
        .collect();
    assert_eq!(
        entries,
        [
            ("foo".to_owned(), r#"{"bar":[1,2]}"#.to_owned()),
            ("line\nbreak \"quoted\" ключ".to_owned(), "null".into())
        ]
    );
    let copied_jobs = copy.open_queue("jobs").unwrap();
    assert_eq!(copied_jobs.get_value::<String>().unwrap().as_deref(), Some("second"));
    assert_eq!(copied_jobs.get_value::<String>().unwrap().as_deref(), Some("third"));
    // The copy is another database: writing to it leaves the original alone.
    copied.set_value("foo", &0).unwrap();
    assert_eq!(test.get_value::<serde_json::Value>("foo").unwrap(), Some(json!({"bar": [1, 2]})));
    assert_eq!(jobs.len().unwrap(), 2);
}

#[test]
fn a_backup_never_replaces_a_file_and_leaves_nothing_behind_when_refused() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CacheManager::open(dir.path().join("app.db")).unwrap();
    manager.create_cache("test").unwrap().set_value("foo", &1).unwrap();
    let before = files_in(dir.path());

    let precious = dir.path().join("precious.db");
    std::fs::write(&precious, "not to be lost").unwrap();
    let refused = [
        (precious.clone(), "it exists, and a backup never replaces a file"),
        (dir.path().to_owned(), "is a directory"),
        (dir.path().join("no/such/dir/b.db"), "the directory"),
        (precious.join("b.db"), "is not a directory"),
    ];
    for (dest, why) in refused {
        let error = manager.backup(&dest).unwrap_err();
        assert!(matches!(error, Error::Path { doing: "write a backup to", .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains(why) && message.contains("cannot write a backup to"), "{dest:?}: {message}");
    }
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "not to be lost");
    let mut expected = before.clone();
    expected.push("precious.db".into());
    expected.sort();
    assert_eq!(files_in(dir.path()), expected, "no partial copy was left behind");

    // A backup of a backup, made through a relative path, is as good.
    manager.backup(dir.path().join("one.db")).unwrap();
    let one = CacheManager::open(dir.path().join("one.db")).unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    one.backup("two.db").unwrap();
    let two = CacheManager::open(dir.path().join("two.db")).unwrap();
    assert_eq!(two.open_cache("test").unwrap().get_value::<i64>("foo").unwrap(), Some(1));
    assert!(!files_in(dir.path()).iter().any(|name| name.contains("partial")), "{:?}", files_in(dir.path()));
}

/// A writer on another connection stores pairs of keys in one write each, `a` and `b` always
/// equal; every backup taken meanwhile must hold equal pairs, counts that match its entries,
/// and every pair acknowledged before it began.
#[test]
fn a_backup_taken_while_another_writer_writes_is_one_moment_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let manager = CacheManager::open(&path).unwrap();
    let writer = CacheManager::open(&path).unwrap();
    let pairs = writer.create_cache("pairs").unwrap();
    let (acknowledged, stop) = (AtomicU64::new(0), AtomicBool::new(false));
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut round = 0u64;
            while !stop.load(Ordering::SeqCst) {
                round += 1;
                let entries = [
                    ("a".to_owned(), json!(round).into()),
                    ("b".to_owned(), json!(round).into()),
                    (format!("key-{round}"), easycaching::Json::parse("1".repeat(200)).unwrap()),
                ];
                pairs.set_many(entries).unwrap();
                acknowledged.store(round, Ordering::SeqCst);
            }
        });
        for backup in 0..6 {
            while acknowledged.load(Ordering::SeqCst) < 20 * (backup + 1) {
                std::thread::yield_now();
            }
            let before = acknowledged.load(Ordering::SeqCst);
            let dest = dir.path().join(format!("backup-{backup}.db"));
            let summary = manager.backup(&dest).unwrap();
            let copy = CacheManager::open(&dest).unwrap();
            let copied = copy.open_cache("pairs").unwrap();
            let (a, b) = (
                copied.get_value::<u64>("a").unwrap().unwrap(),
                copied.get_value::<u64>("b").unwrap().unwrap(),
            );
            assert_eq!(a, b, "backup {backup} holds half a write");
            assert!(a >= before, "backup {backup} lacks write {before}, acknowledged before it began ({a})");
            assert_eq!(
                copied.len().unwrap(),
                a + 2,
                "backup {backup}: one key-N for each write, and a and b"
            );
            assert_eq!(copied.iter().count() as u64, a + 2, "backup {backup}: its counts match its entries");
            assert_eq!(summary.caches[0].entries, a + 2);
        }
        stop.store(true, Ordering::SeqCst);
    });
}

#[test]
fn a_restore_puts_the_backup_in_place_and_moves_the_database_aside_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (db, backup) = (dir.path().join("app.db"), dir.path().join("backup.db"));
    let manager = CacheManager::open(&db).unwrap();
    let test = manager.create_cache("test").unwrap();
    test.set_value("foo", "kept").unwrap();
    manager.create_queue("jobs").unwrap().put_value(&"job").unwrap();
    manager.backup(&backup).unwrap();
    let backup_bytes = std::fs::read(&backup).unwrap();
    test.set_value("foo", "newer").unwrap();
    test.set_value("only-in-the-wal", &1).unwrap();
    // As a process killed before it checkpointed leaves it: the newest commits in the -wal.
    std::mem::forget((manager, test));
    let wal = dir.path().join("app.db-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);

    let restored = CacheManager::restore(&backup, &db).unwrap();
    assert_eq!(restored.holds.caches[0].entries, 1);
    assert_eq!((restored.holds.queues[0].name.as_str(), restored.holds.queues[0].entries), ("jobs", 1));
    let replaced = restored.replaced.unwrap();
    assert!(replaced.file_name().unwrap().to_string_lossy().starts_with("app.db.replaced-"), "{replaced:?}");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "the old -wal moved with its database"
    );
    assert_eq!(std::fs::read(&backup).unwrap(), backup_bytes, "the backup is left as it was");

    let manager = CacheManager::open(&db).unwrap();
    let test = manager.open_cache("test").unwrap();
    assert_eq!(test.get_value::<String>("foo").unwrap().as_deref(), Some("kept"));
    assert_eq!(test.get("only-in-the-wal").unwrap(), None);
    assert_eq!(manager.open_queue("jobs").unwrap().get_value::<String>().unwrap().as_deref(), Some("job"));
    // The database replaced is whole, its -wal with it: nothing is lost by a restore.
    let before = CacheManager::open(&replaced).unwrap();
    let old = before.open_cache("test").unwrap();
    assert_eq!(old.get_value::<String>("foo").unwrap().as_deref(), Some("newer"));
    assert_eq!(old.get_value::<i64>("only-in-the-wal").unwrap(), Some(1));
    drop((test, manager));

    // Twice in one second: each database replaced gets a name of its own.
    let again = CacheManager::restore(&backup, &db).unwrap().replaced.unwrap();
    let third = CacheManager::restore(&backup, &db).unwrap().replaced.unwrap();
    assert!(again != replaced && third != again && again.exists() && third.exists());
    // Into a path with no database yet: nothing to move aside.
    let fresh = dir.path().join("fresh.db");
    assert_eq!(CacheManager::restore(&backup, &fresh).unwrap().replaced, None);
    let kept = |db: &Path| {
        let manager = CacheManager::open(db).unwrap();
        manager.open_cache("test").unwrap().get_value::<String>("foo").unwrap()
    };
    assert_eq!(kept(&fresh).as_deref(), Some("kept"));
    // A -wal left where the database was (here the one moved aside above, whose frames hold
    // "newer"): SQLite would replay it onto the copy, so it is moved aside too.
    let orphan = dir.path().join("orphan.db");
    let replaced_wal = format!("{}-wal", replaced.display());
    std::fs::copy(&replaced_wal, dir.path().join("orphan.db-wal")).unwrap();
    let moved = CacheManager::restore(&backup, &orphan).unwrap().replaced.unwrap();
    assert!(
        !dir.path().join("orphan.db-wal").exists() && Path::new(&format!("{}-wal", moved.display())).exists()
    );
    assert_eq!(kept(&orphan).as_deref(), Some("kept"));
}

/// A backup copies only the pages in use: putting one in place gives back the room that
/// deletes left free in the file, which never shrinks by itself.
#[test]
fn a_restored_backup_gives_back_the_free_pages_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (db, backup) = (dir.path().join("app.db"), dir.path().join("compact.db"));
    let manager = CacheManager::open(&db).unwrap();
    let bulky = manager.create_cache("bulky").unwrap();
    let value = easycaching::Json::from_value(&"x".repeat(2000)).unwrap();
    bulky.set_many((0..1000).map(|i| (format!("key{i:05}"), value.clone()))).unwrap();
    manager.create_cache("kept").unwrap().set_value("foo", &"bar").unwrap();
    bulky.clear().unwrap();
    let before = manager.disk_usage().unwrap().expect("a file");
    manager.backup(&backup).unwrap();
    drop((bulky, manager));
    CacheManager::restore(&backup, &db).unwrap();
    let manager = CacheManager::open(&db).unwrap();
    let after = manager.disk_usage().unwrap().expect("a file");
    assert!(after.file_bytes < (before.file_bytes - before.free_bytes) * 2, "{after:?} from {before:?}");
    assert!(after.file_bytes < before.file_bytes / 4, "{after:?} from {before:?}");
    assert_eq!(after.free_bytes, 0, "{after:?}");
    assert_eq!(
        manager.open_cache("kept").unwrap().get_value::<String>("foo").unwrap().as_deref(),
        Some("bar")
    );
    assert_eq!(std::fs::metadata(&db).unwrap().len(), after.file_bytes);
}

#[test]
fn a_restore_from_what_is_not_a_backup_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    CacheManager::open(&db).unwrap().create_cache("test").unwrap().set_value("foo", &1).unwrap();
    let before = files_in(dir.path());
    let db_bytes = std::fs::read(&db).unwrap();

    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a database").unwrap();
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, "").unwrap();
    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other).unwrap().execute_batch("CREATE TABLE invoices (id INTEGER);").unwrap();
    let refused = [
        (dir.path().join("missing.db"), "there is no file there"),
        (dir.path().to_owned(), "it is not a file"),
        (notes.clone(), "not an SQLite database"),
        (empty.clone(), "it is empty"),
        (other.clone(), "another application"),
        (db.clone(), "it is the database"),
    ];
    for (backup, why) in refused {
        let error = CacheManager::restore(&backup, &db).unwrap_err();
        assert!(error.to_string().contains(why), "{backup:?}: {error}");
    }
    let mut expected = before;
    expected.extend(["notes.txt".to_owned(), "empty.db".into(), "other.db".into()]);
    expected.sort();
    assert_eq!(files_in(dir.path()), expected, "nothing moved aside, nothing left behind");
    assert_eq!(std::fs::read(&db).unwrap(), db_bytes);
}

#[test]
fn a_restored_database_keeps_the_owner_and_permissions_of_the_one_it_replaces() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let (db, backup) = (dir.path().join("service.db"), dir.path().join("backup.db"));
    drop(CacheManager::open(&db).unwrap().backup(&backup).unwrap());
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o640)).unwrap();
    // A service's user, where this test may give the file away (it runs as root in CI).
    let given_away = std::os::unix::fs::chown(&db, Some(4321), Some(4321)).is_ok();
    let before = std::fs::metadata(&db).unwrap();

    CacheManager::restore(&backup, &db).unwrap();
    let after = std::fs::metadata(&db).unwrap();
    assert_eq!(after.permissions().mode() & 0o777, 0o640);
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()), "given away: {given_away}");
}

#[test]
fn a_backup_is_no_more_readable_than_its_database() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("private.db");
    let manager = CacheManager::open(&db).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    let backup = dir.path().join("backup.db");
    manager.backup(&backup).unwrap();
    assert_eq!(std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777, 0o600);
}
