//! Values derived from the keys (SPEC §1.3): the domain forms, the TLS certificate mode,
//! the iroh relay; and the password scheme, one of a fixed list.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::value::{Reader, cfg_err, parse_strict_ipv4};
use super::{PasswordScheme, TlsCertMode};
use crate::error::{ConfigProblem as Problem, Error};

/// The forms of `mail_domain`.
pub(super) struct Domain {
    /// As configured.
    pub bare: String,
    /// `[1.2.3.4]` on IPv4 relays, else the configured name.
    pub mail_domain: String,
    /// The relay's address when `mail_domain` is a strict IPv4 address.
    pub ipv4_relay: Option<Ipv4Addr>,
    /// The reverse-pointer name on IPv4 relays, else the configured name.
    pub postfix_myhostname: String,
}

impl Domain {
    /// Reads the required, non-empty `mail_domain`.
    pub fn read(p: &mut Reader<'_>) -> Result<Domain, Error> {
        let (line, bare) = p
            .get("mail_domain")
            .ok_or_else(|| cfg_err(0, "mail_domain", Problem::MissingKey))?;
        if bare.is_empty() {
            return Err(cfg_err(line, "mail_domain", Problem::Empty));
        }
        let bare = bare.to_owned();
        let ipv4_relay = parse_strict_ipv4(&bare);
        let (mail_domain, postfix_myhostname) = match ipv4_relay {
            Some(ip) => {
                let o = ip.octets();
                (
                    format!("[{bare}]"),
                    format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0]),
                )
            }
            None => (bare.clone(), bare.clone()),
        };
        Ok(Domain {
            bare,
            mail_domain,
            ipv4_relay,
            postfix_myhostname,
        })
    }
}

/// The TLS certificate mode with the paths it implies.
pub(super) struct Tls {
    pub mode: TlsCertMode,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Tls {
    /// `tls_external_cert_and_key`, else self-signed for `_`-domains and IPv4 relays, else ACME.
    pub fn read(p: &mut Reader<'_>, domain: &Domain) -> Result<Tls, Error> {
        let external = p.string("tls_external_cert_and_key", "");
        if !external.is_empty() {
            let parts: Vec<&str> = external.split_whitespace().collect();
            let [cert, key] = parts.as_slice() else {
                return Err(cfg_err(
                    p.line("tls_external_cert_and_key"),
                    "tls_external_cert_and_key",
                    Problem::TlsPaths,
                ));
            };
            let (cert, key) = (PathBuf::from(cert), PathBuf::from(key));
            let mode = TlsCertMode::External {
                cert: cert.clone(),
                key: key.clone(),
            };
            return Ok(Tls { mode, cert, key });
        }
        let bare = &domain.bare;
        Ok(if bare.starts_with('_') || domain.ipv4_relay.is_some() {
            Tls {
                mode: TlsCertMode::SelfSigned,
                cert: "/etc/ssl/certs/mailserver.pem".into(),
                key: "/etc/ssl/private/mailserver.key".into(),
            }
        } else {
            Tls {
                mode: TlsCertMode::Acme,
                cert: format!("/var/lib/acme/live/{bare}/fullchain").into(),
                key: format!("/var/lib/acme/live/{bare}/privkey").into(),
            }
        })
    }
}

/// `iroh_relay` and whether the relay runs its own: absent means our own at the domain.
pub(super) fn iroh_relay(p: &mut Reader<'_>, domain: &Domain) -> (String, bool) {
    match p.get("iroh_relay") {
        None => (format!("https://{}", domain.bare), true),
        Some((_, v)) => (v.to_owned(), false),
    }
}

/// `password_scheme`, case-insensitive.
pub(super) fn password_scheme(p: &mut Reader<'_>) -> Result<PasswordScheme, Error> {
    match p
        .string("password_scheme", "sha512-crypt")
        .to_ascii_lowercase()
        .as_str()
    {
        "sha512-crypt" => Ok(PasswordScheme::Sha512Crypt),
        "argon2id" => Ok(PasswordScheme::Argon2id),
        other => Err(cfg_err(
            p.line("password_scheme"),
            "password_scheme",
            Problem::NotOneOf {
                value: other.to_owned(),
                allowed: "sha512-crypt, argon2id",
            },
        )),
    }
}
