"""A user's and a peer relay's view of the local relay (SPEC §3-§7, §10)."""

import imaplib
import os
import smtplib
import time

import pytest

from conftest import (
    DEADLINE,
    HOST,
    cross_quota_warning,
    load_eml,
    metadata_get,
    metadata_set,
    peer_smtp,
    quota_bytes,
    tls_context,
)

DAY = 86400


def test_imap_first_login_creates_account(relay, make_account):
    acc = make_account()
    maildir = relay.maildir(acc.addr)
    assert not maildir.exists()
    acc.create()
    password = maildir / "password"
    assert password.read_text().startswith("{SHA512-CRYPT}$6$")
    assert (maildir / "enforceE2EEincoming").exists()
    # The account now belongs to that password: another one cannot log in or overwrite it.
    stored = password.read_text()
    acc.password = acc.password + "x"
    with pytest.raises(imaplib.IMAP4.error):
        acc.imap()
    assert password.read_text() == stored


def test_imap_advertises_chatmail_capabilities(relay, make_account):
    conn = make_account().imap()
    typ, data = conn.capability()
    conn.logout()
    assert typ == "OK"
    caps = set(data[0].decode().split())
    assert {"XDELTAPUSH", "XCHATMAIL", "METADATA"} <= caps


def test_short_password_creates_nothing(relay, make_account):
    acc = make_account()
    acc.password = "short"
    with pytest.raises(imaplib.IMAP4.error):
        acc.imap()
    assert not (relay.maildir(acc.addr) / "password").exists()


def test_submission_requires_login(relay, make_account):
    a = make_account().create()
    with smtplib.SMTP(HOST, 587, timeout=DEADLINE) as conn:
        conn.starttls(context=tls_context())
        with pytest.raises((smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused)):
            conn.sendmail(a.addr, [a.addr], b"Subject: x\r\n\r\nx\r\n")


@pytest.mark.parametrize("port", [465, 587])
def test_encrypted_message_arrives(relay, make_account, port):
    relay.require("filtermail")
    a, b = make_account().create(), make_account().create()
    msgid, data = load_eml("encrypted.eml", a.addr, b.addr)
    assert a.send(b.addr, data, port=port) == {}
    got = b.wait_for_message(msgid)
    assert got is not None, "message did not arrive"
    assert b"-----BEGIN PGP MESSAGE-----" in got
    # authclean hides the subject of every outgoing message.
    assert b"Subject: [...]" in got


def test_plaintext_refused_with_523(relay, make_account):
    relay.require("filtermail")
    a, b = make_account().create(), make_account().create()
    _, data = load_eml("plain.eml", a.addr, b.addr)
    with pytest.raises(smtplib.SMTPDataError) as err:
        a.send(b.addr, data)
    assert err.value.smtp_code == 523


def test_securejoin_request_passes(relay, make_account):
    relay.require("filtermail")
    a, b = make_account().create(), make_account().create()
    msgid, data = load_eml("securejoin-vc.eml", a.addr, b.addr)
    assert a.send(b.addr, data) == {}
    assert b.wait_for_message(msgid) is not None


def test_from_header_spoofing_fails(relay, make_account):
    relay.require("filtermail")
    a, b, c = make_account().create(), make_account().create(), make_account().create()
    _, data = load_eml("encrypted.eml", c.addr, b.addr)
    with pytest.raises(smtplib.SMTPDataError) as err:
        a.send(b.addr, data)
    assert err.value.smtp_code == 500


def test_envelope_sender_must_be_login(relay, make_account):
    a, b, c = make_account().create(), make_account().create(), make_account().create()
    _, data = load_eml("encrypted.eml", c.addr, b.addr)
    with pytest.raises((smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused)) as err:
        a.send(b.addr, data, mail_from=c.addr)
    codes = str(err.value)
    assert "553" in codes or "554" in codes


def test_rate_limit_trips(relay, make_account):
    relay.require("filtermail")
    a, b = make_account().create(), make_account().create()
    _, data = load_eml("plain.eml", a.addr, b.addr)
    burst = int(relay.ini.get("max_user_send_burst_size", 10))
    refused = None
    # One connection per attempt: Postfix drops a client after too many errors (523s).
    for _ in range(burst + 20):
        try:
            a.send(b.addr, data)
        except smtplib.SMTPDataError as e:
            assert e.smtp_code == 523  # cleartext: refused, but counted at MAIL FROM
        except smtplib.SMTPRecipientsRefused as e:
            refused = e.recipients[b.addr]
            break
    assert refused is not None, "no rate limit after a burst of cleartext attempts"
    code, text = refused
    assert code == 450
    assert b"4.7.1: Too much mail from" in text


def test_port25_cleartext_refused_for_protected_recipient(relay, make_account):
    relay.require("filtermail")
    b = make_account().create()
    _, data = load_eml("plain.eml", "someone@[127.0.0.2]", b.addr)
    with peer_smtp() as conn, pytest.raises(smtplib.SMTPDataError) as err:
        conn.sendmail("someone@[127.0.0.2]", [b.addr], data)
    assert err.value.smtp_code == 523


def test_port25_encrypted_arrives(relay, make_account):
    relay.require("filtermail")
    b = make_account().create()
    msgid, data = load_eml("encrypted.eml", "someone@[127.0.0.2]", b.addr)
    with peer_smtp() as conn:
        assert conn.sendmail("someone@[127.0.0.2]", [b.addr], data) == {}
    got = b.wait_for_message(msgid)
    assert got is not None
    # Incoming mail keeps its headers (DKIM signatures must stay valid).
    assert b"Subject: e2e test" in got


def test_port25_policy_is_per_recipient(relay, make_account):
    relay.require("filtermail")
    b = make_account().create()
    (relay.maildir(b.addr) / "enforceE2EEincoming").unlink()
    msgid, data = load_eml("plain.eml", "someone@[127.0.0.2]", b.addr)
    with peer_smtp() as conn:
        assert conn.sendmail("someone@[127.0.0.2]", [b.addr], data) == {}
    assert b.wait_for_message(msgid) is not None

    # One protected recipient refuses the whole cleartext message.
    c = make_account().create()
    _, data = load_eml("plain.eml", "someone@[127.0.0.2]", b.addr)
    with peer_smtp() as conn, pytest.raises(smtplib.SMTPDataError) as err:
        conn.sendmail("someone@[127.0.0.2]", [b.addr, c.addr], data)
    assert err.value.smtp_code == 523


def test_metadata_device_token_round_trip(relay, make_account):
    relay.require("chatmail-metadata")
    acc = make_account().create()
    token = "e2e-token-" + os.urandom(6).hex()
    conn = acc.imap()
    metadata_set(conn, "/private/devicetoken", token)
    assert token in metadata_get(conn, "/private/devicetoken")
    conn.logout()
    stored = (relay.maildir(acc.addr) / "metadata.json").read_text()
    assert token in stored


def test_delivery_notifies_device(relay, make_account):
    relay.require("chatmail-metadata", "filtermail")
    if relay.notifications is None:
        pytest.skip("the running relay's notification_url is not a local mock")
    a, b = make_account().create(), make_account().create()
    token = "e2e-push-" + os.urandom(6).hex()
    conn = b.imap()
    metadata_set(conn, "/private/devicetoken", token)
    conn.logout()
    msgid, data = load_eml("encrypted.eml", a.addr, b.addr)
    a.send(b.addr, data)
    assert b.wait_for_message(msgid) is not None
    assert relay.notifications.wait_for(token), "no notification for the device token"


def test_gone_token_is_forgotten(relay, make_account):
    """The push service answers 410 for a token the device gave up: the relay removes it
    from the user's metadata.json (SPEC §5.5)."""
    relay.require("chatmail-metadata", "filtermail")
    if relay.notifications is None:
        pytest.skip("the running relay's notification_url is not a local mock")
    a, b = make_account().create(), make_account().create()
    token = "e2e-gone-" + os.urandom(6).hex()
    conn = b.imap()
    metadata_set(conn, "/private/devicetoken", token)
    conn.logout()
    metadata = relay.maildir(b.addr) / "metadata.json"
    assert token in metadata.read_text()
    relay.notifications.status = 410
    try:
        msgid, data = load_eml("encrypted.eml", a.addr, b.addr)
        a.send(b.addr, data)
        assert b.wait_for_message(msgid) is not None
        assert relay.notifications.wait_for(token)
        deadline = time.monotonic() + DEADLINE
        while token in metadata.read_text():
            assert time.monotonic() < deadline, "token still stored after 410 Gone"
            time.sleep(0.1)
    finally:
        relay.notifications.status = 200


def test_last_login_moves(relay, make_account):
    relay.require("lastlogin")
    acc = make_account().create()
    password = relay.maildir(acc.addr) / "password"
    old = (int(time.time()) // DAY - 10) * DAY
    os.utime(password, (old, old))
    acc.imap().logout()
    deadline = time.monotonic() + DEADLINE
    today = int(time.time()) // DAY * DAY
    while int(password.stat().st_mtime) != today and time.monotonic() < deadline:
        time.sleep(0.1)
    assert int(password.stat().st_mtime) == today


def test_expire_removes_old_messages(relay, make_account):
    relay.require("chatmail-expire")
    acc = make_account().create()
    cur = relay.maildir(acc.addr) / "cur"
    cur.mkdir(exist_ok=True)
    owner = os.stat(relay.maildir(acc.addr))
    os.chown(cur, owner.st_uid, owner.st_gid)
    now = int(time.time())
    days = int(relay.ini.get("delete_mails_after", 20))
    old = cur / f"{now - (days + 5) * DAY}.M1P1.e2e,S=100,W=102:2,S"
    fresh = cur / f"{now}.M2P2.e2e,S=100,W=102:2,S"
    for f in (old, fresh):
        f.write_bytes(b"x" * 100)
        os.chown(f, owner.st_uid, owner.st_gid)
    t = now - (days + 5) * DAY
    os.utime(old, (t, t))
    proc = relay.run_as_vmail(relay.bin("chatmail-expire"), relay.ini_path, "--remove", "-v")
    assert proc.returncode == 0, proc.stderr
    assert not old.exists()
    assert fresh.exists()
    assert "Removed" in proc.stdout


def test_fake_encrypted_refused_with_523(relay, make_account):
    relay.require("filtermail")
    a, b = make_account().create(), make_account().create()
    _, data = load_eml("fake-encrypted.eml", a.addr, b.addr)
    with pytest.raises(smtplib.SMTPDataError) as err:
        a.send(b.addr, data)
    assert err.value.smtp_code == 523


def test_port25_bounce_reaches_protected_recipient(relay, make_account):
    """A delivery report (null sender, multipart/report, Auto-Submitted) from another relay
    is let through in cleartext (SPEC §6.5, §6.7)."""
    relay.require("filtermail")
    b = make_account().create()
    msgid, data = load_eml("mailer-daemon.eml", "", b.addr)
    data = data.replace(b"MAILER-DAEMON@example.org", b"MAILER-DAEMON@[127.0.0.2]")
    data = data.replace(b"<owner-ups-mib@CS.UTK.EDU>", f"<{b.addr}>".encode())
    with peer_smtp() as conn:
        assert conn.sendmail("", [b.addr], data) == {}
    assert b.wait_for_message(msgid) is not None


def test_port25_named_domain_needs_dkim(relay, make_account):
    """Mail claiming a DNS domain must carry a valid DKIM signature of that domain
    (SPEC §6.10); this one has none."""
    relay.require("filtermail")
    b = make_account().create()
    _, data = load_eml("encrypted.eml", "someone@example.org", b.addr)
    with peer_smtp() as conn, pytest.raises(smtplib.SMTPDataError) as err:
        conn.sendmail("someone@example.org", [b.addr], data)
    assert err.value.smtp_code == 554
    assert b"DKIM" in err.value.smtp_error


def test_quota_warning_expires_oldest_messages(relay, make_account):
    """Crossing 75% of the quota makes Dovecot run chatmail-quota-expire, which deletes the
    oldest messages down to 70% and keeps the last 24 hours (SPEC §7.4, §7.5, §10.2)."""
    relay.require("filtermail", "chatmail-quota-expire")
    limit = quota_bytes(relay)
    b = make_account().create()
    crossing = cross_quota_warning(relay, b, limit)
    # The new message stays (last 24 hours), and what is left fits 70% of the quota.
    assert b.wait_for_message(crossing.msgid, timeout=1) is not None
    maildir = relay.maildir(b.addr)
    left = sum(f.stat().st_size for f in maildir.glob("*/*") if f.parent.name in ("cur", "new"))
    assert left <= limit * 70 // 100 + crossing.size
