//! TLS plumbing for the platform, bank-core and rail links (docs/protocol.md §1–§3, "TLS 1.2/1.3").
//!
//! Every configuration built here installs the `ring` crypto provider explicitly
//! (`builder_with_provider`), never relying on a process-wide default, and enables
//! exactly TLS 1.3 and TLS 1.2 unless a narrower set is asked for.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, SupportedProtocolVersion};

/// Errors building a TLS configuration; each names the file involved and why it failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file that failed.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A PEM file is syntactically broken.
    #[error("malformed PEM in {path}: {source}")]
    Pem {
        /// The file that failed.
        path: PathBuf,
        /// The underlying parse error.
        source: std::io::Error,
    },
    /// A certificate file holds no `CERTIFICATE` block.
    #[error("no certificate found in {path}")]
    NoCertificate {
        /// The file that failed.
        path: PathBuf,
    },
    /// A key file holds no PKCS#8, PKCS#1 or SEC1 private key.
    #[error("no private key found in {path}")]
    NoPrivateKey {
        /// The file that failed.
        path: PathBuf,
    },
    /// A CA certificate was refused as a trust anchor.
    #[error("CA certificate in {path} is not usable as a trust anchor: {source}")]
    BadCa {
        /// The file that failed.
        path: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// rustls refused the configuration (e.g. key does not match the certificate).
    #[error("TLS configuration with {path} refused: {source}")]
    Config {
        /// The certificate (or CA) file the configuration was built from.
        path: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// The client-certificate verifier could not be built from the CA file.
    #[error("client CA {path} refused: {reason}")]
    Verifier {
        /// The client CA file.
        path: PathBuf,
        /// Why the verifier could not be built.
        reason: String,
    },
}

/// The protocol versions every configuration here enables: TLS 1.3 and TLS 1.2.
pub static DEFAULT_VERSIONS: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn open(path: &Path) -> Result<BufReader<std::fs::File>, TlsError> {
    std::fs::File::open(path)
        .map(BufReader::new)
        .map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// Reads every `CERTIFICATE` block of a PEM file (leaf first for chains).
///
/// Errors: [`TlsError::Read`], [`TlsError::Pem`], [`TlsError::NoCertificate`] when empty.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let mut rd = open(path)?;
    let certs = rustls_pemfile::certs(&mut rd)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
///
/// Errors: [`TlsError::Read`], [`TlsError::Pem`], [`TlsError::NoPrivateKey`].
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let mut rd = open(path)?;
    rustls_pemfile::private_key(&mut rd)
        .map_err(|source| TlsError::Pem {
            path: path.to_path_buf(),
            source,
        })?
        .ok_or_else(|| TlsError::NoPrivateKey {
            path: path.to_path_buf(),
        })
}

/// Builds a root store from every certificate of a CA PEM file.
///
/// Errors: as [`load_certs`], plus [`TlsError::BadCa`] if a certificate is not a usable anchor.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|source| TlsError::BadCa {
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(roots)
}

/// Server configuration for a TLS listener (TLS 1.3 and 1.2, ring provider).
///
/// `cert_pem` is the server chain (leaf first), `key_pem` its private key. With
/// `client_ca_pem`, every client must present a certificate issued by that CA
/// (`WebPkiClientVerifier`, mutual TLS); without it no client certificate is asked for.
///
/// Errors: any [`TlsError`], naming the offending file.
pub fn server_config(
    cert_pem: &Path,
    key_pem: &Path,
    client_ca_pem: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = load_certs(cert_pem)?;
    let key = load_key(key_pem)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(DEFAULT_VERSIONS)
        .map_err(|source| TlsError::Config {
            path: cert_pem.to_path_buf(),
            source,
        })?;
    let builder = match client_ca_pem {
        Some(ca) => {
            let roots = Arc::new(load_roots(ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| TlsError::Verifier {
                    path: ca.to_path_buf(),
                    reason: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|source| TlsError::Config {
            path: cert_pem.to_path_buf(),
            source,
        })?;
    Ok(Arc::new(config))
}

/// Client configuration trusting the CA in `ca_pem` (TLS 1.3 and 1.2, ring provider).
///
/// `client_cert` is `(certificate chain PEM, private key PEM)` for mutual TLS; `None`
/// sends no client certificate.
///
/// Errors: any [`TlsError`], naming the offending file.
pub fn client_config(
    ca_pem: &Path,
    client_cert: Option<(&Path, &Path)>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    client_config_with_versions(ca_pem, client_cert, DEFAULT_VERSIONS)
}

/// As [`client_config`], restricted to the given protocol versions (e.g.
/// `&[&rustls::version::TLS12]` to test a TLS 1.2-only peer).
///
/// Errors: any [`TlsError`]; [`TlsError::Config`] (naming `ca_pem`) if `versions` is empty.
pub fn client_config_with_versions(
    ca_pem: &Path,
    client_cert: Option<(&Path, &Path)>,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let roots = load_roots(ca_pem)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|source| TlsError::Config {
            path: ca_pem.to_path_buf(),
            source,
        })?
        .with_root_certificates(roots);
    let config = match client_cert {
        Some((cert, key)) => {
            let certs = load_certs(cert)?;
            let key_der = load_key(key)?;
            builder
                .with_client_auth_cert(certs, key_der)
                .map_err(|source| TlsError::Config {
                    path: cert.to_path_buf(),
                    source,
                })?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The identity of the TLS client: the subject common name (CN, OID 2.5.4.3) of its leaf
/// certificate, or `None` if it sent no certificate or the subject has no readable CN.
///
/// The CN is taken from a minimal DER walk of the certificate (no x509 crate); a
/// verified certificate is expected (the verifier ran before this is meaningful).
pub fn peer_identity(conn: &rustls::ServerConnection) -> Option<String> {
    let leaf = conn.peer_certificates()?.first()?;
    common_name(leaf.as_ref())
}

/// Extracts the first subject common name (OID 2.5.4.3) from a DER X.509 certificate.
///
/// Returns `None` for malformed input or a subject without a CN; never panics.
/// Accepted string types: UTF8String, PrintableString, IA5String, TeletexString (as Latin-1),
/// BMPString.
pub fn common_name(cert_der: &[u8]) -> Option<String> {
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
    let (tag, cert, _) = der_tlv(cert_der)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, tbs, _) = der_tlv(cert)?;
    if tag != 0x30 {
        return None;
    }
    let mut rest = tbs;
    // Optional [0] EXPLICIT version.
    let (tag, _, after) = der_tlv(rest)?;
    if tag == 0xA0 {
        rest = after;
    }
    // serialNumber, signature AlgorithmIdentifier, issuer, validity, then subject.
    for _ in 0..4 {
        let (_, _, after) = der_tlv(rest)?;
        rest = after;
    }
    let (tag, subject, _) = der_tlv(rest)?;
    if tag != 0x30 {
        return None;
    }
    // Name ::= SEQUENCE OF RelativeDistinguishedName (SET OF AttributeTypeAndValue).
    let mut rdns = subject;
    while !rdns.is_empty() {
        let (tag, set, after) = der_tlv(rdns)?;
        rdns = after;
        if tag != 0x31 {
            return None;
        }
        let mut atvs = set;
        while !atvs.is_empty() {
            let (tag, atv, after) = der_tlv(atvs)?;
            atvs = after;
            if tag != 0x30 {
                return None;
            }
            let (otag, oid, value) = der_tlv(atv)?;
            if otag != 0x06 {
                return None;
            }
            if oid == [0x55, 0x04, 0x03] {
                let (vtag, v, _) = der_tlv(value)?;
                return decode_der_string(vtag, v);
            }
        }
    }
    None
}

fn decode_der_string(tag: u8, v: &[u8]) -> Option<String> {
    match tag {
        0x0C | 0x13 | 0x16 => std::str::from_utf8(v).ok().map(str::to_owned),
        0x14 => Some(v.iter().map(|&b| char::from(b)).collect()),
        0x1E => {
            if !v.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = v
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// One DER TLV: returns (tag, contents, rest). Single-byte tags, definite lengths only.
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | usize::from(b);
        }
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_walk_rejects_garbage() {
        assert_eq!(common_name(&[]), None);
        assert_eq!(common_name(&[0x30]), None);
        assert_eq!(common_name(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(common_name(&[0x30, 0x03, 0x30, 0x01, 0x00]), None);
    }

    #[test]
    fn missing_files_name_the_path() {
        let err = load_certs(Path::new("/nonexistent/x.pem")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.pem"));
    }
}
