"""chatmail-admin against the running local relay: what users and peers see."""

import imaplib
import json
import smtplib
import time

import pytest

from conftest import DEADLINE, Account, admin_ok, auth_mode, load_eml, new_invitation, newemail

ok = admin_ok


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


def uses_left(relay, token):
    for line in ok(relay, "invite", "list").splitlines():
        if line.startswith(token + "\t"):
            return int(line.split("uses_left=")[1].split("\t")[0])
    raise AssertionError(f"{token} not listed")


def refused(status, body):
    """The CGI's answer to a spent invitation: 403 and a reason Delta Chat shows."""
    return status == 403 and "invitation is not valid" in body["reason"]


def test_invitation_creates_exactly_its_number_of_accounts(relay, make_account, invite_only):
    """Through nginx, fcgiwrap, the CGI, doveauth and Dovecot: --uses 2 gives two accounts
    whichever way they come (the `dcaccount:` URL's CGI or a first login carrying the token),
    and no third."""
    relay.require("chatmail-newemail")
    token, url = new_invitation(relay, "--uses", "2")
    assert url == f"dcaccount:https://{relay.ini['mail_domain']}/new?invite={token}"

    status, body = newemail(relay, url)
    assert status == 200, body
    assert body["password"].startswith(token + ":")
    assert body["email"].endswith("@" + relay.domain)
    via_cgi = Account(relay, body["email"], body["password"])
    password_file = relay.maildir(via_cgi.addr) / "password"
    if auth_mode() == "lua":
        # The CGI had doveauth create it: the invitation is used before any login.
        assert password_file.exists()
        assert uses_left(relay, token) == 1
    via_cgi.create()
    assert password_file.exists()

    # The second use by a manual (or dclogin:) first login with the token.
    manual = make_account()
    manual.password = f"{token}:{manual.password}"
    manual.create()
    assert uses_left(relay, token) == 0

    status, body = newemail(relay, url)
    if auth_mode() == "lua":
        assert refused(status, body), (status, body)
    else:
        # Dict mode has no /create for the CGI: the first login refuses instead.
        assert status == 200, body
        with pytest.raises(imaplib.IMAP4.error):
            Account(relay, body["email"], body["password"]).imap()
    late = make_account()
    late.password = f"{token}:{late.password}"
    with pytest.raises(imaplib.IMAP4.error):
        late.imap()
    assert not relay.maildir(late.addr).joinpath("password").exists()
    # Both accounts keep working.
    via_cgi.imap().logout()
    manual.imap().logout()


def test_revoked_and_expired_invitations_stop_at_once(relay, make_account, invite_only):
    relay.require("chatmail-newemail")
    revoked, revoked_url = new_invitation(relay, "--uses", "5")
    expired, expired_url = new_invitation(relay, "--uses", "5", "--expires", "3")
    assert newemail(relay, revoked_url)[0] == 200
    ok(relay, "invite", "revoke", revoked)
    # Make the second one's expiry pass (the file format of chatmaild::registry).
    path = relay.mailboxes_dir / ".chatmail-admin" / "invites" / expired
    data = json.loads(path.read_text())
    data["expires"] = int(time.time()) - 1
    with open(path, "r+") as f:
        f.truncate()
        f.write(json.dumps(data))
    for token, url in ((revoked, revoked_url), (expired, expired_url)):
        status, body = newemail(relay, url)
        if auth_mode() == "lua":
            assert refused(status, body), (token, status, body)
        acc = make_account()
        acc.password = f"{token}:{acc.password}"
        with pytest.raises(imaplib.IMAP4.error):
            acc.imap()
    # A malformed token is refused without asking anyone.
    assert refused(*newemail(relay, f"https://{relay.ini['mail_domain']}/new?invite=NOT-A-TOKEN"))


# The reasons Delta Chat shows for the plain `dcaccount:` URL (no token), by mode.
PLAIN_REFUSALS = {
    "invite-only": "This relay accepts new accounts by invitation only.",
    "close": "This relay does not accept new accounts.",
}


def test_plain_dcaccount_url_follows_the_registration_mode(relay):
    """The relay's plain `dcaccount:` QR code (`/new`, no token) through nginx and the CGI:
    a closed or invite-only relay refuses with a reason Delta Chat shows, an open one hands
    out credentials that log in. In dict mode the CGI cannot ask, so the credentials come and
    the first login refuses."""
    relay.require("chatmail-newemail")
    url = f"https://{relay.ini['mail_domain']}/new"
    before = admin_ok(relay, "registration", "status").split()[-1]
    try:
        for mode, reason in PLAIN_REFUSALS.items():
            ok(relay, "registration", mode)
            status, body = newemail(relay, url)
            if auth_mode() == "lua":
                assert (status, body) == (403, {"reason": reason}), mode
            else:
                assert status == 200, (mode, body)
                with pytest.raises(imaplib.IMAP4.error):
                    Account(relay, body["email"], body["password"]).imap()
                assert not relay.maildir(body["email"]).joinpath("password").exists()
        ok(relay, "registration", "open")
        status, body = newemail(relay, url)
        assert status == 200, body
        assert body["email"].endswith("@" + relay.domain)
        Account(relay, body["email"], body["password"]).create()
        assert relay.maildir(body["email"]).joinpath("password").exists()
    finally:
        ok(relay, "registration", before)
