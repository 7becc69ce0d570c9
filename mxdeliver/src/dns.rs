//! MX and address resolution with hickory (SPEC §6.12).
//!
//! Classifies the MX answer into what the transport replies: hosts to try, null MX (RFC 7505),
//! NXDOMAIN, or a temporary failure. Every lookup is bounded by a timeout so a silent resolver
//! yields a temporary `421` long before Postfix gives up on the LMTP session.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, NameServerConfigGroup, ProtocolConfig, ResolveHosts,
    ResolverConfig,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::{Name, TokioResolver};

use crate::error::Error;

/// At most this many MX hosts are tried for one domain.
const MAX_MX_HOSTS: usize = 10;

/// The outcome of an MX lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxAnswer {
    /// Host names to try, in preference order (the domain itself for an implicit MX).
    Hosts(Vec<String>),
    /// RFC 7505 null MX: the domain receives no mail.
    NullMx,
    /// The domain does not exist.
    NxDomain,
    /// SERVFAIL, timeout, network error: try again later.
    TempFail,
}

/// The resolver used for MX lookups, SMTP addresses and HTTPS connections.
#[derive(Debug, Clone)]
pub struct Dns {
    resolver: Arc<TokioResolver>,
    timeout: Duration,
}

impl Dns {
    /// The system resolver from `/etc/resolv.conf`.
    pub fn system(timeout: Duration) -> Result<Self, Error> {
        let mut builder = TokioResolver::builder_tokio().map_err(Error::ResolverConfig)?;
        builder.options_mut().ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        Ok(Dns {
            resolver: Arc::new(builder.build()),
            timeout,
        })
    }

    /// A resolver asking only `server` over UDP (tests run their own DNS server on loopback).
    pub fn with_server(server: SocketAddr, timeout: Duration) -> Self {
        let mut config =
            ResolverConfig::from_parts(None, vec![], NameServerConfigGroup::with_capacity(1));
        let mut ns = NameServerConfig::new(server, ProtocolConfig::Udp);
        ns.trust_negative_responses = true;
        config.add_name_server(ns);
        let mut builder =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default());
        let opts = builder.options_mut();
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.cache_size = 0;
        Dns {
            resolver: Arc::new(builder.build()),
            timeout,
        }
    }

    /// Looks up the MX records of `domain` (a name without trailing dot).
    pub async fn mx(&self, domain: &str) -> MxAnswer {
        let Ok(name) = Name::from_utf8(format!("{domain}.")) else {
            return MxAnswer::NxDomain;
        };
        let lookup =
            tokio::time::timeout(self.timeout, self.resolver.mx_lookup(name.clone())).await;
        match lookup {
            Err(_elapsed) => {
                tracing::warn!(domain, "MX lookup timed out");
                MxAnswer::TempFail
            }
            Ok(Ok(answer)) => {
                let mut records: Vec<(u16, Name)> = answer
                    .iter()
                    .map(|mx| (mx.preference(), mx.exchange().clone()))
                    .collect();
                classify_mx(&mut records, &name)
            }
            Ok(Err(e)) => match e.kind() {
                ProtoErrorKind::NoRecordsFound(nr)
                    if nr.response_code == ResponseCode::NXDomain =>
                {
                    MxAnswer::NxDomain
                }
                ProtoErrorKind::NoRecordsFound(nr) if nr.response_code == ResponseCode::NoError => {
                    MxAnswer::Hosts(vec![host_name(&name)])
                }
                _ => {
                    tracing::warn!(domain, error = %e, "MX lookup failed");
                    MxAnswer::TempFail
                }
            },
        }
    }

    /// All IPv4 and IPv6 addresses of `host`.
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        let name = Name::from_utf8(format!("{}.", host.trim_end_matches('.')))
            .map_err(|e| format!("invalid host name: {e}"))?;
        match tokio::time::timeout(self.timeout, self.resolver.lookup_ip(name)).await {
            Err(_) => Err("address lookup timed out".to_owned()),
            Ok(Err(e)) => Err(format!("address lookup failed: {e}")),
            Ok(Ok(ips)) => {
                let ips: Vec<IpAddr> = ips.iter().collect();
                if ips.is_empty() {
                    Err("host has no address".to_owned())
                } else {
                    Ok(ips)
                }
            }
        }
    }
}

/// Sorts by preference and drops the root name; a lone root exchange is a null MX.
fn classify_mx(records: &mut [(u16, Name)], domain: &Name) -> MxAnswer {
    records.sort_by_key(|(pref, _)| *pref);
    let hosts: Vec<String> = records
        .iter()
        .filter(|(_, n)| !n.is_root())
        .map(|(_, n)| host_name(n))
        .take(MAX_MX_HOSTS)
        .collect();
    if hosts.is_empty() {
        if records.is_empty() {
            MxAnswer::Hosts(vec![host_name(domain)])
        } else {
            MxAnswer::NullMx
        }
    } else {
        MxAnswer::Hosts(hosts)
    }
}

/// The ASCII (punycode) name without the trailing dot, as used for TLS and URLs.
fn host_name(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

/// Lets reqwest resolve MX host names through the same resolver (and, in tests, the same
/// loopback DNS server) as SMTP.
#[derive(Debug)]
pub struct HttpResolver(pub Dns);

impl reqwest::dns::Resolve for HttpResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let dns = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let ips = dns.addresses(&host).await.map_err(std::io::Error::other)?;
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn mx_classification() {
        let d = n("example.org.");
        assert_eq!(
            classify_mx(&mut [], &d),
            MxAnswer::Hosts(vec!["example.org".into()])
        );
        assert_eq!(classify_mx(&mut [(0, Name::root())], &d), MxAnswer::NullMx);
        assert_eq!(
            classify_mx(
                &mut [(20, n("b.example.org.")), (10, n("A.example.org."))],
                &d
            ),
            MxAnswer::Hosts(vec!["a.example.org".into(), "b.example.org".into()])
        );
    }
}
