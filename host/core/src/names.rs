//! Which cache and queue names are allowed.
//!
//! Names only ever reach SQLite as bound parameters and never become file names, so any string
//! would be safe. They are still kept to a small, printable alphabet so they can be typed in a
//! shell, written in a grant (`cache:sessions.*`) and shown in logs without surprises.

use crate::{Error, Result};

/// The longest name allowed, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// Checks a cache or queue name: 1 to [`MAX_NAME_BYTES`] bytes of ASCII letters, digits, `_`,
/// `-`, `.` and `:`, starting with a letter, digit or `_`.
///
/// ```
/// use easycaching::validate_name;
/// assert!(validate_name("sessions.v2").is_ok());
/// assert!(validate_name("x'; DROP TABLE entries; --").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid_name(name, "a name cannot be empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(Error::invalid_name(name, "a name is at most 128 bytes"));
    }
    let first = name.as_bytes()[0];
    if !(first.is_ascii_alphanumeric() || first == b'_') {
        return Err(Error::invalid_name(name, "a name starts with a letter, a digit or '_'"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':')) {
        return Err(Error::invalid_name(
            name,
            "a name holds only ASCII letters, digits, '_', '-', '.' and ':'",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for name in ["test", "sessions.v2", "tenant:42:users", "_private", "a-b_c", "9lives"] {
            validate_name(name).unwrap();
        }
        validate_name(&"x".repeat(MAX_NAME_BYTES)).unwrap();
    }

    #[test]
    fn refuses_hostile_and_odd_names() {
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        for name in [
            "",
            long.as_str(),
            "a'b",
            "x\"; DROP TABLE entries; --",
            "../etc/passwd",
            "a/b",
            "a\\b",
            "nul\0byte",
            "tab\there",
            "new\nline",
            "space name",
            ".hidden",
            "-flag",
            "*",
            "caché",
        ] {
            let err = validate_name(name).unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{name:?} gave {err:?}");
        }
    }

    #[test]
    fn error_messages_shorten_huge_names() {
        let huge = "y".repeat(1_000_000);
        let message = validate_name(&huge).unwrap_err().to_string();
        assert!(message.len() < 300, "{} bytes", message.len());
    }
}
