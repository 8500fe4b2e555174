//! Opening files that are not ours, or not well: clear errors, files untouched.

use std::path::Path;

use easycaching::{CacheManager, Error, Json};

fn bytes_of(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    let text = "These are my notes, not a database. ".repeat(200);
    std::fs::write(&path, &text).unwrap();
    let err = CacheManager::open(&path).unwrap_err();
    assert!(matches!(err, Error::NotOurDatabase { .. }), "{err:?}");
    assert!(err.to_string().contains("not an SQLite database"), "{err}");
    assert_eq!(bytes_of(&path), text.as_bytes());
    assert!(!dir.path().join("notes.txt-wal").exists());
}

#[test]
fn another_applications_sqlite_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL); INSERT INTO invoices VALUES (1, 9.5);")
            .unwrap();
    }
    let before = bytes_of(&path);
    let err = CacheManager::open(&path).unwrap_err();
    assert!(matches!(err, Error::NotOurDatabase { .. }), "{err:?}");
    assert!(err.to_string().contains("another application"), "{err}");
    assert_eq!(bytes_of(&path), before, "the file was modified");
}

#[test]
fn an_empty_sqlite_database_another_application_gave_a_version_is_refused_and_left_untouched() {
    for version in [-1, 1, 2, 5] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(&format!("PRAGMA user_version = {version}; VACUUM;"))
            .unwrap();
        let before = bytes_of(&path);
        let err = CacheManager::open(&path).unwrap_err();
        assert!(matches!(err, Error::NotOurDatabase { .. }), "user_version {version}: {err:?}");
        assert!(err.to_string().contains(&format!("user_version {version}")), "{err}");
        assert_eq!(bytes_of(&path), before, "user_version {version}: the file was modified");
    }
}

#[test]
fn a_database_from_a_newer_easycaching_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    drop(CacheManager::open(&path).unwrap());
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA user_version = 999;").unwrap();
    }
    let before = bytes_of(&path);
    let err = CacheManager::open(&path).unwrap_err();
    assert!(matches!(err, Error::SchemaTooNew { found: 999, .. }), "{err:?}");
    assert!(err.to_string().contains("upgrade easycaching"), "{err}");
    assert_eq!(bytes_of(&path), before);
}

#[test]
fn a_corrupt_database_gives_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.db");
    {
        let manager = CacheManager::open(&path).unwrap();
        let cache = manager.create_cache("c").unwrap();
        for chunk in 0..2 {
            let keys = (0..1000).map(|i| (format!("key-{chunk}-{i}"), Json::parse("1").unwrap()));
            cache.set_many(keys).unwrap();
        }
    }
    // Scribble over everything after the first page, where the tables live.
    let mut bytes = bytes_of(&path);
    assert!(bytes.len() > 8192);
    for byte in &mut bytes[4096..] {
        *byte = 0x5A;
    }
    std::fs::write(&path, &bytes).unwrap();
    let result = CacheManager::open(&path).and_then(|manager| manager.open_cache("c")?.get("key-1-500"));
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("corrupt"), "{err}");
}

#[test]
fn a_value_damaged_on_disk_is_reported_as_corruption_not_handed_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.db");
    {
        let manager = CacheManager::open(&path).unwrap();
        let cache = manager.create_cache("c").unwrap();
        cache.set_value("zeroed", "abc").unwrap();
        cache.set_value("garbled", "abc").unwrap();
        manager.create_queue("zeroed").unwrap().put_value("abc").unwrap();
        manager.create_queue("garbled").unwrap().put_value("abc").unwrap();
    }
    // As a page zeroed or overwritten under SQLite leaves them: NUL bytes, bytes that are not
    // UTF-8.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "UPDATE entries SET value = '\"a' || char(0) || 'c\"' WHERE key = 'zeroed';
             UPDATE entries SET value = CAST(X'22FF6322' AS TEXT) WHERE key = 'garbled';
             UPDATE queue_items SET value = '\"a' || char(0) || 'c\"'
                 WHERE queue_id = (SELECT id FROM queues WHERE name = 'zeroed');
             UPDATE queue_items SET value = CAST(X'22FF6322' AS TEXT)
                 WHERE queue_id = (SELECT id FROM queues WHERE name = 'garbled');",
        )
        .unwrap();
    let manager = CacheManager::open(&path).unwrap();
    let cache = manager.open_cache("c").unwrap();
    let corrupt = |what: &str, result: easycaching::Result<()>| {
        let err = result.expect_err(what);
        assert!(matches!(err, Error::Corrupt { .. }), "{what}: {err:?}");
        assert!(err.to_string().contains("damaged.db is corrupt"), "{what}: {err}");
    };
    for key in ["zeroed", "garbled"] {
        corrupt(key, cache.get(key).map(drop));
        corrupt(key, cache.get_many(&[key]).map(drop));
        // The writes that read first read it as damaged too, and change nothing.
        corrupt(key, cache.increment(key, 1).map(drop));
        corrupt(key, cache.compare_and_swap(key, None, Some(Json::parse("1").unwrap())).map(drop));
        corrupt(key, cache.get(key).map(drop));
        let queue = manager.open_queue(key).unwrap();
        corrupt(key, queue.peek().map(drop));
        corrupt(key, queue.items().collect::<easycaching::Result<Vec<_>>>().map(drop));
        corrupt(key, queue.get().map(drop));
        assert_eq!(queue.len().unwrap(), 1, "{key}: the damaged item is still there");
    }
    corrupt("entries", cache.entries(None, 10).map(drop));
}

#[test]
fn an_empty_file_becomes_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.db");
    std::fs::write(&path, b"").unwrap();
    let manager = CacheManager::open(&path).unwrap();
    manager.create_cache("c").unwrap();
}

#[test]
fn a_missing_directory_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/x.db");
    let err = CacheManager::open(&path).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert_eq!(err.to_string().matches("x.db").count(), 1, "the path is said once: {err}");
}

#[test]
fn a_file_given_as_the_directory_of_the_database_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain.db");
    std::fs::write(&file, b"").unwrap();
    let err = CacheManager::open(file.join("x.db")).unwrap_err();
    assert!(err.to_string().contains("plain.db is a file, not a directory"), "{err}");
}

#[test]
fn a_directory_this_process_may_not_write_in_is_said_to_deny_permission() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    // As root a mode does not stop us; sysfs refuses new files to root too.
    let Some(denied) =
        [locked.join("x.db"), Path::new("/sys/easycaching-test.db").to_owned()].into_iter().find(|path| {
            std::fs::File::create(path).is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
        })
    else {
        eprintln!("skipped: no directory here refuses this process a new file");
        return;
    };
    let err = CacheManager::open(&denied).unwrap_err();
    let said = err.to_string();
    assert!(said.contains(&format!("cannot open {}: permission denied", denied.display())), "{said}");
}

#[test]
fn a_directory_given_as_the_database_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let err = CacheManager::open(dir.path()).unwrap_err();
    assert!(matches!(&err, Error::Path { doing: "open", path, .. } if path == dir.path()), "{err:?}");
    let said = format!("cannot open {}: it is a directory, not a file", dir.path().display());
    assert_eq!(err.to_string(), said, "a path error says what was asked of the path, not \"storage failed\"");
}

#[test]
fn a_fifo_or_a_device_given_as_the_database_is_named_as_such_and_nothing_is_made_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.db");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let err = CacheManager::open(&fifo).unwrap_err();
    assert!(err.to_string().contains("it is a FIFO (named pipe), not a regular file"), "{err}");
    let beside: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(beside, ["pipe.db"], "files made beside the FIFO");
    // Not opened even for a look: /dev/null would otherwise get a /dev/null-journal.
    let journal = Path::new("/dev/null-journal");
    let had_journal = journal.exists();
    let err = CacheManager::open(Path::new("/dev/null")).unwrap_err();
    assert!(err.to_string().contains("it is a character device, not a regular file"), "{err}");
    assert_eq!(journal.exists(), had_journal, "a journal was made beside /dev/null");
}

#[test]
fn a_database_locked_by_another_process_waits_then_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let manager =
        CacheManager::builder(&path).busy_timeout(std::time::Duration::from_millis(300)).open().unwrap();
    let cache = manager.create_cache("c").unwrap();
    // Someone holds the write lock, as an sqlite3 shell with an open transaction would.
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE;").unwrap();
    let started = std::time::Instant::now();
    let err = cache.set("k", Json::parse("1").unwrap()).unwrap_err();
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    assert!(matches!(err, Error::Busy { .. }), "{err:?}");
    assert!(err.to_string().contains("stayed locked"), "{err}");
    // Reads go on meanwhile, and the write goes through once the lock is released.
    assert_eq!(cache.get("k").unwrap(), None);
    holder.execute_batch("ROLLBACK;").unwrap();
    cache.set("k", Json::parse("1").unwrap()).unwrap();
}

#[test]
fn a_database_someone_is_writing_opens_and_reads_without_waiting_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let first = CacheManager::open(&path).unwrap();
    first.create_cache("c").unwrap().set("k", Json::parse("1").unwrap()).unwrap();
    first.create_queue("q").unwrap();
    drop(first);
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE;").unwrap();
    let timeout = std::time::Duration::from_millis(300);
    let started = std::time::Instant::now();
    let reader = CacheManager::builder(&path).busy_timeout(timeout).open().unwrap();
    let cache = reader.create_cache("c").unwrap();
    assert_eq!(cache.get("k").unwrap().as_deref(), Some("1"));
    // Creating what exists already writes nothing, so it waits for nobody either.
    assert_eq!(reader.create_queue("q").unwrap().len().unwrap(), 0);
    assert!(started.elapsed() < timeout, "opening waited {:?} for the writer", started.elapsed());
    holder.execute_batch("ROLLBACK;").unwrap();
}

#[test]
fn writers_queued_behind_a_locked_database_each_wait_only_their_own_timeout() {
    // Writers of easycaching queue for SQLite's write lock in the kernel (the `-board` file);
    // one that finds the lock held by someone else gives its turn up before it waits, so the
    // next one does not wait for its wait on top of its own.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let timeout = std::time::Duration::from_millis(400);
    let open = || CacheManager::builder(&path).busy_timeout(timeout).open().unwrap();
    let (first, second) = (open(), open());
    first.create_cache("c").unwrap();
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE;").unwrap();
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        for manager in [&first, &second] {
            scope.spawn(move || {
                let cache = manager.open_cache("c").unwrap();
                let err = cache.set("k", Json::parse("1").unwrap()).unwrap_err();
                assert!(matches!(err, Error::Busy { .. }), "{err:?}");
            });
        }
    });
    let waited = started.elapsed();
    assert!(waited < timeout * 2 - std::time::Duration::from_millis(100), "waited {waited:?}");
    holder.execute_batch("ROLLBACK;").unwrap();
    second.open_cache("c").unwrap().set("k", Json::parse("2").unwrap()).unwrap();
    assert_eq!(first.open_cache("c").unwrap().get("k").unwrap().map(|v| v.to_string()), Some("2".into()));
}

#[test]
fn many_openers_of_a_new_file_all_succeed() {
    // They race to create the schema and switch the file to WAL; in rollback mode SQLite can
    // answer a loser "busy" without waiting, which must never reach the caller.
    const OPENERS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    for round in 0..40 {
        let path = dir.path().join(format!("new-{round}.db"));
        let start = std::sync::Barrier::new(OPENERS);
        std::thread::scope(|scope| {
            let openers: Vec<_> = (0..OPENERS)
                .map(|opener| {
                    let (path, start) = (&path, &start);
                    scope.spawn(move || {
                        start.wait();
                        let manager = CacheManager::open(path)?;
                        manager.create_cache("c")?.set(&format!("k{opener}"), Json::parse("1")?)
                    })
                })
                .collect();
            for (opener, joined) in openers.into_iter().enumerate() {
                let result = joined.join().expect("an opener panicked");
                assert!(result.is_ok(), "round {round}, opener {opener}: {result:?}");
            }
        });
        assert_eq!(
            CacheManager::open(&path).unwrap().open_cache("c").unwrap().len().unwrap(),
            OPENERS as u64
        );
    }
}

#[test]
fn a_new_file_gets_small_pages_and_a_file_with_pages_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let page_size = |path: &Path| -> i64 {
        rusqlite::Connection::open(path).unwrap().query_row("PRAGMA page_size", [], |row| row.get(0)).unwrap()
    };
    let fresh = dir.path().join("fresh.db");
    CacheManager::open(&fresh)
        .unwrap()
        .create_cache("c")
        .unwrap()
        .set("k", Json::parse("1").unwrap())
        .unwrap();
    assert_eq!(page_size(&fresh), 2048);

    // An empty database that already has its page size (and WAL) is ours to use as it is.
    let sized = dir.path().join("sized.db");
    rusqlite::Connection::open(&sized)
        .unwrap()
        .execute_batch(
            "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE t (x); DROP TABLE t;",
        )
        .unwrap();
    let cache = CacheManager::open(&sized).unwrap().create_cache("c").unwrap();
    cache.set("k", Json::parse("[1, 2]").unwrap()).unwrap();
    assert_eq!(cache.get("k").unwrap().unwrap().as_str(), "[1, 2]");
    assert_eq!(page_size(&sized), 4096);
}

#[test]
fn a_busy_timeout_of_duration_max_waits_as_long_as_need_be() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("forever.db");
    let manager = CacheManager::builder(&db).busy_timeout(std::time::Duration::MAX).open().unwrap();
    let cache = manager.create_cache("c").unwrap();
    cache.set_value("k", &1).unwrap();
    assert_eq!(cache.get_value::<u64>("k").unwrap(), Some(1));
    // A second process's manager, waiting behind the first's writes.
    let other = CacheManager::builder(&db).busy_timeout(std::time::Duration::MAX).open().unwrap();
    other.open_cache("c").unwrap().set_value("k", &2).unwrap();
    assert_eq!(cache.get_value::<u64>("k").unwrap(), Some(2));
}
