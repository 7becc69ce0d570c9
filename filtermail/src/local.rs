//! What is local to this relay, for the envelope of incoming mail (SMTP `MAIL`/`RCPT` of
//! incoming mode and `/mxdeliv`'s `X-MAIL-FROM`/`X-MAIL-TO`).
//!
//! Both rules keep Postfix from writing mail the filter never sees. Once the filter has
//! accepted a message, Postfix bounces it to its envelope sender if Dovecot refuses it, with
//! the message attached (RELIABILITY.md, "What Postfix does after the filter"). So:
//!
//! - a recipient must have a mailbox ([`chatmaild::User::accepts_mail`] of its
//!   [`canonical_mailbox`]), else `550 5.1.1` at `RCPT`: the sending server, not this relay,
//!   tells its user, and nothing is queued that Dovecot would refuse as an unknown user;
//! - the envelope sender must not be of our own domain (in any spelling Postfix routes to
//!   it: case, a trailing dot, the `[1.2.3.4]` and bare forms of an IP relay), else
//!   `550 5.7.1`: our users send through submission only, and a bounce to such a sender
//!   would put the remote message into one of our mailboxes. The null sender is fine.
//!
//! Outgoing and transport modes do not use this: their senders are our users and their
//! recipients anyone.

use std::path::PathBuf;

use chatmaild::Config;
use chatmaild::address::{canonical_domain, canonical_mailbox};

use crate::filter_reply::{FilterReply, Reply};
use crate::policy::Envelope;

/// The relay's own domain and mailboxes.
#[derive(Debug, Clone)]
pub struct Local {
    /// `mail_domain` in every form Postfix treats as local, as [`canonical_domain`] writes it.
    domains: Vec<String>,
    mailboxes_dir: PathBuf,
}

impl Local {
    /// The domain and mailboxes of the relay `config` describes.
    pub fn new(config: &Config) -> Local {
        Local::with_domains(
            &[&config.mail_domain, &config.mail_domain_bare],
            config.mailboxes_dir.clone(),
        )
    }

    /// A relay whose own domain is any of `domains`, its mailboxes below `mailboxes_dir`.
    pub fn with_domains(domains: &[&str], mailboxes_dir: PathBuf) -> Local {
        let mut own: Vec<String> = domains
            .iter()
            .filter_map(|d| canonical_domain(&format!("@{d}")).ok())
            .collect();
        own.sort();
        own.dedup();
        Local {
            domains: own,
            mailboxes_dir,
        }
    }

    /// Refuses an envelope sender of our own domain; `""` is the null sender.
    pub fn check_sender(&self, addr: &str) -> Result<(), Reply> {
        match canonical_domain(addr) {
            Ok(domain) if self.domains.contains(&domain) => {
                tracing::warn!(sender = %addr, "refused incoming mail from a local sender");
                Err(Reply::SENDER_IS_LOCAL)
            }
            _ => Ok(()),
        }
    }

    /// Refuses a recipient that is not a plain spelling (`553 5.1.3`, see
    /// [`chatmaild::address`]) or whose mailbox does not take mail (`550 5.1.1`).
    pub fn check_recipient(&self, addr: &str) -> Result<(), Reply> {
        let Ok(mailbox) = canonical_mailbox(addr) else {
            return Err(Reply::RECIPIENT_NOT_PLAIN);
        };
        match chatmaild::User::in_dir(&self.mailboxes_dir, mailbox.as_str()) {
            Ok(user) if user.accepts_mail() => Ok(()),
            _ => {
                tracing::debug!(recipient = %addr, "refused incoming mail to an unknown user");
                Err(Reply::unknown_recipient(addr))
            }
        }
    }

    /// The sender, then every recipient, as above: the first refusal.
    pub fn check_envelope(&self, env: &Envelope) -> Result<(), Reply> {
        self.check_sender(&env.mail_from)?;
        env.rcpt_to
            .iter()
            .try_for_each(|rcpt| self.check_recipient(rcpt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_domain_senders_are_refused_in_every_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let ip = Local::with_domains(&["[127.0.0.1]", "127.0.0.1"], dir.path().into());
        let name = Local::with_domains(&["Chat.Example.org"], dir.path().into());
        for (local, sender) in [
            (&ip, "user@[127.0.0.1]"),
            (&ip, "USER+x@[127.0.0.1]"),
            (&ip, "user@127.0.0.1"),
            (&ip, "user@127.0.0.1."),
            (&ip, "\"quoted user\"@[127.0.0.1]"),
            (&ip, "@[127.0.0.2]:user@[127.0.0.1]"),
            (&ip, "a%b@[127.0.0.1]"),
            (&name, "user@chat.example.org"),
            (&name, "User@CHAT.EXAMPLE.ORG."),
            (&name, "\"a@b\"@chat.example.org"),
        ] {
            assert_eq!(
                local.check_sender(sender),
                Err(Reply::SENDER_IS_LOCAL),
                "{sender}"
            );
        }
        for (local, sender) in [
            (&ip, ""),
            (&ip, "user@[127.0.0.2]"),
            (&ip, "user@[IPv6:::1]"),
            (&name, "user@example.org"),
            (&name, "user@sub.chat.example.org"),
            (&name, "user@chat.example.org.evil"),
            (&name, "chat.example.org@evil.example"),
            (&name, "user@chat.example.org.."),
        ] {
            assert_eq!(local.check_sender(sender), Ok(()), "{sender:?}");
        }
    }

    #[test]
    fn recipients_need_a_mailbox_that_takes_mail() {
        let dir = tempfile::tempdir().unwrap();
        let local = Local::with_domains(&["chat.example.org"], dir.path().into());
        let user = chatmaild::User::in_dir(dir.path(), "bob@chat.example.org").unwrap();
        let unknown = |a: &str| Err(Reply::unknown_recipient(a));
        assert_eq!(
            local.check_recipient("bob@chat.example.org"),
            unknown("bob@chat.example.org")
        );
        user.set_password("{SHA512-CRYPT}$6$x").unwrap();
        for rcpt in [
            "bob@chat.example.org",
            "Bob+x@Chat.Example.org.",
            "bob+@chat.example.org",
        ] {
            assert_eq!(local.check_recipient(rcpt), Ok(()), "{rcpt}");
        }
        assert_eq!(
            local.check_recipient("\"bob\"@chat.example.org"),
            Err(Reply::RECIPIENT_NOT_PLAIN)
        );
        assert_eq!(
            local.check_recipient("bob@other.example"),
            unknown("bob@other.example")
        );
        std::fs::write(user.blocked_path(), b"").unwrap();
        assert_eq!(
            local.check_recipient("BOB@chat.example.org"),
            unknown("BOB@chat.example.org")
        );
    }

    #[test]
    fn envelope_sender_first_then_recipients() {
        let dir = tempfile::tempdir().unwrap();
        let local = Local::with_domains(&["chat.example.org"], dir.path().into());
        chatmaild::User::in_dir(dir.path(), "bob@chat.example.org")
            .unwrap()
            .set_password("{SHA512-CRYPT}$6$x")
            .unwrap();
        let env = |from: &str, to: &[&str]| Envelope {
            mail_from: from.into(),
            rcpt_to: to.iter().map(|s| (*s).to_owned()).collect(),
        };
        let ok = env("a@remote.example", &["bob@chat.example.org"]);
        assert_eq!(local.check_envelope(&ok), Ok(()));
        let forged = env("carol@chat.example.org", &["nobody@chat.example.org"]);
        assert_eq!(local.check_envelope(&forged), Err(Reply::SENDER_IS_LOCAL));
        let one_unknown = env("", &["bob@chat.example.org", "nobody@chat.example.org"]);
        assert_eq!(
            local.check_envelope(&one_unknown),
            Err(Reply::unknown_recipient("nobody@chat.example.org"))
        );
    }
}
