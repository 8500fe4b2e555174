//! Grants: which caches and queues a plugin may reach, and how.
//!
//! A plugin starts with nothing. Each [`Grant`] names caches or queues (one name, or every name
//! with a prefix) and what the plugin may do with them: read, write, and create or delete them.
//! When several grants match a name, the most specific one decides: an exact name beats a
//! prefix, and a longer prefix beats a shorter one. So `cache:*=r` with `cache:mine=rw` lets a
//! plugin read every cache and write only `mine`.

use std::fmt;
use std::str::FromStr;

use easycaching::Quota;

/// Whether a grant is about caches or queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Named caches.
    Cache,
    /// Named queues.
    Queue,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Cache => "cache",
            Kind::Queue => "queue",
        })
    }
}

/// Which names a grant covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// Exactly this name.
    Exact(String),
    /// Every name that starts with this prefix (written `prefix*`; `*` alone is every name).
    Prefix(String),
}

impl Pattern {
    fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Exact(exact) => exact == name,
            Pattern::Prefix(prefix) => name.starts_with(prefix.as_str()),
        }
    }

    /// The prefix of a prefix pattern.
    fn prefix(&self) -> Option<&str> {
        match self {
            Pattern::Exact(_) => None,
            Pattern::Prefix(prefix) => Some(prefix),
        }
    }

    /// Higher is more specific.
    fn specificity(&self) -> usize {
        match self {
            Pattern::Exact(_) => usize::MAX,
            Pattern::Prefix(prefix) => prefix.len(),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(name) => f.write_str(name),
            Pattern::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// What a grant allows on the names it covers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Permission {
    /// May write: set, delete, clear (for queues: put, get, clear).
    pub write: bool,
    /// May create and delete caches or queues of these names.
    pub create: bool,
    /// The quota writes are held to. A prefix grant's quota is shared by every cache (or
    /// queue) it covers, together; an exact grant's bounds its one cache.
    pub quota: Quota,
}

/// One grant: a kind, a pattern and a permission. Reading is always allowed by a grant.
///
/// Written (and parsed) as `KIND:PATTERN[=MODE][,entries=N][,bytes=N]`, where `MODE` is `r`
/// (read only), `rw` (read and write, the default), `rwc` (also create and delete) or `rc`
/// (read, create and delete, but not write); `N` takes `k`, `M` or `G` suffixes (powers of
/// 1024 for bytes, of 1000 for entries).
///
/// ```
/// use easycaching_host::Grant;
///
/// let grant: Grant = "cache:sessions.*=rwc,entries=10k,bytes=64M".parse()?;
/// assert_eq!(grant.to_string(), "cache:sessions.*=rwc,entries=10000,bytes=67108864");
/// let read_only: Grant = "queue:jobs=r".parse()?;
/// assert!(!read_only.permission.write);
/// # Ok::<(), easycaching_host::GrantParseError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Caches or queues.
    pub kind: Kind,
    /// Which names.
    pub pattern: Pattern,
    /// What is allowed.
    pub permission: Permission,
}

impl Grant {
    /// Read-only access to the caches or queues matching `pattern` (`name` or `prefix*`).
    ///
    /// Fails, naming what is wrong, when `pattern` could match no cache or queue (a name
    /// that is not allowed, a prefix no allowed name starts with, or a `*` anywhere but at the
    /// end). (A `Grant` written as a struct literal is not checked: its pattern simply matches
    /// nothing a plugin can name.)
    pub fn read(kind: Kind, pattern: &str) -> Result<Grant, GrantParseError> {
        Grant::new(kind, pattern, Permission::default())
    }

    /// Read and write access. Fails as [`Grant::read`] does.
    pub fn read_write(kind: Kind, pattern: &str) -> Result<Grant, GrantParseError> {
        Grant::new(kind, pattern, Permission { write: true, ..Permission::default() })
    }

    /// Read and write access, and creating and deleting. Fails as [`Grant::read`] does.
    ///
    /// ```
    /// use easycaching_host::{Grant, Kind};
    ///
    /// let grant = Grant::manage(Kind::Cache, "sessions.*")?;
    /// assert_eq!(grant.to_string(), "cache:sessions.*=rwc");
    /// let typo = Grant::manage(Kind::Cache, "sessions *").unwrap_err();
    /// assert!(typo.to_string().contains("\"cache:sessions *\""), "{typo}");
    /// # Ok::<(), easycaching_host::GrantParseError>(())
    /// ```
    pub fn manage(kind: Kind, pattern: &str) -> Result<Grant, GrantParseError> {
        Grant::new(kind, pattern, Permission { write: true, create: true, ..Permission::default() })
    }

    fn new(kind: Kind, pattern: &str, permission: Permission) -> Result<Grant, GrantParseError> {
        let problem = |problem| GrantParseError { given: format!("{kind}:{pattern}"), problem };
        Ok(Grant { kind, pattern: parse_pattern(pattern).map_err(problem)?, permission })
    }

    /// This grant with writes held to `quota` (its `shared_by_prefix` is set from the
    /// pattern: a prefix grant's quota is shared by everything it covers).
    pub fn with_quota(mut self, quota: Quota) -> Grant {
        self.permission.quota = Quota { shared_by_prefix: self.pattern.prefix().map(Into::into), ..quota };
        self
    }
}

/// `name` or `prefix*`, refused (with the problem) when it could match no cache or queue.
fn parse_pattern(pattern: &str) -> Result<Pattern, String> {
    if pattern.is_empty() {
        return Err("it names no cache or queue (use * for all)".into());
    }
    let prefix = pattern.strip_suffix('*');
    // `cache:vis*its` is a misplaced wildcard, not a name with a bad character in it.
    if prefix.unwrap_or(pattern).contains('*') {
        return Err("* may only end a pattern".into());
    }
    let Some(prefix) = prefix else {
        easycaching::validate_name(pattern).map_err(|e| e.to_string())?;
        return Ok(Pattern::Exact(pattern.to_owned()));
    };
    // A prefix some name starts with is itself a name, or nothing.
    if !prefix.is_empty() {
        easycaching::validate_name(prefix).map_err(|e| format!("no name starts so: {e}"))?;
    }
    Ok(Pattern::Prefix(prefix.to_owned()))
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match (self.permission.write, self.permission.create) {
            (false, false) => "r",
            (true, false) => "rw",
            (false, true) => "rc",
            (true, true) => "rwc",
        };
        write!(f, "{}:{}={mode}", self.kind, self.pattern)?;
        if let Some(entries) = self.permission.quota.max_entries {
            write!(f, ",entries={entries}")?;
        }
        if let Some(bytes) = self.permission.quota.max_bytes {
            write!(f, ",bytes={bytes}")?;
        }
        Ok(())
    }
}

/// Why a grant did not parse; the message shows the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad grant {given:?}: {problem}; write KIND:PATTERN[=r|rw|rwc|rc][,entries=N][,bytes=N], e.g. cache:sessions=rw or queue:jobs.*=rwc"
)]
pub struct GrantParseError {
    given: String,
    problem: String,
}

impl FromStr for Grant {
    type Err = GrantParseError;

    fn from_str(text: &str) -> Result<Grant, GrantParseError> {
        let fail = |problem: &str| GrantParseError { given: text.to_owned(), problem: problem.to_owned() };
        let (kind, rest) = text.split_once(':').ok_or_else(|| fail("it has no KIND: in front"))?;
        let kind = match kind {
            "cache" | "caches" => Kind::Cache,
            "queue" | "queues" => Kind::Queue,
            other => return Err(fail(&format!("the kind is {other:?}, not cache or queue"))),
        };
        let mut parts = rest.split(',');
        let target = parts.next().unwrap_or_default();
        let (pattern, mode) = target.split_once('=').unwrap_or((target, "rw"));
        let pattern = parse_pattern(pattern).map_err(|problem| fail(&problem))?;
        let mut permission = match mode {
            "r" => Permission::default(),
            "rw" => Permission { write: true, ..Permission::default() },
            "rc" => Permission { create: true, ..Permission::default() },
            "rwc" => Permission { write: true, create: true, ..Permission::default() },
            other => return Err(fail(&format!("the mode is {other:?}, not r, rw, rwc or rc"))),
        };
        for part in parts {
            let (key, value) =
                part.split_once('=').ok_or_else(|| fail(&format!("{part:?} is not key=value")))?;
            match key {
                "entries" => {
                    permission.quota.max_entries =
                        Some(parse_amount(value, 1000).ok_or_else(|| fail("entries= takes a number"))?)
                }
                "bytes" => {
                    permission.quota.max_bytes =
                        Some(parse_amount(value, 1024).ok_or_else(|| fail("bytes= takes a number"))?)
                }
                other => return Err(fail(&format!("{other:?} is not entries or bytes"))),
            }
        }
        let quota = std::mem::take(&mut permission.quota);
        let grant = Grant { kind, pattern, permission };
        Ok(if quota.is_unlimited() { grant } else { grant.with_quota(quota) })
    }
}

/// `10`, `10k`, `64M`, `2G`: k, M, G multiply by `base`, `base²`, `base³`.
fn parse_amount(text: &str, base: u64) -> Option<u64> {
    let (digits, power) = match text.char_indices().last()? {
        (at, 'k' | 'K') => (&text[..at], 1),
        (at, 'm' | 'M') => (&text[..at], 2),
        (at, 'g' | 'G') => (&text[..at], 3),
        _ => (text, 0),
    };
    digits.parse::<u64>().ok()?.checked_mul(base.checked_pow(power)?)
}

/// A plugin's grants. Empty by default: no access to anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    grants: Vec<Grant>,
}

impl Grants {
    /// No grants at all.
    pub fn none() -> Grants {
        Grants::default()
    }

    /// Every cache and queue, with create: for trusted plugins and tests.
    pub fn everything() -> Grants {
        let every = |kind| Grant::manage(kind, "*").expect("* is a pattern");
        Grants { grants: vec![every(Kind::Cache), every(Kind::Queue)] }
    }

    /// Adds a grant.
    pub fn with(mut self, grant: Grant) -> Grants {
        self.grants.push(grant);
        self
    }

    /// The grants, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &Grant> {
        self.grants.iter()
    }

    /// What the plugin may do with the cache or queue `name`; `None` when nothing.
    pub fn permission(&self, kind: Kind, name: &str) -> Option<Permission> {
        self.grants
            .iter()
            .filter(|grant| grant.kind == kind && grant.pattern.matches(name))
            .max_by_key(|grant| grant.pattern.specificity())
            .map(|grant| grant.permission.clone())
    }
}

impl FromIterator<Grant> for Grants {
    fn from_iter<I: IntoIterator<Item = Grant>>(grants: I) -> Grants {
        Grants { grants: grants.into_iter().collect() }
    }
}

/// What an access-denied error tells the host: the grant that would allow it, as `Grant::parse`,
/// the harness's `allow` and the command line's `--allow` (of `run` and `serve` alike) take it.
/// `mode` is `""` (read and write), `"=rw"` or `"=rwc"`.
pub(crate) fn grant_needed(kind: Kind, name: &str, mode: &str) -> String {
    format!("the grant that allows it: {kind}:{name}{mode}, as in `--allow {kind}:{name}{mode}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(specs: &[&str]) -> Grants {
        specs.iter().map(|spec| spec.parse::<Grant>().unwrap()).collect()
    }

    /// The grant is named for every host: `serve`'s denials said "e.g. `easycaching run --allow
    /// ...`", to an HTTP client too, and so did the harness's, whose grants go to `allow`.
    #[test]
    fn a_denial_names_the_grant_whatever_the_host() {
        let needed = grant_needed(Kind::Cache, "web", "=rwc");
        assert_eq!(needed, "the grant that allows it: cache:web=rwc, as in `--allow cache:web=rwc`");
        assert!(!needed.contains("easycaching run"), "{needed}");
        let grant = needed.split_whitespace().nth(5).unwrap().trim_end_matches(',');
        assert_eq!(grant.parse::<Grant>().unwrap(), Grant::manage(Kind::Cache, "web").unwrap());
    }

    #[test]
    fn parses_every_mode_and_quota() {
        let grant: Grant = "cache:test".parse().unwrap();
        assert_eq!(grant, Grant::read_write(Kind::Cache, "test").unwrap());
        assert_eq!("queue:jobs=r".parse::<Grant>().unwrap(), Grant::read(Kind::Queue, "jobs").unwrap());
        assert_eq!("cache:app.*=rwc".parse::<Grant>().unwrap(), Grant::manage(Kind::Cache, "app.*").unwrap());
        let quota: Grant = "cache:q=rw,entries=2k,bytes=1M".parse().unwrap();
        assert_eq!(
            quota.permission.quota,
            Quota { max_entries: Some(2000), max_bytes: Some(1 << 20), shared_by_prefix: None }
        );
        let shared: Grant = "cache:tenant.*=rwc,bytes=1k".parse().unwrap();
        assert_eq!(shared.permission.quota.shared_by_prefix.as_deref(), Some("tenant."));
        let create_only: Grant = "queue:old.*=rc".parse().unwrap();
        assert!(create_only.permission.create && !create_only.permission.write);
        for spec in
            ["cache:test", "queue:jobs=r", "cache:*=rwc", "queue:old.*=rc", "cache:a=rw,entries=5,bytes=7"]
        {
            let grant: Grant = spec.parse().unwrap();
            assert_eq!(grant.to_string().parse::<Grant>().unwrap(), grant, "{spec}");
        }
    }

    #[test]
    fn refuses_malformed_grants_with_the_expected_form() {
        for spec in [
            "test",
            "table:test",
            "cache:",
            "cache:test=rwx",
            "cache:a*b",
            "cache:bad name",
            "cache:-flag*",
            "cache:x,entries=lots",
            "cache:x,color=red",
        ] {
            let err = spec.parse::<Grant>().unwrap_err().to_string();
            assert!(err.contains("KIND:PATTERN"), "{spec}: {err}");
        }
        // A * inside a pattern is named as such, with or without one at the end.
        for spec in ["cache:a*b", "cache:a*b*", "queue:*x=rw"] {
            let err = spec.parse::<Grant>().unwrap_err().to_string();
            assert!(err.contains("* may only end a pattern"), "{spec}: {err}");
        }
    }

    #[test]
    fn the_constructors_refuse_what_parsing_refuses() {
        for pattern in ["", "bad name", "a*b", "**", "a b*", "-x*", ".hidden*"] {
            let err = Grant::read(Kind::Cache, pattern).unwrap_err().to_string();
            assert!(err.contains(&format!("\"cache:{pattern}\"")) && err.contains("KIND:PATTERN"), "{err}");
            assert!(format!("cache:{pattern}").parse::<Grant>().is_err(), "{pattern}");
        }
        let exact = Grant::read_write(Kind::Queue, "jobs").unwrap();
        assert_eq!(exact.pattern, Pattern::Exact("jobs".into()));
        assert_eq!(Grant::manage(Kind::Cache, "*").unwrap().pattern, Pattern::Prefix(String::new()));
    }

    #[test]
    fn nothing_is_granted_by_default() {
        assert_eq!(Grants::none().permission(Kind::Cache, "test"), None);
    }

    #[test]
    fn grants_match_by_kind_name_and_prefix() {
        let g = grants(&["cache:test=r", "queue:jobs.*"]);
        assert!(g.permission(Kind::Cache, "test").is_some());
        assert_eq!(g.permission(Kind::Cache, "test2"), None);
        assert_eq!(g.permission(Kind::Queue, "test"), None);
        assert!(g.permission(Kind::Queue, "jobs.emails").unwrap().write);
        assert_eq!(g.permission(Kind::Cache, "jobs.emails"), None);
    }

    #[test]
    fn the_most_specific_grant_decides() {
        let g = grants(&["cache:*=rw", "cache:config=r", "cache:app.*=r", "cache:app.private.*=rwc"]);
        assert!(g.permission(Kind::Cache, "anything").unwrap().write);
        assert!(!g.permission(Kind::Cache, "config").unwrap().write);
        assert!(!g.permission(Kind::Cache, "app.public").unwrap().write);
        assert!(g.permission(Kind::Cache, "app.private.x").unwrap().create);
    }
}
