//! Which keys a page of a cache's entries or keys may hold: those after its cursor that begin
//! with a prefix.

/// The keys a page of [`Store::entries`](super::Store::entries) or
/// [`Store::keys`](super::Store::keys) is read from: the keys after `after` (the last key of
/// the page before, if any) that begin with `prefix` (every key when it is empty), in key
/// order. Keys are compared byte by byte, so those beginning with a prefix are the range
/// [`KeyRange::start`] to [`KeyRange::end`], one stretch of an index on the key.
///
/// ```
/// use easycaching::store::KeyRange;
///
/// let first = KeyRange::new("user:1:", None);
/// assert_eq!(first.start(), ("user:1:", true));
/// assert_eq!(first.end().as_deref(), Some("user:1;"));
///
/// // A cursor before the prefix starts the page at the prefix; one inside it, after itself.
/// assert_eq!(KeyRange::new("user:1:", Some("a")).start(), ("user:1:", true));
/// assert_eq!(KeyRange::new("user:1:", Some("user:1:name")).start(), ("user:1:name", false));
///
/// // Every key.
/// assert_eq!(KeyRange::new("", None).end(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRange<'a> {
    /// Only keys that begin with this; every key when empty.
    pub prefix: &'a str,
    /// Only keys after this one; from the first key with the prefix when `None`.
    pub after: Option<&'a str>,
}

impl<'a> KeyRange<'a> {
    /// The keys after `after` that begin with `prefix`.
    pub fn new(prefix: &'a str, after: Option<&'a str>) -> Self {
        KeyRange { prefix, after }
    }

    /// Every key after `after`.
    pub fn all(after: Option<&'a str>) -> Self {
        KeyRange::new("", after)
    }

    /// Where the page starts: the key to read from, and whether a key equal to it is read
    /// (the prefix itself is a key with that prefix; the cursor was read by the page before).
    pub fn start(&self) -> (&'a str, bool) {
        match self.after {
            Some(after) if after >= self.prefix => (after, false),
            _ => (self.prefix, true),
        }
    }

    /// The first key past every key that begins with the prefix, which no page reads: `None`
    /// when nothing follows them all (an empty prefix, or one of only `char::MAX`). Code points
    /// order as their UTF-8 bytes do, so this is the prefix cut after its last character
    /// below `char::MAX`, with that character counted one up (`user:` ends at `user;`).
    pub fn end(&self) -> Option<String> {
        let mut chars: Vec<char> = self.prefix.chars().collect();
        while let Some(last) = chars.pop() {
            if let Some(next) = next_char(last) {
                chars.push(next);
                return Some(chars.into_iter().collect());
            }
        }
        None
    }
}

/// The statements a backend reads a page of keys or entries with, one for each kind of
/// [`KeyRange`]: by whether its start is read itself (the prefix) or not (a cursor), and
/// whether it has an end.
pub(crate) struct PageStatements {
    pub(crate) after: &'static str,
    pub(crate) from: &'static str,
    pub(crate) after_to_end: &'static str,
    pub(crate) from_to_end: &'static str,
}

impl PageStatements {
    /// The statement for a range whose start is read itself (`inclusive`) or not, and that
    /// has an end (`bounded`) or not.
    pub(crate) fn of(&self, inclusive: bool, bounded: bool) -> &'static str {
        match (inclusive, bounded) {
            (false, false) => self.after,
            (true, false) => self.from,
            (false, true) => self.after_to_end,
            (true, true) => self.from_to_end,
        }
    }
}

/// The next code point that is a `char` (surrogates are not), if any.
fn next_char(c: char) -> Option<char> {
    match c {
        '\u{D7FF}' => Some('\u{E000}'),
        char::MAX => None,
        c => char::from_u32(u32::from(c) + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `key` is in `range` as the stores read it: from its start, up to its end.
    fn read(range: &KeyRange<'_>, key: &str) -> bool {
        let (start, inclusive) = range.start();
        let from_start = if inclusive { key >= start } else { key > start };
        from_start && range.end().is_none_or(|end| key < end.as_str())
    }

    #[test]
    fn the_range_holds_exactly_the_keys_with_the_prefix_after_the_cursor() {
        let keys = [
            "",
            "a",
            "ab",
            "ab\u{0}",
            "abc",
            "ab\u{7f}",
            "ab\u{80}",
            "ab\u{D7FF}",
            "ab\u{E000}",
            "ab\u{FFFF}",
            "ab\u{10FFFF}",
            "ab\u{10FFFF}\u{10FFFF}x",
            "ac",
            "b",
            "\u{10FFFF}",
            "\u{10FFFF}a",
            "é",
            "éa",
            "ê",
        ];
        let prefixes = ["", "a", "ab", "ab\u{D7FF}", "ab\u{10FFFF}", "\u{10FFFF}", "é", "zz"];
        for prefix in prefixes {
            for after in std::iter::once(None).chain(keys.iter().map(|key| Some(*key))) {
                let range = KeyRange::new(prefix, after);
                for key in keys {
                    let expected = key.starts_with(prefix) && after.is_none_or(|after| key > after);
                    assert_eq!(read(&range, key), expected, "{key:?} in {range:?}");
                }
            }
        }
    }

    #[test]
    fn the_end_counts_the_last_character_up_past_the_surrogates_and_char_max() {
        assert_eq!(KeyRange::new("user:", None).end().as_deref(), Some("user;"));
        assert_eq!(KeyRange::new("a\u{D7FF}", None).end().as_deref(), Some("a\u{E000}"));
        assert_eq!(KeyRange::new("a\u{10FFFF}", None).end().as_deref(), Some("b"));
        assert_eq!(KeyRange::new("\u{10FFFF}\u{10FFFF}", None).end(), None);
    }
}
