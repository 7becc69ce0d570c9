//! LMTP (RFC 2033) as the transport reads it: its envelope [`Rules`] (recipients resolved
//! to destinations, each destination's queue slot reserved at `RCPT`) and what a DATA
//! section becomes, on the shared wire protocol of [`chatmail_smtp`].
//!
//! Pure code without I/O, the transaction state machine beside filtermail's: the command
//! sequence is [`chatmail_smtp::Dialogue`], driven by [`chatmail_smtp::serve`] from
//! [`crate::server`]. Follows SPEC §6.2 (commands, parameters ignored, null sender) and §6.3
//! (DATA framing, size limit), with the robustness of their Notes: an unparsable RCPT gets a
//! reply, and the DATA receiver never lets the rest of an oversized message be read as
//! commands.

use std::net::IpAddr;
use std::sync::Arc;

use chatmail_smtp::command::strip_source_route;
use chatmail_smtp::{Reservation, Rules, stuff_in_place, stuffed_len};

use crate::queue::{Queues, Slot};
use crate::transport_reply::{Reply, TransportReply};

/// One destination of a transaction: where its recipients' domain points and its queue
/// slot, shared by its recipients.
#[derive(Debug)]
pub struct Lane {
    /// The key recipients are grouped and slots are counted under.
    pub key: String,
    /// Where the domain points.
    pub destination: Destination,
    /// The reserved slot; `None`: the queue was full, the recipients get "busy".
    pub slot: Option<Slot>,
}

/// An accepted recipient: the address as received and its destination's lane.
#[derive(Debug, Clone)]
pub struct Recipient {
    /// The address, local part in the case received (SPEC §6.2 Note).
    pub addr: String,
    /// Its destination, shared with the transaction's other recipients there.
    pub lane: Arc<Lane>,
}

/// The transport's envelope rules over the process's queue slots.
#[derive(Debug, Clone, Copy)]
pub struct Destinations<'a> {
    /// The per-destination queue slots.
    pub queues: &'a Queues,
}

impl Rules for Destinations<'_> {
    type Recipient = Recipient;

    /// Any sender; an RFC 5321 source route (`<@a,@b:user@d>`) is dropped.
    fn sender(&self, addr: &str) -> Result<String, Reply> {
        strip_source_route(addr)
            .map(str::to_owned)
            .ok_or(Reply::INVALID_MAIL_FROM)
    }

    /// A recipient with a valid domain; the first of its destination in the transaction
    /// reserves the destination's slot.
    fn recipient(&self, addr: &str, accepted: &[Recipient]) -> Result<Recipient, Reply> {
        let addr = strip_source_route(addr).ok_or(Reply::INVALID_RCPT_TO)?;
        let destination = parse_recipient(addr).ok_or_else(|| Reply::invalid_address(addr))?;
        let key = destination.key();
        let lane = match accepted.iter().find(|r| r.lane.key == key) {
            Some(earlier) => Arc::clone(&earlier.lane),
            None => {
                let slot = self.queues.reserve(&key);
                if slot.is_none() {
                    tracing::info!(destination = %key, "destination queue full");
                }
                Arc::new(Lane {
                    key,
                    destination,
                    slot,
                })
            }
        };
        Ok(Recipient {
            addr: addr.to_owned(),
            lane,
        })
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

/// Where a recipient's domain points: a name for MX lookup or an address literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    /// A domain name, lower-cased, without a trailing dot.
    Name(String),
    /// A domain literal, `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
    Literal(IpAddr),
}

impl Destination {
    /// The key under which recipients are grouped and queue slots are counted.
    pub fn key(&self) -> String {
        match self {
            Destination::Name(n) => n.clone(),
            Destination::Literal(ip) => format!("[{ip}]"),
        }
    }
}

/// Splits a recipient address and validates its domain; `None` means `553 Invalid email
/// address`. The local part is forwarded as received (SPEC §6.2 Note: keep the case).
pub fn parse_recipient(addr: &str) -> Option<Destination> {
    let (local, domain) = addr.rsplit_once('@')?;
    if local.is_empty()
        || addr.len() > 512
        || addr.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return None;
    }
    parse_domain(domain)
}

fn parse_domain(domain: &str) -> Option<Destination> {
    if let Some(literal) = domain.strip_prefix('[') {
        let inner = literal.strip_suffix(']')?;
        let ip = match strip_prefix_ci(inner, "IPv6:") {
            Some(v6) => IpAddr::V6(v6.parse().ok()?),
            None => IpAddr::V4(inner.parse().ok()?),
        };
        return Some(Destination::Literal(ip));
    }
    let domain = domain.to_lowercase();
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    };
    (domain.len() <= 253 && domain.split('.').all(valid_label)).then_some(Destination::Name(domain))
}

/// The received (unstuffed) message in wire form for delivery: dot-stuffed lines followed
/// by the `.` line, ready to be written after an SMTP `DATA` (and, without the last three
/// bytes, posted to `/mxdeliv`). Stuffed in place (a second copy would double what a large
/// message holds); `held`, the receiver's reservation, then covers the stuffed message,
/// which the transport keeps until its deliveries end. `None` when the budget cannot cover
/// the few added bytes: the message is refused like one over the budget.
pub fn wire_form(mut message: Vec<u8>, held: &mut Reservation) -> Option<Vec<u8>> {
    let wire_len = stuffed_len(&message).saturating_add(3);
    if !held.cover_alone(wire_len) {
        held.release();
        return None;
    }
    held.shrink_to(wire_len);
    message.reserve_exact(wire_len - message.len());
    stuff_in_place(&mut message);
    message.extend_from_slice(b".\r\n");
    Some(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatmail_smtp::MemoryBudget;

    #[test]
    fn recipients_share_their_destination_slot() {
        let queues = Queues::with_limits(1, 10);
        let rules = Destinations { queues: &queues };
        assert_eq!(
            rules.sender("@r.example:a@b.example"),
            Ok("a@b.example".into())
        );
        assert_eq!(rules.sender(""), Ok(String::new()));
        assert_eq!(rules.sender("@r.example"), Err(Reply::INVALID_MAIL_FROM));
        let a = rules.recipient("A@x.example", &[]).unwrap();
        assert!(a.lane.slot.is_some());
        let b = rules
            .recipient("@r.example:b@X.example", std::slice::from_ref(&a))
            .unwrap();
        assert_eq!(b.addr, "b@X.example");
        assert!(Arc::ptr_eq(&a.lane, &b.lane), "one slot per destination");
        assert_eq!(queues.in_flight("x.example"), 1);
        // Another transaction finds the queue full: accepted, but busy.
        let c = rules.recipient("c@x.example", &[]).unwrap();
        assert!(c.lane.slot.is_none());
        assert_eq!(
            rules.recipient("nodomain", &[]).unwrap_err(),
            Reply::invalid_address("nodomain")
        );
        drop((a, b));
        assert_eq!(
            queues.in_flight("x.example"),
            0,
            "freed with the transaction"
        );
    }

    #[test]
    fn a_message_is_held_as_its_stuffed_copy() {
        let budget = MemoryBudget::new(1024 * 1024);
        let mut held = Reservation::new(Some(Arc::clone(&budget)));
        let message = b"a\r\n.b\r\n".to_vec();
        assert!(held.cover(message.len(), usize::MAX));
        let wire = wire_form(message, &mut held);
        assert_eq!(wire, Some(b"a\r\n..b\r\n.\r\n".to_vec()));
        assert_eq!((held.bytes(), budget.in_use()), (11, 11));
        // The added bytes do not fit beside another message: refused, nothing held.
        let small = MemoryBudget::new(10);
        let mut other = Reservation::new(Some(Arc::clone(&small)));
        assert!(other.cover(2, 2));
        let mut held = Reservation::new(Some(Arc::clone(&small)));
        assert!(held.cover(8, 8));
        assert_eq!(wire_form(b"a\r\n.b\r\n".to_vec(), &mut held), None);
        assert_eq!(small.in_use(), 2);
    }

    #[test]
    fn recipients() {
        let name = |s: &str| Some(Destination::Name(s.into()));
        assert_eq!(parse_recipient("User@Example.ORG"), name("example.org"));
        assert_eq!(parse_recipient("a@_test.example"), name("_test.example"));
        assert_eq!(parse_recipient("a@bücher.example"), name("bücher.example"));
        assert_eq!(
            parse_recipient("a@[127.0.0.1]"),
            Some(Destination::Literal("127.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            parse_recipient("a@[IPv6:::1]"),
            Some(Destination::Literal("::1".parse().unwrap()))
        );
        for bad in [
            "",
            "nodomain",
            "@example.org",
            "a@",
            "a@.example",
            "a@example.",
            "a@ex ample.org",
            "a@-x.org",
            "a@[300.1.1.1]",
            "a@[::1]",
            "a@x/y.org",
            "a b@example.org",
        ] {
            assert_eq!(parse_recipient(bad), None, "{bad}");
        }
        assert_eq!(parse_recipient(&format!("a@{}.org", "x".repeat(64))), None);
    }
}
