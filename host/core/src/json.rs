//! [`Json`]: a checked JSON document, cheap to clone.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};

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
        serde_json::from_str::<IgnoredAny>(&text).map_err(|e| Error::InvalidJson(e.to_string()))?;
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
    fn round_trips_through_serde() {
        let doc = Json::from_value(&serde_json::json!({"foo": "bar"})).unwrap();
        assert_eq!(doc.as_str(), r#"{"foo":"bar"}"#);
        let back: std::collections::HashMap<String, String> = doc.deserialize().unwrap();
        assert_eq!(back["foo"], "bar");
    }
}
