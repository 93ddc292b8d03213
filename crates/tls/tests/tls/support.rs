//! Test certificates (rcgen), a server on loopback, and TLS clients.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use nexus_tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use nexus_tls::rustls::{self, ClientConfig, RootCertStore, SupportedProtocolVersion};
use nexus_tls::{
    ClientAuth, HandshakeLimits, MinVersion, ServerTls, TlsListener, TlsPeer, TlsSettings,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// An error with its chain of causes, `: `-separated (hyper's own message leaves them out).
pub type Error = String;

fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A certificate authority.
pub struct Ca(CertifiedIssuer<'static, KeyPair>);

/// A certificate and its key.
pub struct Leaf {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Self(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.0.der().clone()
    }

    pub fn pem(&self) -> String {
        self.0.pem()
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server(&self, name: &str) -> Leaf {
        self.issue(name, ExtendedKeyUsagePurpose::ServerAuth, None)
    }

    /// A client certificate.
    pub fn client(&self, name: &str) -> Leaf {
        self.issue(name, ExtendedKeyUsagePurpose::ClientAuth, None)
    }

    /// A client certificate naming `uri` in its subjectAltName (a workload's SPIFFE id).
    pub fn workload(&self, name: &str, uri: &str) -> Leaf {
        self.issue(name, ExtendedKeyUsagePurpose::ClientAuth, Some(uri))
    }

    fn issue(&self, name: &str, usage: ExtendedKeyUsagePurpose, uri: Option<&str>) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        if let Some(uri) = uri {
            params
                .subject_alt_names
                .push(rcgen::SanType::URI(uri.try_into().unwrap()));
        }
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &*self.0).unwrap();
        Leaf { cert, key }
    }
}

impl Leaf {
    pub fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }

    /// Writes `cert.pem` and `key.pem` into `dir`, each replaced by a rename (as certificate
    /// tools do), and returns their paths.
    pub fn write(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        write_atomic(&cert, &self.cert.pem());
        write_atomic(&key, &self.key.serialize_pem());
        (cert, key)
    }
}

/// Replaces `path` with `contents` through a rename.
pub fn write_atomic(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Settings serving `leaf` from files in `dir`, TLS 1.3 only, no client certificates.
pub fn settings(dir: &Path, leaf: &Leaf) -> TlsSettings {
    let (cert, key) = leaf.write(dir);
    TlsSettings {
        cert,
        key,
        client_auth: ClientAuth::None,
        min_version: MinVersion::Tls13,
    }
}

/// A server answering `GET /healthz` with `ok` (followed by the URIs the client's certificate
/// names, if any, as the listener passes them on), over TLS, on a free loopback port.
pub async fn serve(settings: TlsSettings, limits: HandshakeLimits) -> (Arc<ServerTls>, SocketAddr) {
    let tls = Arc::new(ServerTls::load(settings).unwrap());
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener = TlsListener::with_limits(tcp, tls.clone(), limits).unwrap();
    let addr = axum::serve::Listener::local_addr(&listener).unwrap().addr;
    let healthz = |ConnectInfo(peer): ConnectInfo<TlsPeer>| async move {
        std::iter::once("ok")
            .chain(peer.client_uris.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let app = axum::Router::new().route("/healthz", axum::routing::get(healthz));
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<TlsPeer>(),
        )
        .await
    });
    (tls, addr)
}

/// A client trusting `roots`, speaking `versions`, presenting `identity` if given.
pub fn client(
    roots: &[CertificateDer<'static>],
    versions: &[&'static SupportedProtocolVersion],
    identity: Option<&Leaf>,
) -> TlsConnector {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).unwrap();
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(store);
    let mut config = match identity {
        Some(leaf) => builder
            .with_client_auth_cert(vec![leaf.der()], leaf.key_der())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// A TLS 1.3 client trusting `roots`.
pub fn client13(roots: &[CertificateDer<'static>]) -> TlsConnector {
    client(roots, &[&rustls::version::TLS13], None)
}

/// Connects and completes the handshake.
pub async fn connect(
    connector: &TlsConnector,
    addr: SocketAddr,
) -> Result<TlsStream<TcpStream>, Error> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| describe(&e))?;
    let name = ServerName::try_from("localhost").map_err(|e| describe(&e))?;
    connector.connect(name, tcp).await.map_err(|e| describe(&e))
}

/// The certificate the server presented on `stream`.
pub fn peer_certificate(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// An HTTP/1.1 connection over `stream`, kept open for more requests.
pub async fn http(
    stream: TlsStream<TcpStream>,
) -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>, Error> {
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| describe(&e))?;
    tokio::spawn(connection);
    Ok(sender)
}

/// `GET /healthz` on an open connection; the body.
pub async fn healthz(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
) -> Result<String, Error> {
    let request = hyper::Request::get("/healthz")
        .header(hyper::header::HOST, "localhost")
        .body(Empty::new())
        .map_err(|e| describe(&e))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| describe(&e))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| describe(&e))?
        .to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    if !status.is_success() {
        return Err(format!("{status}: {body}"));
    }
    Ok(body)
}

/// Connects, handshakes and asks for `/healthz` on a new connection.
pub async fn get_healthz(connector: &TlsConnector, addr: SocketAddr) -> Result<String, Error> {
    let stream = connect(connector, addr).await?;
    healthz(&mut http(stream).await?).await
}
