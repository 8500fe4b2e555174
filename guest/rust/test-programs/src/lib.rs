//! Shared by the test programs: one line per step, so the host-side test can assert on it.

use easycaching_guest::Result;

/// Prints `label: ok VALUE` or `label: CASE` (the WIT error case), and returns the result.
pub fn report<T: std::fmt::Debug>(label: &str, result: Result<T>) -> Result<T> {
    match &result {
        Ok(value) => println!("{label}: ok {value:?}"),
        Err(error) => println!("{label}: {}", error.case()),
    }
    result
}
