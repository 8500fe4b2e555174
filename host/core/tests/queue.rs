//! Queues through the embedding API.

use easycaching::{CacheManager, Error, Json, Limits, Quota};

fn json(text: &str) -> Json {
    Json::parse(text).unwrap()
}

#[test]
fn a_queue_is_first_in_first_out() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CacheManager::open(dir.path().join("q.db")).unwrap();
    let queue = manager.create_queue("jobs").unwrap();
    assert_eq!(queue.get().unwrap(), None);
    assert_eq!(queue.peek().unwrap(), None);
    for i in 0..5 {
        queue.put(json(&i.to_string())).unwrap();
    }
    assert_eq!(queue.len().unwrap(), 5);
    assert_eq!(queue.peek().unwrap(), Some(json("0")));
    assert_eq!(queue.get().unwrap(), Some(json("0")));
    assert_eq!(queue.get_many(3).unwrap(), vec![json("1"), json("2"), json("3")]);
    assert_eq!(queue.get_many(0).unwrap(), vec![], "asking for none takes none");
    assert_eq!(queue.len().unwrap(), 1);
    queue.put_many([json("5"), json("6")]).unwrap();
    assert_eq!(queue.len().unwrap(), 3);
    assert_eq!(queue.clear().unwrap(), 3);
    assert_eq!(queue.get().unwrap(), None);
}

#[test]
fn an_item_of_another_type_is_taken_and_handed_back_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CacheManager::open(dir.path().join("q.db")).unwrap();
    let queue = manager.create_queue("jobs").unwrap();
    queue.put_value("not a number").unwrap();
    queue.put_value(&2).unwrap();
    match queue.get_value::<u64>() {
        Err(Error::WrongType { value, .. }) => assert_eq!(value, json(r#""not a number""#)),
        other => panic!("expected WrongType, got {other:?}"),
    }
    assert_eq!(queue.len().unwrap(), 1, "the item was taken, and is in the error");
    assert_eq!(queue.get_value::<u64>().unwrap(), Some(2));
}

#[test]
fn queues_are_independent_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CacheManager::open(dir.path().join("q.db")).unwrap();
    let a = manager.create_queue("a").unwrap();
    let b = manager.create_queue("b").unwrap();
    a.put(json("1")).unwrap();
    b.put(json("2")).unwrap();
    assert_eq!(b.get().unwrap(), Some(json("2")));
    assert_eq!(a.get().unwrap(), Some(json("1")));
    let names: Vec<_> = manager.list_queues().unwrap().into_iter().map(|q| q.name).collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn a_deleted_queue_fails_its_handles() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CacheManager::open(dir.path().join("q.db")).unwrap();
    let queue = manager.create_queue("doomed").unwrap();
    queue.put(json("1")).unwrap();
    assert!(manager.delete_queue("doomed").unwrap());
    assert!(matches!(queue.put(json("1")), Err(Error::QueueDeleted(_))));
    assert!(matches!(queue.get(), Err(Error::QueueDeleted(_))));
    assert!(matches!(queue.peek(), Err(Error::QueueDeleted(_))));
    assert!(matches!(queue.len(), Err(Error::QueueDeleted(_))));
    assert!(matches!(manager.open_queue("doomed"), Err(Error::NoSuchQueue(_))));
    manager.create_queue("doomed").unwrap().put(json("2")).unwrap();
    let stale = queue.get().unwrap_err();
    assert!(stale.to_string().contains("the queue \"doomed\" was deleted while this handle"), "{stale}");
}

#[test]
fn a_queue_quota_refuses_growth() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CacheManager::open(dir.path().join("q.db")).unwrap();
    let queue =
        manager.create_queue("small").unwrap().with_quota(Quota { max_entries: Some(2), ..Quota::UNLIMITED });
    queue.put_many([json("1"), json("2")]).unwrap();
    assert!(matches!(queue.put(json("3")), Err(Error::QuotaExceeded(_))));
    queue.get().unwrap();
    queue.put(json("3")).unwrap();
    assert_eq!(queue.len().unwrap(), 2);
    assert_eq!(queue.quota().max_entries, Some(2));
}

#[test]
fn a_queue_counts_the_bytes_its_items_hold() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CacheManager::open(dir.path().join("q.db")).unwrap();
    let queue = manager.create_queue("sized").unwrap();
    assert_eq!(queue.size_bytes().unwrap(), 0);
    queue.put_many([json("[1,2,3]"), json("\"four\"")]).unwrap();
    let full = queue.size_bytes().unwrap();
    assert!(full >= 13, "at least the items' 13 bytes: {full}");
    queue.get().unwrap();
    assert!(queue.size_bytes().unwrap() < full);
    queue.clear().unwrap();
    assert_eq!(queue.size_bytes().unwrap(), 0);
    manager.delete_queue("sized").unwrap();
    assert!(matches!(queue.size_bytes(), Err(Error::QueueDeleted(_))));
}

#[test]
fn many_threads_take_every_item_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CacheManager::open(dir.path().join("q.db")).unwrap();
    let queue = manager.create_queue("work").unwrap();
    for chunk in (0..2000).collect::<Vec<_>>().chunks(500) {
        queue.put_many(chunk.iter().map(|i| json(&i.to_string()))).unwrap();
    }
    let takers: Vec<_> = (0..4)
        .map(|_| {
            let queue = queue.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while let Some(item) = queue.get().unwrap() {
                    got.push(item.as_str().parse::<u32>().unwrap());
                }
                got
            })
        })
        .collect();
    let mut all: Vec<u32> = Vec::new();
    for taker in takers {
        let got = taker.join().unwrap();
        assert!(got.windows(2).all(|w| w[0] < w[1]), "a taker saw items out of order");
        all.extend(got);
    }
    all.sort();
    assert_eq!(all, (0..2000).collect::<Vec<_>>());
}

#[test]
fn items_given_back_come_out_first_in_their_order_and_count_again() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CacheManager::open(dir.path().join("q.db")).unwrap();
    let queue = manager.create_queue("jobs").unwrap();
    let other = manager.create_queue("other").unwrap();
    queue.put_many((0..5).map(|i| json(&i.to_string()))).unwrap();
    other.put(json(r#""theirs""#)).unwrap();
    let taken = queue.get_many(3).unwrap();
    queue.put(json("5")).unwrap();
    queue.give_back(taken).unwrap();
    assert_eq!(queue.len().unwrap(), 6);
    assert_eq!(queue.size_bytes().unwrap(), 6);
    let all = queue.get_many(10).unwrap();
    assert_eq!(all, (0..6).map(|i| json(&i.to_string())).collect::<Vec<_>>());
    assert_eq!(other.get_many(10).unwrap(), vec![json(r#""theirs""#)], "another queue is untouched");

    // Given back again into an empty table, and after it is empty: ids below every other.
    queue.give_back(vec![json("1"), json("1")]).unwrap();
    queue.put(json("2")).unwrap();
    assert_eq!(queue.get_many(10).unwrap(), vec![json("1"), json("1"), json("2")]);
    manager.delete_queue("jobs").unwrap();
    assert!(matches!(queue.give_back(vec![json("1")]), Err(Error::QueueDeleted(_))));
}

/// An item put by a process that allows larger values than this one (or before the limit was
/// lowered) goes back all the same: give_back held it to this process's `max_value_bytes`,
/// refused it, and the item, already taken, was lost.
#[test]
fn an_item_over_this_process_s_value_limit_can_still_be_given_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let roomy = CacheManager::open(&path).unwrap();
    let strict = CacheManager::builder(&path)
        .limits(Limits { max_value_bytes: 10, max_batch_items: 2, ..Limits::default() })
        .open()
        .unwrap();
    let long = json(r#""longer than ten bytes""#);
    roomy.create_queue("jobs").unwrap().put_many([long.clone(), json("2"), json("3")]).unwrap();
    let queue = strict.open_queue("jobs").unwrap();
    assert!(matches!(queue.put(long.clone()), Err(Error::TooLarge { what: "value", .. })), "put is checked");
    let taken = queue.get_many(3).unwrap();
    assert_eq!(taken.len(), 3, "more than max_batch_items, fewer than a page");
    queue.give_back(taken).unwrap();
    assert_eq!(queue.len().unwrap(), 3);
    assert_eq!(queue.get().unwrap(), Some(long));

    // The one bound is the call's: more than a get_many can take, said with the bound.
    let page = easycaching::MAX_PAGE_ITEMS;
    let error = queue.give_back(vec![json("1"); page + 1]).unwrap_err();
    assert_eq!(error.to_string(), format!("batch is {} items, over the limit of {page}", page + 1));
    assert_eq!(queue.len().unwrap(), 2, "nothing was given back");
}

#[test]
fn get_many_stops_after_about_a_page_of_bytes_but_takes_at_least_one_item() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CacheManager::open(dir.path().join("q.db")).unwrap();
    let queue = manager.create_queue("jobs").unwrap();
    let big = Json::from_value(&"x".repeat((1 << 20) - 2)).unwrap();
    queue.put_many(std::iter::repeat_n(big.clone(), 6)).unwrap();
    let taken = queue.get_many(1000).unwrap();
    let bytes: usize = taken.iter().map(|item| item.len()).sum();
    assert_eq!(taken.len(), 4, "{bytes} bytes taken");
    assert!(bytes >= easycaching::MAX_PAGE_BYTES);
    assert_eq!(queue.len().unwrap(), 2);
}
