//! Queues through the embedding API.

use easycaching::{CacheManager, Error, Json, Limits, Quota};

mod common;
use common::json;

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

fn numbers(items: impl Iterator<Item = easycaching::Result<Json>>) -> Vec<u64> {
    items.map(|item| item.unwrap().deserialize::<u64>().unwrap()).collect()
}

#[test]
fn items_are_listed_oldest_first_across_pages_and_none_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CacheManager::open(dir.path().join("q.db")).unwrap();
    let queue = manager.create_queue("jobs").unwrap();
    assert_eq!(queue.items().count(), 0, "an empty queue has no items");
    let other = manager.create_queue("other").unwrap();
    // More than a page of the iteration, and more than MAX_PAGE_ITEMS, among another queue's.
    let count = easycaching::MAX_PAGE_ITEMS as u64 + 500;
    for chunk in (0..count).collect::<Vec<_>>().chunks(500) {
        queue.put_many(chunk.iter().map(|i| json(&i.to_string()))).unwrap();
        other.put(json(r#""theirs""#)).unwrap();
    }
    // Items given back go before every other (ids below the smallest): still oldest first.
    let taken = queue.get_many(3).unwrap();
    queue.give_back(taken).unwrap();
    assert_eq!(numbers(queue.items()), (0..count).collect::<Vec<_>>());
    assert_eq!(queue.len().unwrap(), count, "nothing was taken");
    assert_eq!(queue.peek().unwrap(), Some(json("0")));
    assert_eq!(numbers(manager.open_queue("jobs").unwrap().items()), (0..count).collect::<Vec<_>>());
}

#[test]
fn items_of_a_page_of_bytes_each_are_all_listed() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CacheManager::open(dir.path().join("q.db")).unwrap();
    let queue = manager.create_queue("jobs").unwrap();
    // Six items of 1 MiB: more than one page of MAX_PAGE_BYTES.
    let big = |i: usize| Json::from_value(&format!("{i}{}", "x".repeat((1 << 20) - 3))).unwrap();
    queue.put_many((0..6).map(big)).unwrap();
    let items: Vec<Json> = queue.items().map(Result::unwrap).collect();
    assert_eq!(items, (0..6).map(big).collect::<Vec<_>>());
    assert_eq!(queue.len().unwrap(), 6);
}

/// A page stops at its limit, or after the item that takes it past its bytes (at least one
/// item however large), and its cursor leads to the next item.
#[test]
fn a_page_of_items_stops_at_its_limit_or_after_the_item_past_its_bytes() {
    use easycaching::store::{QueueId, SqliteStore, Store, Target};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let manager = CacheManager::open(&path).unwrap();
    let queue = manager.create_queue("jobs").unwrap();
    queue.put_many((10..17).map(|i| json(&i.to_string()))).unwrap();
    let store =
        SqliteStore::open(&path, easycaching::Durability::Full, std::time::Duration::from_secs(10)).unwrap();
    let target = Target { id: store.find_queue("jobs").unwrap().unwrap(), name: "jobs".into() };

    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = store.queue_items(&target, after, 3, usize::MAX).unwrap();
        pages.push(numbers(page.items.into_iter().map(Ok)));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, [vec![10, 11, 12], vec![13, 14, 15], vec![16]]);
    // Exactly a page's worth: the last page says there is nothing after it.
    let all = store.queue_items(&target, None, 7, usize::MAX).unwrap();
    assert_eq!((all.items.len(), all.next), (7, None));

    // Each item is 2 bytes: 3 bytes allowed stop after the second item, 1 after the first.
    let page = store.queue_items(&target, None, 100, 3).unwrap();
    assert_eq!(numbers(page.items.into_iter().map(Ok)), [10, 11]);
    let page = store.queue_items(&target, page.next, 100, 1).unwrap();
    assert_eq!(numbers(page.items.into_iter().map(Ok)), [12]);
    assert_eq!(queue.len().unwrap(), 7, "nothing was taken");

    let gone = Target { id: QueueId(target.id.0 + 1000), name: "gone".into() };
    let error = store.queue_items(&gone, None, 10, usize::MAX).unwrap_err();
    assert!(matches!(&error, Error::QueueDeleted(name) if name == "gone"), "{error}");
}

#[test]
fn items_of_a_deleted_queue_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let manager = CacheManager::open(dir.path().join("q.db")).unwrap();
    let queue = manager.create_queue("doomed").unwrap();
    queue.put(json("1")).unwrap();
    let mut items = queue.items();
    assert!(manager.delete_queue("doomed").unwrap());
    assert!(matches!(items.next(), Some(Err(Error::QueueDeleted(_)))));
    assert!(items.next().is_none(), "the iteration ends at the error");
    manager.create_queue("doomed").unwrap().put(json("2")).unwrap();
    let stale: Vec<_> = queue.items().collect();
    assert!(matches!(stale[..], [Err(Error::QueueDeleted(_))]), "{stale:?}");
}

/// Scans while another manager (as another process would) takes from the front and puts at
/// the back: every scan comes out oldest first, no item twice, and holds every item that was
/// in the queue for the whole scan.
#[test]
fn a_scan_while_others_take_and_put_sees_each_item_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let manager = CacheManager::open(&path).unwrap();
    let queue = manager.create_queue("work").unwrap();
    const INITIAL: u64 = 3000;
    for chunk in (0..INITIAL).collect::<Vec<_>>().chunks(500) {
        queue.put_many(chunk.iter().map(|i| json(&i.to_string()))).unwrap();
    }
    let other = CacheManager::open(&path).unwrap();
    let consumer = {
        let queue = other.open_queue("work").unwrap();
        std::thread::spawn(move || {
            let mut taken = Vec::new();
            for _ in 0..200 {
                taken.extend(numbers(queue.get_many(5).unwrap().into_iter().map(Ok)));
            }
            taken
        })
    };
    let producer = {
        let queue = other.open_queue("work").unwrap();
        std::thread::spawn(move || {
            for batch in 0..200 {
                let first = INITIAL + batch * 5;
                queue.put_many((first..first + 5).map(|i| json(&i.to_string()))).unwrap();
            }
        })
    };
    let mut scans = 0;
    while scans == 0 || !consumer.is_finished() || !producer.is_finished() {
        let seen = numbers(queue.items());
        // Taken from the front only: the front now is at most the front of any moment of the
        // scan, so every initial item from it on was in the queue for the whole scan.
        let front: u64 = queue.peek().unwrap().unwrap().deserialize().unwrap();
        if let Some(pair) = seen.windows(2).find(|pair| pair[0] >= pair[1]) {
            panic!("scan {scans}: {} came after {}: out of order or twice", pair[1], pair[0]);
        }
        let missed: Vec<u64> = (front..INITIAL).filter(|i| seen.binary_search(i).is_err()).collect();
        assert!(missed.is_empty(), "scan {scans} missed items in the queue all along: {missed:?}");
        scans += 1;
    }
    let taken = consumer.join().unwrap();
    producer.join().unwrap();
    assert_eq!(taken, (0..1000).collect::<Vec<_>>());
    assert_eq!(numbers(queue.items()), (1000..INITIAL + 1000).collect::<Vec<_>>());
    assert!(scans > 1, "the scans ran while the others wrote: {scans}");
}
