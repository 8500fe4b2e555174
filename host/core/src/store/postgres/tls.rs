//! TLS for the store's connections, as libpq configures it: `sslmode` and `sslrootcert` in the
//! connection URL (`postgres://…?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem`) or in
//! its key-value form (`host=db sslmode=require`).
//!
//! | `sslmode` | encrypted | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow` | only when the server refuses a session without it | not checked |
//! | `prefer` (the default) | when the server offers it | not checked |
//! | `require` | always | not checked, unless `sslrootcert` is given: then as `verify-ca` |
//! | `verify-ca` | always | signed by a root of `sslrootcert` (default: the system's roots) |
//! | `verify-full` | always | as `verify-ca`, and made out to the host connected to |
//!
//! The client the store uses parses only `disable`, `prefer` and `require` and no
//! `sslrootcert`, so [`take_tls_options`] takes both out of the URL before it is parsed.
//! Client certificates (`sslcert`, `sslkey`) are not supported.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use postgres::config::SslMode;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{Error, Result};

/// libpq's `sslmode`: whether connections are encrypted and what is checked of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// The TLS settings of a connection URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TlsOptions {
    pub(super) mode: Mode,
    /// `sslrootcert`: a PEM file of the roots to trust; `None` (or `system`) for the system's.
    pub(super) root_cert: Option<PathBuf>,
}

impl TlsOptions {
    /// The mode the client is given: it only encrypts or not, the checks are the connector's.
    /// For `allow`, that of the first attempt (see [`TlsOptions::retry_with_tls`]).
    pub(super) fn ssl_mode(&self) -> SslMode {
        match self.mode {
            Mode::Disable | Mode::Allow => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
        }
    }

    /// Whether a connection the server refused without TLS is tried again with it: `allow`,
    /// as libpq does.
    pub(super) fn retry_with_tls(&self) -> bool {
        self.mode == Mode::Allow
    }

    /// The connector that makes TLS sessions and checks the server's certificate as the mode
    /// asks. Fails when the roots cannot be read.
    pub(super) fn connector(&self) -> Result<MakeRustlsConnect> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verify_chain = match (self.mode, &self.root_cert) {
            (Mode::VerifyCa | Mode::VerifyFull, _) | (Mode::Require, Some(_)) => true,
            (Mode::Disable | Mode::Allow | Mode::Prefer | Mode::Require, _) => false,
        };
        let chain = if verify_chain {
            let roots = Arc::new(self.roots()?);
            let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| Error::InvalidArgument(format!("PostgreSQL TLS roots: {e}")))?;
            Some(verifier)
        } else {
            None
        };
        let verifier = Verifier {
            chain,
            check_name: self.mode == Mode::VerifyFull,
            algorithms: provider.signature_verification_algorithms,
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Storage(format!("PostgreSQL TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }

    /// The roots of `sslrootcert`, or the system's.
    fn roots(&self) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        match &self.root_cert {
            Some(path) => {
                let refused = |reason: String| {
                    Error::InvalidArgument(format!("sslrootcert {}: {reason}", path.display()))
                };
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| refused(e.to_string()))?
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| refused(e.to_string()))?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(refused("holds no certificate".into()));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(Error::InvalidArgument(format!(
                        "sslmode {} checks the server's certificate, and no root was found on \
                         this system to check it with: give sslrootcert=<a PEM file>{}",
                        self.mode.name(),
                        found.errors.first().map(|e| format!(" ({e})")).unwrap_or_default()
                    )));
                }
            }
        }
        Ok(roots)
    }
}

impl Mode {
    fn parse(value: &str) -> Result<Mode> {
        Ok(match value {
            "disable" => Mode::Disable,
            "allow" => Mode::Allow,
            "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "sslmode {other:?}: takes disable, allow, prefer, require, verify-ca or verify-full"
                )));
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::Allow => "allow",
            Mode::Prefer => "prefer",
            Mode::Require => "require",
            Mode::VerifyCa => "verify-ca",
            Mode::VerifyFull => "verify-full",
        }
    }
}

/// Takes `sslmode` and `sslrootcert` out of a connection string, URL or key-value form,
/// answering the rest (for the client to parse) and the TLS settings.
pub(super) fn take_tls_options(url: &str) -> Result<(String, TlsOptions)> {
    let mut options = TlsOptions { mode: Mode::Prefer, root_cert: None };
    let mut take = |key: &str, value: &str| -> Result<bool> {
        match key {
            "sslmode" => options.mode = Mode::parse(value)?,
            "sslrootcert" => {
                options.root_cert = (value != "system").then(|| Path::new(value).to_path_buf());
            }
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&') {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    let value = percent_encoding::percent_decode_str(value).decode_utf8().map_err(|_| {
                        Error::InvalidArgument(format!("the URL's {key} is not UTF-8 once decoded"))
                    })?;
                    if !take(key, &value)? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) }
            }
        }
    } else {
        let mut kept = Vec::new();
        for (key, value, text) in key_values(url)? {
            if !take(key, &value)? {
                kept.push(text);
            }
        }
        kept.join(" ")
    };
    Ok((rest, options))
}

/// The `key=value` pairs of libpq's key-value form, with each pair's text as written: values
/// may be quoted (`'…'`, with `\'` and `\\` inside).
fn key_values(text: &str) -> Result<Vec<(&str, String, &str)>> {
    let malformed = || Error::InvalidArgument("not a PostgreSQL connection string: a key without =".into());
    let mut pairs = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let start = rest;
        let equals = rest.find('=').ok_or_else(malformed)?;
        let key = rest[..equals].trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(malformed());
        }
        rest = rest[equals + 1..].trim_start();
        let mut value = String::new();
        if let Some(quoted) = rest.strip_prefix('\'') {
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((index, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, escaped)| escaped)),
                    '\'' => {
                        end = Some(index + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let end = end.ok_or_else(|| {
                Error::InvalidArgument("not a PostgreSQL connection string: an unclosed quote".into())
            })?;
            rest = &quoted[end..];
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            value.push_str(&rest[..end]);
            rest = &rest[end..];
        }
        let written = &start[..start.len() - rest.len()];
        pairs.push((key, value, written));
        rest = rest.trim_start();
    }
    Ok(pairs)
}

/// Checks the server's certificate as the mode asks (see the module docs); the signatures of
/// the handshake are checked in every mode, so the session is with whoever holds the key of
/// the certificate presented.
#[derive(Debug)]
struct Verifier {
    /// Checks the chain to a trusted root; `None`: the certificate is not checked.
    chain: Option<Arc<WebPkiServerVerifier>>,
    /// Whether the certificate must also be made out to the host connected to.
    check_name: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            // The chain is checked before the name: a name error means the chain was good.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            verified => verified,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(url: &str) -> (String, TlsOptions) {
        take_tls_options(url).expect("valid options")
    }

    #[test]
    fn a_url_keeps_its_other_parameters_and_loses_the_tls_ones() {
        let (rest, tls) = taken(
            "postgres://u:p@db:5432/app?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20b.pem",
        );
        assert_eq!(rest, "postgres://u:p@db:5432/app?application_name=x");
        assert_eq!(tls, TlsOptions { mode: Mode::VerifyFull, root_cert: Some("/etc/ca b.pem".into()) });
        let (rest, tls) = taken("postgresql://db/app?sslmode=require");
        assert_eq!(
            (rest.as_str(), tls.mode, tls.ssl_mode()),
            ("postgresql://db/app", Mode::Require, SslMode::Require)
        );
        let (rest, tls) = taken("postgres://db/app");
        assert_eq!((rest.as_str(), tls.mode), ("postgres://db/app", Mode::Prefer));
        assert_eq!(taken("postgres://db/app?sslrootcert=system").1.root_cert, None);
        let (_, tls) = taken("postgres://db/app?sslmode=allow");
        assert_eq!((tls.mode, tls.ssl_mode(), tls.retry_with_tls()), (Mode::Allow, SslMode::Disable, true));
        assert!(!taken("postgres://db/app?sslmode=prefer").1.retry_with_tls());
    }

    #[test]
    fn the_key_value_form_keeps_quoted_values_as_written() {
        let (rest, tls) =
            taken(r"host=db  password='a b\'c' sslmode = verify-ca sslrootcert='/x y/ca.pem' user=u");
        assert_eq!(rest, r"host=db password='a b\'c' user=u");
        assert_eq!(tls, TlsOptions { mode: Mode::VerifyCa, root_cert: Some("/x y/ca.pem".into()) });
    }

    #[test]
    fn bad_options_are_named() {
        let message = |url: &str| take_tls_options(url).expect_err("refused").to_string();
        assert!(message("postgres://db/app?sslmode=always").contains("sslmode \"always\""));
        assert!(message("host=db password='open").contains("unclosed quote"));
        assert!(message("host=db lonely").contains("without ="));
    }

    #[test]
    fn a_root_file_that_cannot_be_read_is_named_before_connecting() {
        let tls = TlsOptions { mode: Mode::VerifyFull, root_cert: Some("/no/such/ca.pem".into()) };
        let error = tls.connector().err().expect("refused").to_string();
        assert!(error.contains("sslrootcert /no/such/ca.pem"), "{error}");
    }
}
