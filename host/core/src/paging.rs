//! Whole scans of a cache or a queue, fetched a page at a time: the iterators behind
//! [`Cache::iter`](crate::Cache::iter) and [`Queue::items`](crate::Queue::items).

use std::vec::IntoIter;

use crate::Result;
use crate::store::Page;

/// Entries or items fetched per page when iterating a whole cache or queue.
const ITERATION_PAGE: usize = 256;

/// What can be scanned a page at a time, each page after the cursor the last one ended on.
pub(crate) trait Scan {
    /// What the scan yields.
    type Item;
    /// Where a page ends.
    type Cursor;

    /// At most `limit` items after `after` (from the start when `None`).
    fn page(&self, after: Option<&Self::Cursor>, limit: usize) -> Result<Page<Self::Item, Self::Cursor>>;
}

/// A whole scan, a page at a time; ends after the first error.
pub(crate) struct Paged<S: Scan> {
    scan: S,
    page: IntoIter<S::Item>,
    next: Option<S::Cursor>,
    done: bool,
}

impl<S: Scan> Paged<S> {
    pub(crate) fn new(scan: S) -> Self {
        Paged { scan, page: Vec::new().into_iter(), next: None, done: false }
    }
}

impl<S: Scan> Iterator for Paged<S> {
    type Item = Result<S::Item>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.page.next() {
                return Some(Ok(item));
            }
            if self.done {
                return None;
            }
            match self.scan.page(self.next.as_ref(), ITERATION_PAGE) {
                Ok(page) => {
                    self.done = page.next.is_none();
                    self.next = page.next;
                    self.page = page.items.into_iter();
                }
                Err(error) => {
                    self.done = true;
                    return Some(Err(error));
                }
            }
        }
    }
}
