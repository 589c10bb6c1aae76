//! Throwaway development certificates (a CA, a server certificate, two client certificates)
//! for trying the TLS listeners of docs/protocol.md §1–§2 locally. Never use them in production.

use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// CN of the platform client certificate: the demo tenant's enterprise code (docs/protocol.md §4).
pub const PLATFORM_CLIENT_CN: &str = "DEMOPLATFORM00000001";
/// CN of the bank-core client certificate.
pub const CORE_CLIENT_CN: &str = "BANKCORE";

/// Paths of the PEM files written by [`write_dev_certs`] (certificates and PKCS#8 keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevCerts {
    /// The directory everything was written to.
    pub dir: PathBuf,
    /// `ca.pem`: the self-signed CA certificate.
    pub ca_cert: PathBuf,
    /// `ca.key`: the CA private key (mode 0600).
    pub ca_key: PathBuf,
    /// `server.pem`: server certificate for `localhost`, `127.0.0.1`, `::1`.
    pub server_cert: PathBuf,
    /// `server.key` (mode 0600).
    pub server_key: PathBuf,
    /// `client.pem`: platform client certificate, CN `DEMOPLATFORM00000001`.
    pub client_cert: PathBuf,
    /// `client.key` (mode 0600).
    pub client_key: PathBuf,
    /// `core-client.pem`: bank-core client certificate, CN `BANKCORE`.
    pub core_client_cert: PathBuf,
    /// `core-client.key` (mode 0600).
    pub core_client_key: PathBuf,
    /// `other-client.pem`: a second platform client, CN `OTHERPLATFORM0000001`.
    pub other_client_cert: PathBuf,
    /// `other-client.key` (mode 0600).
    pub other_client_key: PathBuf,
    /// `bankfep-tls.toml`: a configuration enabling mutual TLS with these files.
    pub config: PathBuf,
}

impl DevCerts {
    /// Every file written, in writing order, each with what it is (for people, e.g.
    /// `("ca.key", "CA private key")`).
    pub fn files(&self) -> Vec<(&Path, &'static str)> {
        vec![
            (self.ca_cert.as_path(), "CA certificate"),
            (self.ca_key.as_path(), "CA private key"),
            (
                self.server_cert.as_path(),
                "server certificate (localhost, 127.0.0.1, ::1)",
            ),
            (self.server_key.as_path(), "server private key"),
            (
                self.client_cert.as_path(),
                "platform client certificate, CN DEMOPLATFORM00000001",
            ),
            (self.client_key.as_path(), "platform client private key"),
            (
                self.core_client_cert.as_path(),
                "bank-core client certificate, CN BANKCORE",
            ),
            (
                self.core_client_key.as_path(),
                "bank-core client private key",
            ),
            (
                self.other_client_cert.as_path(),
                "other platform client certificate, CN OTHERPLATFORM0000001",
            ),
            (
                self.other_client_key.as_path(),
                "other platform client private key",
            ),
            (
                self.config.as_path(),
                "mutual-TLS configuration for `serve --config`",
            ),
        ]
    }

    fn in_dir(dir: &Path) -> DevCerts {
        DevCerts {
            dir: dir.to_path_buf(),
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca.key"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
            core_client_cert: dir.join("core-client.pem"),
            core_client_key: dir.join("core-client.key"),
            other_client_cert: dir.join("other-client.pem"),
            other_client_key: dir.join("other-client.key"),
            config: dir.join("bankfep-tls.toml"),
        }
    }
}

/// CN of the second platform client certificate: a client of another enterprise, which must
/// be refused (`YQ9985`) when it uses the demo enterprise's code.
pub const OTHER_CLIENT_CN: &str = "OTHERPLATFORM0000001";

/// A configuration file that turns on mutual TLS with these certificates: platform link on
/// 127.0.0.1:7443 (client certificate `DEMOPLATFORM00000001` may use only that enterprise
/// code), core link on 127.0.0.1:7444 (only the `BANKCORE` certificate). The paths in it are
/// file names, relative to the file's own folder (`dir`); the commands in its comments are
/// run from the current directory and name `dir` as given.
fn example_config(dir: &Path) -> String {
    let p = |f: &str| dir.join(f).display().to_string().replace('\\', "/");
    format!(
        "# Written by `bankfep dev-certs`: mutual TLS on both links with throwaway certificates.\n\
         # Paths are relative to this file's folder.\n\
         # cargo run --release -- serve --config {cfg}\n\
         [platform_tls]\naddr = \"127.0.0.1:7443\"\ncert = \"server.pem\"\nkey = \"server.key\"\n\
         client_ca = \"ca.pem\"\n\n\
         [[platform_tls.clients]]\nidentity = \"{demo}\"\nenterprises = [\"{demo}\"]\n\n\
         [[platform_tls.clients]]\nidentity = \"{other}\"\nenterprises = [\"{other}\"]\n\n\
         [core_tls]\naddr = \"127.0.0.1:7444\"\ncert = \"server.pem\"\nkey = \"server.key\"\n\
         client_ca = \"ca.pem\"\n\n\
         [[core_tls.clients]]\nidentity = \"{core}\"\nenterprises = []\n\n\
         # A TLS rail: bankfep rail-sim --addr 127.0.0.1:7445 --tls-cert {server} --tls-key {server_key}\n\
         # [rail]\n# addr = \"127.0.0.1:7445\"\n# tls_ca = \"ca.pem\"\n# tls_server_name = \"localhost\"\n",
        cfg = p("bankfep-tls.toml"),
        server = p("server.pem"),
        server_key = p("server.key"),
        demo = PLATFORM_CLIENT_CN,
        other = OTHER_CLIENT_CN,
        core = CORE_CLIENT_CN,
    )
}

/// Errors writing development certificates.
#[derive(Debug, thiserror::Error)]
pub enum DevCertsError {
    /// A file or the directory could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A file to be written exists already and overwriting was not asked for (`--force`).
    #[error("{path} exists already; not overwriting it (pass --force to replace every file)")]
    Exists {
        /// The first existing file.
        path: PathBuf,
    },
    /// rcgen could not generate a key or certificate.
    #[error("certificate generation failed for {what}: {source}")]
    Generate {
        /// Which certificate was being generated.
        what: &'static str,
        /// rcgen's error.
        source: rcgen::Error,
    },
}

fn gen_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> DevCertsError {
    move |source| DevCertsError::Generate { what, source }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "bankfep development");
    dn.push(DnType::CommonName, cn);
    dn
}

fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), DevCertsError> {
    let io = |source| DevCertsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io)?;
    #[cfg(unix)]
    if secret {
        // The mode above only applies to new files; tighten an existing one too.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    f.write_all(contents.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

/// As [`write_dev_certs_with`] without overwriting: refuses when any of the files exists.
///
/// Errors: as [`write_dev_certs_with`].
pub fn write_dev_certs(dir: &Path) -> Result<DevCerts, DevCertsError> {
    write_dev_certs_with(dir, false)
}

/// Generates a throwaway CA and four certificates signed by it into `dir` (created if
/// missing): `ca.pem`/`ca.key`, `server.pem`/`server.key` (SANs `localhost`, `127.0.0.1`,
/// `::1`), `client.pem`/`client.key` (CN `DEMOPLATFORM00000001`),
/// `core-client.pem`/`core-client.key` (CN `BANKCORE`), `other-client.pem`/`other-client.key`
/// (CN `OTHERPLATFORM0000001`) and `bankfep-tls.toml`. Keys are ECDSA P-256 PKCS#8, written
/// with mode 0600 (Unix). Prints nothing; [`DevCerts::files`] lists what was written.
///
/// When any of these files exists and `force` is false, nothing is written.
///
/// Errors: [`DevCertsError::Exists`] naming the first existing file (without `force`),
/// [`DevCertsError::Io`] naming the path, [`DevCertsError::Generate`].
pub fn write_dev_certs_with(dir: &Path, force: bool) -> Result<DevCerts, DevCertsError> {
    let out = DevCerts::in_dir(dir);
    if !force {
        if let Some((path, _)) = out
            .files()
            .into_iter()
            .find(|(p, _)| std::fs::symlink_metadata(p).is_ok())
        {
            return Err(DevCertsError::Exists {
                path: path.to_path_buf(),
            });
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| DevCertsError::Io {
        path: dir.to_path_buf(),
        source,
    })?;

    let ca_key = KeyPair::generate().map_err(gen_err("CA key"))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err("CA"))?;
    ca_params.distinguished_name = dn("bankfep development CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).map_err(gen_err("CA"))?;

    let leaf = |what: &'static str,
                cn: &str,
                sans: Vec<String>,
                eku: ExtendedKeyUsagePurpose|
     -> Result<(String, String), DevCertsError> {
        let key = KeyPair::generate().map_err(gen_err(what))?;
        let mut params = CertificateParams::new(sans).map_err(gen_err(what))?;
        params.distinguished_name = dn(cn);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![eku];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &ca, &ca_key)
            .map_err(gen_err(what))?;
        Ok((cert.pem(), key.serialize_pem()))
    };

    let (server_pem, server_key) = leaf(
        "server",
        "localhost",
        vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    let (client_pem, client_key) = leaf(
        "platform client",
        PLATFORM_CLIENT_CN,
        Vec::new(),
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    let (core_pem, core_key) = leaf(
        "core client",
        CORE_CLIENT_CN,
        Vec::new(),
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;

    let (other_pem, other_key) = leaf(
        "other platform client",
        OTHER_CLIENT_CN,
        Vec::new(),
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;

    write_file(&out.ca_cert, &ca.pem(), false)?;
    write_file(&out.ca_key, &ca_key.serialize_pem(), true)?;
    write_file(&out.server_cert, &server_pem, false)?;
    write_file(&out.server_key, &server_key, true)?;
    write_file(&out.client_cert, &client_pem, false)?;
    write_file(&out.client_key, &client_key, true)?;
    write_file(&out.core_client_cert, &core_pem, false)?;
    write_file(&out.core_client_key, &core_key, true)?;
    write_file(&out.other_client_cert, &other_pem, false)?;
    write_file(&out.other_client_key, &other_key, true)?;
    write_file(&out.config, &example_config(dir), false)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    fn temp_dir(tag: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        std::env::temp_dir().join(format!(
            "bankfep-devcerts-{tag}-{}-{nanos}",
            std::process::id()
        ))
    }

    /// Accepts TLS connections; echoes 5 bytes back prefixed by the client's CN (or "-").
    async fn start_server(cfg: Arc<rustls::ServerConfig>) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(sock).await else {
                        return;
                    };
                    let cn = tls::peer_identity(tls.get_ref().1).unwrap_or_else(|| "-".into());
                    let mut buf = [0u8; 5];
                    if tls.read_exact(&mut buf).await.is_ok() {
                        let mut reply = cn.into_bytes();
                        reply.push(b':');
                        reply.extend_from_slice(&buf);
                        let _ = tls.write_all(&reply).await;
                        let _ = tls.flush().await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        addr
    }

    async fn exchange(
        addr: std::net::SocketAddr,
        cfg: Arc<rustls::ClientConfig>,
    ) -> std::io::Result<(Vec<u8>, rustls::ProtocolVersion)> {
        let connector = tokio_rustls::TlsConnector::from(cfg);
        let sock = TcpStream::connect(addr).await?;
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, sock).await?;
        let version = tls.get_ref().1.protocol_version().unwrap();
        tls.write_all(b"hello").await?;
        tls.flush().await?;
        let mut out = Vec::new();
        tls.read_to_end(&mut out).await?;
        Ok((out, version))
    }

    #[tokio::test]
    async fn mutual_tls_roundtrip_and_refusal() {
        let dir = temp_dir("mtls");
        let certs = write_dev_certs(&dir).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for k in [
                &certs.ca_key,
                &certs.server_key,
                &certs.client_key,
                &certs.core_client_key,
            ] {
                let mode = std::fs::metadata(k).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{}", k.display());
            }
        }
        let server =
            tls::server_config(&certs.server_cert, &certs.server_key, Some(&certs.ca_cert))
                .unwrap();
        let addr = start_server(server).await;
        let t = Duration::from_secs(10);

        // TLS 1.3 with the platform client certificate.
        let c13 = tls::client_config(
            &certs.ca_cert,
            Some((&certs.client_cert, &certs.client_key)),
        )
        .unwrap();
        let (out, v) = tokio::time::timeout(t, exchange(addr, c13))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v, rustls::ProtocolVersion::TLSv1_3);
        assert_eq!(out, b"DEMOPLATFORM00000001:hello");

        // TLS 1.2 only, with the core client certificate.
        let c12 = tls::client_config_with_versions(
            &certs.ca_cert,
            Some((&certs.core_client_cert, &certs.core_client_key)),
            &[&rustls::version::TLS12],
        )
        .unwrap();
        let (out, v) = tokio::time::timeout(t, exchange(addr, c12))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v, rustls::ProtocolVersion::TLSv1_2);
        assert_eq!(out, b"BANKCORE:hello");

        // No client certificate: refused (under TLS 1.3 at the first read).
        let anon = tls::client_config(&certs.ca_cert, None).unwrap();
        let res = tokio::time::timeout(t, exchange(addr, anon)).await.unwrap();
        assert!(res.is_err(), "client without certificate was accepted");

        // Without client auth configured, an anonymous client is served.
        let open = tls::server_config(&certs.server_cert, &certs.server_key, None).unwrap();
        let addr2 = start_server(open).await;
        let anon = tls::client_config(&certs.ca_cert, None).unwrap();
        let (out, _) = tokio::time::timeout(t, exchange(addr2, anon))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out, b"-:hello");

        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn platform_and_core_clients_over_mutual_tls() {
        use crate::client::{self, CoreClient, Notice, PlatformClient};
        let dir = temp_dir("clients");
        let certs = write_dev_certs(&dir).unwrap();
        let server =
            tls::server_config(&certs.server_cert, &certs.server_key, Some(&certs.ca_cert))
                .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        tokio::spawn(async move {
            // First connection speaks A001, second the core link.
            let (sock, _) = listener.accept().await.unwrap();
            let mut s = acceptor.accept(sock).await.unwrap();
            let cn = tls::peer_identity(s.get_ref().1).unwrap();
            for _ in 0..2 {
                let req = client::read_platform_frame(&mut s, 5000).await.unwrap();
                let mut h = req.header.clone();
                let body = format!("<Result><CN>{cn}</CN></Result>");
                h[30..40].copy_from_slice(format!("{:010}", body.len()).as_bytes());
                h[87..93].copy_from_slice(b"000000");
                h.extend_from_slice(body.as_bytes());
                s.write_all(&h).await.unwrap();
                s.flush().await.unwrap();
            }
            let (sock, _) = listener.accept().await.unwrap();
            let mut s = acceptor.accept(sock).await.unwrap();
            let cn = tls::peer_identity(s.get_ref().1).unwrap();
            let rec = client::read_prefixed_record(&mut s, 5000).await.unwrap();
            let mut reply = b"000001006920".to_vec();
            reply.extend_from_slice(&rec[4..36]);
            reply.extend_from_slice(b"0000");
            reply.extend_from_slice(format!("{cn:<60}").as_bytes());
            s.write_all(&reply).await.unwrap();
            s.flush().await.unwrap();
        });

        let cfg = tls::client_config(
            &certs.ca_cert,
            Some((&certs.client_cert, &certs.client_key)),
        )
        .unwrap();
        let mut c = PlatformClient::connect(&addr, Some((cfg, "localhost")), 5000)
            .await
            .unwrap();
        for serial in ["T1", "T2"] {
            let r = c
                .call(PLATFORM_CLIENT_CN, "6010", serial, &[])
                .await
                .unwrap();
            assert_eq!(r.return_code(), "000000");
            assert_eq!(r.serial(), serial);
            assert_eq!(r.field("CN").as_deref(), Some(PLATFORM_CLIENT_CN));
        }

        let cfg = tls::client_config(
            &certs.ca_cert,
            Some((&certs.core_client_cert, &certs.core_client_key)),
        )
        .unwrap();
        let mut core = CoreClient::connect(&addr, Some((cfg, "127.0.0.1")), 5000)
            .await
            .unwrap();
        let reply = core
            .notify(&Notice {
                bank_serial: "CORE0001".into(),
                channel: "INTR".into(),
                acct_date: "20260101".into(),
                time: "120000".into(),
                payee: "6222000000000000001".into(),
                amount_fen: 1,
                payer_acct: "6228".into(),
                payer_name: "张三".into(),
                payer_bank: String::new(),
                memo: String::new(),
            })
            .await
            .unwrap();
        assert_eq!(reply.bank_serial, "CORE0001");
        assert_eq!(reply.result, "0000");
        assert_eq!(reply.message, CORE_CLIENT_CN);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn common_name_parsed_from_generated_certs() {
        let dir = temp_dir("cn");
        let certs = write_dev_certs(&dir).unwrap();
        let client = tls::load_certs(&certs.client_cert).unwrap();
        assert_eq!(
            tls::common_name(client[0].as_ref()).as_deref(),
            Some(PLATFORM_CLIENT_CN)
        );
        let core = tls::load_certs(&certs.core_client_cert).unwrap();
        assert_eq!(
            tls::common_name(core[0].as_ref()).as_deref(),
            Some(CORE_CLIENT_CN)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_written_tls_config_loads_and_maps_certificates() {
        let dir = temp_dir("config");
        let certs = write_dev_certs(&dir).expect("dev certs");
        let cfg = crate::config::Config::from_file(&certs.config).expect("config parses");
        let p = cfg.platform_tls.expect("platform tls");
        assert_eq!(p.client_ca.as_deref(), Some(certs.ca_cert.as_path()));
        assert_eq!(p.clients.len(), 2);
        assert_eq!(p.clients[0].identity, PLATFORM_CLIENT_CN);
        assert_eq!(
            p.clients[0].enterprises,
            vec![PLATFORM_CLIENT_CN.to_string()]
        );
        let c = cfg.core_tls.expect("core tls");
        assert_eq!(c.clients.len(), 1);
        assert_eq!(c.clients[0].identity, CORE_CLIENT_CN);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn existing_files_are_kept_unless_forced() {
        let dir = temp_dir("force");
        let first = write_dev_certs(&dir).expect("fresh folder");
        let ca_before = std::fs::read(&first.ca_key).expect("ca.key");

        // A second run refuses, names the first existing file and changes nothing.
        let err = write_dev_certs(&dir).expect_err("existing files refused");
        assert!(
            matches!(&err, DevCertsError::Exists { path } if *path == first.ca_cert),
            "{err}"
        );
        assert!(err
            .to_string()
            .contains(&first.ca_cert.display().to_string()));
        assert!(err.to_string().contains("--force"));
        assert_eq!(std::fs::read(&first.ca_key).expect("ca.key"), ca_before);

        // Any single existing target file is enough to refuse.
        let lone = temp_dir("force-lone");
        std::fs::create_dir_all(&lone).expect("dir");
        std::fs::write(lone.join("core-client.key"), "mine").expect("write");
        let err = write_dev_certs(&lone).expect_err("refused");
        assert!(err.to_string().contains("core-client.key"), "{err}");
        assert_eq!(
            std::fs::read_dir(&lone).expect("list").count(),
            1,
            "nothing else written"
        );
        let _ = std::fs::remove_dir_all(&lone);

        // With force, every file is replaced; keys stay private.
        let second = write_dev_certs_with(&dir, true).expect("forced");
        assert_ne!(std::fs::read(&second.ca_key).expect("ca.key"), ca_before);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let keys: Vec<_> = second
                .files()
                .into_iter()
                .filter(|(_, what)| what.contains("private key"))
                .collect();
            assert_eq!(keys.len(), 5);
            for (path, _) in keys {
                let mode = std::fs::metadata(path)
                    .expect("written")
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{}", path.display());
            }
        }
        assert_eq!(second.files().len(), 11);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_written_config_uses_paths_relative_to_its_folder() {
        let dir = temp_dir("relative");
        let certs = write_dev_certs(&dir).expect("dev certs");
        let text = std::fs::read_to_string(&certs.config).expect("config");
        assert!(text.contains("cert = \"server.pem\""), "{text}");
        assert!(
            !text.contains(&format!("cert = \"{}", dir.display())),
            "{text}"
        );
        // Moving the folder keeps the configuration working.
        let moved = temp_dir("relative-moved");
        std::fs::rename(&dir, &moved).expect("move");
        let cfg = crate::config::Config::from_file(&moved.join("bankfep-tls.toml"))
            .expect("config parses");
        let p = cfg.platform_tls.expect("platform tls");
        assert_eq!(p.cert, moved.join("server.pem"));
        assert!(tls::server_config(&p.cert, &p.key, p.client_ca.as_deref()).is_ok());
        let _ = std::fs::remove_dir_all(&moved);
    }
}
