//! TLS client configurations for SMTP `STARTTLS` and HTTPS `/mxdeliv`.
//!
//! Certificates are verified against the system trust store plus any extra anchors the caller
//! configures (tests add their own CA here, so verification is never switched off to test it).
//! Only the destinations SPEC §6.12 names — domain literals and `_`-domains, which cannot hold a
//! publicly trusted certificate — use the configuration that accepts any certificate.

use std::sync::Arc;

use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::error::Error;

/// Whether a destination's certificate is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertPolicy {
    /// Verify the chain and the host name.
    Verify,
    /// Accept any certificate (domain literals and `_`-domains only).
    AcceptInvalid,
}

/// The four client configurations: {SMTP, HTTPS} × {verified, any certificate}.
#[derive(Debug, Clone)]
pub struct TlsConfigs {
    smtp_verified: Arc<ClientConfig>,
    smtp_any: Arc<ClientConfig>,
    /// HTTPS client configuration with verification (HTTP/1.1 ALPN).
    pub https_verified: ClientConfig,
    /// HTTPS client configuration accepting any certificate.
    pub https_any: ClientConfig,
}

impl TlsConfigs {
    /// Builds the configurations from the system store (if `system_roots`) and `extra` anchors.
    pub fn new(system_roots: bool, extra: &[CertificateDer<'static>]) -> Result<Self, Error> {
        let mut roots = RootCertStore::empty();
        if system_roots {
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                tracing::warn!(error = %e, "loading system trust anchors");
            }
            roots.add_parsable_certificates(native.certs);
        }
        roots.add_parsable_certificates(extra.iter().cloned());
        if roots.is_empty() {
            return Err(Error::NoTrustAnchors);
        }
        let provider = Arc::new(ring::default_provider());
        let verified = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(Error::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let any = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(Error::Tls)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth();
        let http = |c: &ClientConfig| {
            let mut c = c.clone();
            c.alpn_protocols = vec![b"http/1.1".to_vec()];
            c
        };
        Ok(TlsConfigs {
            https_verified: http(&verified),
            https_any: http(&any),
            smtp_verified: Arc::new(verified),
            smtp_any: Arc::new(any),
        })
    }

    /// The SMTP `STARTTLS` configuration for a policy.
    pub fn smtp(&self, policy: CertPolicy) -> Arc<ClientConfig> {
        match policy {
            CertPolicy::Verify => self.smtp_verified.clone(),
            CertPolicy::AcceptInvalid => self.smtp_any.clone(),
        }
    }
}

/// Accepts any certificate but still checks the handshake signatures, so the session is at least
/// encrypted to whoever holds the presented key.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
