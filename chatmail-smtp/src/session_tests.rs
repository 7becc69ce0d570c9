use super::*;

/// Rules of a test service: senders at `bad.example` and the recipient `nobody@x` are
/// refused; a recipient remembers how many came before it.
struct Test;

impl Rules for Test {
    type Recipient = (String, usize);

    fn sender(&self, addr: &str) -> Result<String, Reply> {
        if addr.ends_with("@bad.example") {
            return Err(Reply::new(550, "bad sender"));
        }
        Ok(addr.to_ascii_lowercase())
    }

    fn recipient(
        &self,
        addr: &str,
        accepted: &[(String, usize)],
    ) -> Result<(String, usize), Reply> {
        if addr == "nobody@x" {
            return Err(Reply::new(550, "no such user"));
        }
        Ok((addr.to_owned(), accepted.len()))
    }
}

fn step(d: &mut Dialogue<(String, usize)>, line: &str) -> Step {
    d.on_line(line.as_bytes(), &Test)
}

fn reply(d: &mut Dialogue<(String, usize)>, line: &str) -> Reply {
    match step(d, line) {
        Step::Reply(r) => r,
        other => panic!("{line}: {other:?}"),
    }
}

#[test]
fn hello_replies() {
    let with_size = String::from_utf8(hello_reply(Some(100))).unwrap();
    assert_eq!(
        with_size,
        "250-filtermail\r\n250-8BITMIME\r\n250-SIZE 100\r\n250-SMTPUTF8\r\n250 OK\r\n"
    );
    assert!(
        !String::from_utf8(hello_reply(None))
            .unwrap()
            .contains("SIZE")
    );
    let mut d = Dialogue::new(None);
    assert_eq!(step(&mut d, "LHLO x"), Step::Raw(hello_reply(None)));
    assert_eq!(step(&mut d, "helo x"), Step::Reply(Reply::HELO));
    assert_eq!(Protocol::Smtp.greeting().to_string(), "220 filtermail SMTP");
    assert_eq!(Protocol::Lmtp.greeting().to_string(), "220 filtermail LMTP");
}

#[test]
fn command_sequence() {
    let mut d = Dialogue::new(Some(100));
    assert_eq!(reply(&mut d, "DATA"), Reply::NEED_MAIL);
    assert_eq!(reply(&mut d, "RCPT TO:<a@b>"), Reply::NEED_MAIL);
    assert_eq!(reply(&mut d, "MAIL FROM:bad"), Reply::INVALID_MAIL_FROM);
    assert_eq!(
        reply(&mut d, "MAIL FROM:<\u{7}@x>"),
        Reply::INVALID_MAIL_FROM
    );
    assert_eq!(reply(&mut d, "MAIL FROM:<a@bad.example>").code(), 550);
    assert!(d.transaction().is_none(), "a refused MAIL opens nothing");
    assert_eq!(reply(&mut d, "mail from:<A@B> SMTPUTF8"), Reply::OK);
    assert_eq!(reply(&mut d, "MAIL FROM:<c@d>"), Reply::NESTED_MAIL);
    assert_eq!(reply(&mut d, "DATA"), Reply::NEED_RCPT);
    assert_eq!(reply(&mut d, "RCPT TO:garbage"), Reply::INVALID_RCPT_TO);
    assert_eq!(reply(&mut d, "RCPT TO:<>"), Reply::INVALID_RCPT_TO);
    assert_eq!(reply(&mut d, "RCPT TO:<nobody@x>").code(), 550);
    assert_eq!(reply(&mut d, "RCPT TO:<x@y> NOTIFY=NEVER"), Reply::OK);
    assert_eq!(reply(&mut d, "RCPT TO:<z@y>"), Reply::OK);
    assert_eq!(step(&mut d, "data"), Step::Data);
    let tx = d.take_transaction().unwrap();
    assert_eq!(
        tx,
        Transaction {
            sender: "a@b".into(),
            smtputf8: true,
            recipients: vec![("x@y".into(), 0), ("z@y".into(), 1)],
        }
    );
    assert_eq!(
        reply(&mut d, "DATA"),
        Reply::NEED_MAIL,
        "the transaction ended"
    );
    assert_eq!(reply(&mut d, "MAIL FROM:<>"), Reply::OK);
    assert_eq!(d.transaction().map(|t| t.smtputf8), Some(false));
    assert_eq!(reply(&mut d, "RSET"), Reply::OK);
    assert!(d.transaction().is_none());
    assert_eq!(reply(&mut d, "NOOP"), Reply::OK);
    assert_eq!(reply(&mut d, "VRFY x"), Reply::UNKNOWN_COMMAND);
    assert_eq!(reply(&mut d, ""), Reply::UNKNOWN_COMMAND);
    assert_eq!(step(&mut d, "QUIT"), Step::Close(Reply::BYE));
    assert_eq!(
        d.on_line(b"MAIL FROM:<\xff@x>", &Test),
        Step::Reply(Reply::INVALID_MAIL_FROM)
    );
}

#[test]
fn hello_ends_the_transaction() {
    let mut d = Dialogue::new(None);
    assert_eq!(reply(&mut d, "MAIL FROM:<a@b>"), Reply::OK);
    step(&mut d, "EHLO x");
    assert!(d.transaction().is_none());
}

#[test]
fn recipient_limit() {
    let mut d = Dialogue::new(None);
    assert_eq!(reply(&mut d, "MAIL FROM:<a@b>"), Reply::OK);
    for i in 0..MAX_RECIPIENTS {
        assert_eq!(reply(&mut d, &format!("RCPT TO:<r{i}@x>")), Reply::OK);
    }
    assert_eq!(
        reply(&mut d, "RCPT TO:<one@more>"),
        Reply::TOO_MANY_RECIPIENTS
    );
    assert_eq!(
        d.transaction().map(|t| t.recipients.len()),
        Some(MAX_RECIPIENTS)
    );
}
