"""chatmail-admin against the running local relay: what users and peers see (issue 13)."""

import imaplib
import smtplib
import subprocess
import time

import pytest

from conftest import DEADLINE, REPO, load_eml


def admin(relay, *args, stdin=""):
    """Runs chatmail-admin on the relay's config; returns the completed process."""
    exe = relay.bin("chatmail-admin")
    if not exe.exists():
        exe = REPO / "target" / "debug" / "chatmail-admin"
    cmd = [str(exe), "--config", str(relay.ini_path), *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120)


def ok(relay, *args, stdin=""):
    proc = admin(relay, *args, stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def inbox_ids(acc, message_id):
    conn = acc.imap()
    try:
        conn.select("INBOX")
        typ, data = conn.search(None, "HEADER", "Message-ID", message_id)
        return data[0].split() if typ == "OK" and data and data[0] else []
    finally:
        conn.logout()


def test_blocked_account_cannot_log_in_and_gets_no_mail(relay, make_account):
    a, b = make_account().create(), make_account().create()
    assert ok(relay, "block", a.addr) == f"blocked {a.addr}\n"
    with pytest.raises(imaplib.IMAP4.error):
        a.imap()

    msgid, data = load_eml("encrypted.eml", b.addr, a.addr)
    try:
        b.send(a.addr, data)
        accepted = True
    except smtplib.SMTPRecipientsRefused:
        accepted = False
    if accepted:
        # Postfix took it; LMTP finds no such user, so it bounces to the sender.
        deadline = time.monotonic() + DEADLINE
        bounced = False
        while time.monotonic() < deadline and not bounced:
            conn = b.imap()
            conn.select("INBOX")
            typ, found = conn.search(None, "FROM", "MAILER-DAEMON")
            conn.logout()
            bounced = typ == "OK" and bool(found and found[0])
            time.sleep(0.5)
        assert bounced, "neither refused nor bounced"

    assert ok(relay, "unblock", a.addr) == f"unblocked {a.addr}\n"
    assert inbox_ids(a, msgid) == [], "a blocked account received mail"
    # Unblocked, it logs in and receives again.
    msgid2, data2 = load_eml("encrypted.eml", b.addr, a.addr)
    b.send(a.addr, data2)
    assert a.wait_for_message(msgid2) is not None


def test_deleted_address_cannot_be_taken_over(relay, make_account):
    a = make_account().create()
    out = ok(relay, "delete", a.addr)
    assert out.startswith(f"deleted {a.addr}, tombstoned until ")
    assert not relay.maildir(a.addr).exists()
    for password in (a.password, a.password + "-new"):
        a.password = password
        with pytest.raises(imaplib.IMAP4.error):
            a.imap()
    assert not relay.maildir(a.addr).joinpath("password").exists()
