//! Notifications over HTTPS: certificates are verified against the trust store named by
//! `SSL_CERT_FILE` (as OpenSSL does), so a private CA works without code changes and an
//! unknown one is refused.
// Test helpers outside #[test] functions: a failed step should panic with its cause.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A test CA and a server certificate for 127.0.0.1 signed by it, made with openssl.
fn make_certs(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=test CA",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

/// An HTTPS notification server with the certificate from `make_certs`.
async fn tls_server(dir: &Path) -> (String, mpsc::UnboundedReceiver<Received>) {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("srv.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("srv.key")).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/notify", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    let respond: Responder = Arc::new(|_: &str| 200);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, tx, respond) = (acceptor.clone(), tx.clone(), respond.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    serve_http(tls, respond, tx).await;
                }
            });
        }
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_private_ca_from_ssl_cert_file() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let (url, mut rx) = tls_server(certs.path()).await;

    // Trusted through SSL_CERT_FILE: delivered.
    let mut s = Service::new(&url, "");
    s.extra_env.push((
        "SSL_CERT_FILE".into(),
        certs.path().join("ca.pem").display().to_string(),
    ));
    s.start();
    s.set_token(USER, "tls-token").await;
    s.message_new(USER).await;
    assert_eq!(next(&mut rx).await.token, "tls-token");
    wait_until(|| s.queue_files().is_empty(), "empty queue", || s.log());

    // Not trusted (system store only): refused before any request is sent.
    let mut s = Service::new(&url, "");
    s.start();
    s.set_token(USER, "untrusted").await;
    s.message_new(USER).await;
    s.wait_log("Notification request failed");
    assert!(
        s.log().to_lowercase().contains("certificate"),
        "{}",
        s.log()
    );
    assert!(rx.try_recv().is_err(), "no request reached the server");
    assert_eq!(s.queue_files().len(), 1, "kept for a retry");
}
