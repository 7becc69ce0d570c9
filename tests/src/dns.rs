//! A fake authoritative DNS server on 127.0.0.1 (UDP) answering from a [`Zone`]: the DNS of
//! remote domains for filtermail's DKIM tests (TXT keys) and mxdeliver's delivery tests (MX,
//! A, AAAA, failures and silence).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, MX, TXT};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;

/// The records of the fake DNS; names are lower-case without the trailing dot. A name with
/// no entry gets NXDOMAIN; a name with entries of other types gets an empty NOERROR answer.
#[derive(Debug, Default, Clone)]
pub struct Zone {
    /// MX records: (preference, exchange); exchange `.` is the null MX.
    pub mx: HashMap<String, Vec<(u16, String)>>,
    /// A and AAAA records.
    pub addrs: HashMap<String, Vec<IpAddr>>,
    /// One TXT record each (split into 255-byte strings).
    pub txt: HashMap<String, String>,
    /// Names that exist without records (NOERROR, empty answer).
    pub empty: HashSet<String>,
    /// Names for which the server never answers.
    pub silent: HashSet<String>,
    /// Names answered with SERVFAIL.
    pub servfail: HashSet<String>,
}

impl Zone {
    /// Adds MX records for `domain`.
    pub fn mx(mut self, domain: &str, records: &[(u16, &str)]) -> Self {
        self.mx.insert(
            domain.into(),
            records.iter().map(|(p, h)| (*p, h.to_string())).collect(),
        );
        self
    }

    /// Adds an A or AAAA record for `host`.
    pub fn addr(mut self, host: &str, ip: &str) -> Self {
        self.addrs
            .entry(host.into())
            .or_default()
            .push(ip.parse().unwrap());
        self
    }

    /// Sets the TXT record of `name`.
    pub fn txt(mut self, name: &str, text: &str) -> Self {
        self.txt.insert(name.into(), text.into());
        self
    }

    /// Answers `name` with SERVFAIL.
    pub fn servfail(mut self, name: &str) -> Self {
        self.servfail.insert(name.into());
        self
    }

    /// Never answers `name`.
    pub fn silent(mut self, name: &str) -> Self {
        self.silent.insert(name.into());
        self
    }

    fn exists(&self, name: &str) -> bool {
        self.mx.contains_key(name)
            || self.addrs.contains_key(name)
            || self.txt.contains_key(name)
            || self.empty.contains(name)
    }

    /// The response to `query`; `None` for a silent name.
    fn answer(&self, query: &Message) -> Option<Message> {
        let q = query.queries().first()?;
        let name = q
            .name()
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if self.silent.contains(&name) {
            return None;
        }
        let mut resp = Message::new(query.id(), MessageType::Response, query.op_code());
        resp.add_query(q.clone());
        resp.set_recursion_desired(true)
            .set_recursion_available(true)
            .set_authoritative(true);
        if self.servfail.contains(&name) {
            resp.set_response_code(ResponseCode::ServFail);
            return Some(resp);
        }
        if !self.exists(&name) {
            resp.set_response_code(ResponseCode::NXDomain);
            return Some(resp);
        }
        let owner = q.name().clone();
        for rdata in self.records(&name, q.query_type()) {
            resp.add_answer(Record::from_rdata(owner.clone(), 60, rdata));
        }
        Some(resp)
    }

    /// The records of `name` of type `qtype`.
    fn records(&self, name: &str, qtype: RecordType) -> Vec<RData> {
        match qtype {
            RecordType::MX => self
                .mx
                .get(name)
                .into_iter()
                .flatten()
                .map(|(pref, host)| {
                    let exchange = if host == "." {
                        Name::root()
                    } else {
                        Name::from_ascii(format!("{host}.")).unwrap()
                    };
                    RData::MX(MX::new(*pref, exchange))
                })
                .collect(),
            RecordType::A | RecordType::AAAA => self
                .addrs
                .get(name)
                .into_iter()
                .flatten()
                .filter_map(|ip| match (ip, qtype) {
                    (IpAddr::V4(v4), RecordType::A) => Some(RData::A(A(*v4))),
                    (IpAddr::V6(v6), RecordType::AAAA) => Some(RData::AAAA(AAAA(*v6))),
                    _ => None,
                })
                .collect(),
            RecordType::TXT => self
                .txt
                .get(name)
                .map(|text| RData::TXT(TXT::from_bytes(text.as_bytes().chunks(255).collect())))
                .into_iter()
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Starts a UDP DNS server on 127.0.0.1 answering from `zone`; it runs as long as the
/// test's runtime.
pub async fn start(zone: Zone) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Some(query) = buf.get(..n).and_then(|b| Message::from_vec(b).ok()) else {
                continue;
            };
            if let Some(resp) = zone.answer(&query) {
                let _ = sock.send_to(&resp.to_vec().unwrap(), peer).await;
            }
        }
    });
    addr
}
