//! [`Json`]: a checked JSON document, cheap to clone.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::Deserializer;
use serde::Serialize;
use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};

use crate::{Error, Result};

/// A JSON document as text, checked to be valid JSON.
///
/// Values in caches and queues are `Json`. Cloning one is a reference-count increment, so the
/// in-memory LRU hands out values without copying them. The text is kept exactly as written.
///
/// ```
/// use easycaching::Json;
///
/// let doc = Json::parse(r#"{"foo": "bar"}"#)?;
/// assert_eq!(doc.as_str(), r#"{"foo": "bar"}"#);
///
/// let value: serde_json::Value = doc.deserialize()?;
/// assert_eq!(value["foo"], "bar");
///
/// assert!(Json::parse("{not json").is_err());
/// # Ok::<(), easycaching::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Json(Arc<str>);

impl Json {
    /// Checks that `text` is one JSON document and wraps it.
    ///
    /// Returns [`Error::InvalidJson`] with serde_json's description (line and column) when it
    /// is not.
    pub fn parse(text: impl Into<Arc<str>>) -> Result<Json> {
        let text = text.into();
        serde_json::from_str::<Readable>(&text).map_err(|e| Error::InvalidJson(e.to_string()))?;
        Ok(Json(text))
    }

    /// Serializes `value` to a JSON document.
    pub fn from_value<T: Serialize + ?Sized>(value: &T) -> Result<Json> {
        let text = serde_json::to_string(value).map_err(|e| Error::InvalidJson(e.to_string()))?;
        Ok(Json(text.into()))
    }

    /// Deserializes the document into `T`; [`Error::WrongType`], holding the document, when
    /// it does not fit.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.0)
            .map_err(|e| Error::WrongType { reason: e.to_string(), value: self.clone() })
    }

    /// Wraps text already known to be valid JSON (read back from our own database).
    pub(crate) fn trusted(text: impl Into<Arc<str>>) -> Json {
        Json(text.into())
    }

    /// The document's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The size of the text in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a JSON document is never empty text. Here for `len`'s sake.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `self` and `other` are the same JSON value, however each is written: member
    /// order, whitespace, escapes in strings and the spelling of numbers (`1`, `1.0`, `1e0`)
    /// do not count. Two integers (that fit an `i64` or a `u64`) compare exactly; any other two
    /// numbers compare as `f64`, so `0` equals `-0` and `0.0`. When an object names a member
    /// twice, its last value counts, as it does when the document is read.
    ///
    /// This is the equality [`Cache::compare_and_swap`](crate::Cache::compare_and_swap)
    /// compares with. Text that is byte for byte the same is equal without being read.
    ///
    /// ```
    /// use easycaching::Json;
    ///
    /// let stored = Json::parse(r#"{"a":1,"b":[true,null]}"#)?;
    /// assert!(stored.same_value(&Json::parse(r#"{ "b": [true, null], "a": 1.0 }"#)?));
    /// assert!(!stored.same_value(&Json::parse(r#"{"a":2,"b":[true,null]}"#)?));
    /// # Ok::<(), easycaching::Error>(())
    /// ```
    pub fn same_value(&self, other: &Json) -> bool {
        same_json(self.as_str(), other.as_str())
    }
}

impl Deref for Json {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Json {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Json({})", &self.0)
    }
}

impl TryFrom<&str> for Json {
    type Error = Error;
    fn try_from(text: &str) -> Result<Json> {
        Json::parse(text)
    }
}

impl TryFrom<String> for Json {
    type Error = Error;
    fn try_from(text: String) -> Result<Json> {
        Json::parse(text)
    }
}

impl From<&serde_json::Value> for Json {
    fn from(value: &serde_json::Value) -> Json {
        Json(value.to_string().into())
    }
}

impl From<serde_json::Value> for Json {
    fn from(value: serde_json::Value) -> Json {
        Json::from(&value)
    }
}

impl From<Json> for Arc<str> {
    /// The text itself, shared rather than copied.
    fn from(json: Json) -> Arc<str> {
        json.0
    }
}

/// Whether two JSON texts hold the same value (see [`Json::same_value`]). Text either side
/// that is not JSON (which no [`Json`] holds) equals only the same text.
fn same_json(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (serde_json::from_str::<serde_json::Value>(a), serde_json::from_str::<serde_json::Value>(b)) {
        (Ok(a), Ok(b)) => same_value(&a, &b),
        _ => false,
    }
}

/// [`same_json`] on values read. Recursion is bounded: serde_json reads no deeper than 128.
fn same_value(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => same_number(a, b),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_value(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(key, a)| b.get(key).is_some_and(|b| same_value(a, b)))
        }
        (a, b) => a == b,
    }
}

/// Two integers exactly (an `i64` and a `u64` meet as `i128`), anything else as `f64`.
fn same_number(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    let integer = |n: &serde_json::Number| n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from));
    match (integer(a), integer(b)) {
        (Some(a), Some(b)) => a == b,
        // Every number serde_json reads (without `arbitrary_precision`) has an f64 value.
        _ => a.as_f64().is_some_and(|x| b.as_f64().is_some_and(|y| x == y)),
    }
}

/// A JSON document checked the way it will be read back, and otherwise ignored: nested no
/// deeper than serde_json reads (128 levels: what deserializing into `serde_json::Value` or
/// any type allows), and with every string's escapes valid (no lone UTF-16 surrogate, which no
/// Rust string can hold). `IgnoredAny` checks neither, so it let a 200,000-deep array be
/// stored that no reader in this crate could read, and so were numbers past what an `f64`
/// holds (`1e999`).
struct Readable;

impl<'de> de::Deserialize<'de> for Readable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_any(Readable)
    }
}

impl<'de> Visitor<'de> for Readable {
    type Value = Readable;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON document")
    }

    fn visit_bool<E>(self, _: bool) -> std::result::Result<Self, E> {
        Ok(Readable)
    }

    fn visit_i64<E>(self, _: i64) -> std::result::Result<Self, E> {
        Ok(Readable)
    }

    fn visit_u64<E>(self, _: u64) -> std::result::Result<Self, E> {
        Ok(Readable)
    }

    fn visit_f64<E>(self, _: f64) -> std::result::Result<Self, E> {
        Ok(Readable)
    }

    fn visit_str<E>(self, _: &str) -> std::result::Result<Self, E> {
        Ok(Readable)
    }

    fn visit_unit<E>(self) -> std::result::Result<Self, E> {
        Ok(Readable)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> std::result::Result<Self, A::Error> {
        while items.next_element::<Readable>()?.is_some() {}
        Ok(Readable)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> std::result::Result<Self, A::Error> {
        while entries.next_entry::<Readable, Readable>()?.is_some() {}
        Ok(Readable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_kind_of_json_document() {
        for text in ["{}", "[1,2]", "\"bar\"", "42", "-1.5e3", "true", "false", "null", " {\"a\" : [ ] } "] {
            assert_eq!(Json::parse(text).unwrap().as_str(), text);
        }
    }

    #[test]
    fn refuses_text_that_is_not_one_json_document() {
        for text in ["", "{", "bar", "{\"a\":1} {\"b\":2}", "[1,]", "'single'", "NaN"] {
            let err = Json::parse(text).unwrap_err();
            assert!(matches!(err, Error::InvalidJson(_)), "{text:?} gave {err:?}");
        }
    }

    #[test]
    fn refuses_what_could_not_be_read_back() {
        let deepest = format!("{}{}", "[".repeat(127), "]".repeat(127));
        let value: serde_json::Value = Json::parse(deepest.as_str()).unwrap().deserialize().unwrap();
        assert!(value.is_array());
        let too_deep = format!("{}{}", "[".repeat(129), "]".repeat(129));
        let too_deep_objects = format!("{}1{}", r#"{"a":"#.repeat(200_000), "}".repeat(200_000));
        for text in
            [too_deep.as_str(), &too_deep_objects, r#""\ud800""#, r#"{"\udc00":1}"#, "1e999", "[-1e999]"]
        {
            let err = Json::parse(text).unwrap_err();
            assert!(matches!(err, Error::InvalidJson(_)), "{:.40} gave {err:?}", text);
        }
        assert!(Json::parse(r#""\ud83d\ude00 \u00e9""#).is_ok(), "a surrogate pair is one character");
        assert!(Json::parse(r#""\\ud800""#).is_ok(), "an escaped backslash, then text");
    }

    #[test]
    fn same_value_ignores_how_a_value_is_written_and_nothing_else() {
        let same = |a: &str, b: &str| Json::parse(a).unwrap().same_value(&Json::parse(b).unwrap());
        for (a, b) in [
            (r#"{"a":1}"#, r#"{"a":1}"#),
            (r#"{"a": 1}"#, r#"{"a":1}"#),
            (r#"{"a":1,"b":2}"#, r#"{"b":2,"a":1}"#),
            (" [1, 2 ,3] ", "[1,2,3]"),
            ("1", "1.0"),
            ("1", "1e0"),
            ("100", "1E2"),
            ("0", "-0"),
            ("0", "-0.0"),
            ("0.5", "5e-1"),
            ("-7", "-7.0"),
            (r#""A""#, r#""\u0041""#),
            (r#"{"a":[{"b":null,"c":true}]}"#, r#"{ "a" : [ { "c" : true , "b" : null } ] }"#),
            (r#"{"a":1,"a":2}"#, r#"{"a":2}"#),
            ("18446744073709551615", "18446744073709551615"),
            ("-9223372036854775808", "-9223372036854775808.0"),
        ] {
            assert!(same(a, b), "{a} and {b} are one value");
            assert!(same(b, a), "{b} and {a} are one value");
        }
        for (a, b) in [
            ("1", "2"),
            ("1", r#""1""#),
            ("0", "false"),
            ("null", "false"),
            ("null", "0"),
            (r#""""#, "null"),
            ("[]", "{}"),
            ("[1,2]", "[2,1]"),
            ("[1]", "[1,1]"),
            (r#"{"a":1}"#, r#"{"a":1,"b":1}"#),
            (r#"{"a":1}"#, r#"{"b":1}"#),
            (r#"{"a":null}"#, "{}"),
            (r#""a""#, r#""A""#),
            ("1.5", "1.25"),
            // Integers compare exactly, even where their f64 values are one.
            ("9007199254740993", "9007199254740992"),
            ("18446744073709551615", "18446744073709551614"),
            ("-1", "18446744073709551615"),
        ] {
            assert!(!same(a, b), "{a} and {b} differ");
            assert!(!same(b, a), "{b} and {a} differ");
        }
        assert!(same_json("not json", "not json"), "the same text, read or not");
        assert!(!same_json("not json", "not  json"));
    }

    #[test]
    fn round_trips_through_serde() {
        let doc = Json::from_value(&serde_json::json!({"foo": "bar"})).unwrap();
        assert_eq!(doc.as_str(), r#"{"foo":"bar"}"#);
        let back: std::collections::HashMap<String, String> = doc.deserialize().unwrap();
        assert_eq!(back["foo"], "bar");
    }
}
