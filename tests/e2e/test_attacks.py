"""The encryption promise tried as an attacker would, through the real Postfix and Dovecot.

Every attack is sent the way a peer or a user would send it (port 25 with STARTTLS,
`/mxdeliv` on 127.0.0.1:10082, submission on 465 and 587) and must be refused; each test
then also proves that nothing reached the target mailbox on disk. Because a refusal only
counts if nothing was queued either, every test ends by delivering an encrypted "canary"
to the same mailbox through the same path and waiting for it: once the canary is in the
maildir, anything accepted earlier would be there too.
"""

import http.client
import smtplib
import socket
import uuid

import pytest

from conftest import DEADLINE, HOST, load_eml, peer_smtp, tls_context

PEER = "someone@[127.0.0.2]"
HTTP_PORT = 10082


def mailbox_files(relay, addr):
    """Every message file of the maildir (all folders), as bytes, decompressed (Dovecot
    stores mail gzipped, where a marker would not show)."""
    root = relay.maildir(addr)
    return [data for path, data in relay.message_files().items() if path.is_relative_to(root)]


def marked(data, marker):
    """`data` (a message) with a unique marker header on top."""
    return f"X-Attack-Marker: {marker}\r\n".encode() + data


def assert_not_delivered(relay, acc, marker, send_canary):
    """After a refusal: the canary arrives, the attack does not."""
    canary_id = send_canary()
    got = acc.wait_for_message(canary_id)
    assert got is not None, "canary did not arrive"
    for data in mailbox_files(relay, acc.addr):
        assert marker.encode() not in data, "the refused message reached the mailbox"


def canary_port25(acc):
    def send():
        msgid, data = load_eml("encrypted.eml", PEER, acc.addr)
        with peer_smtp() as conn:
            assert conn.sendmail(PEER, [acc.addr], data) == {}
        return msgid

    return send


def canary_submission(sender, acc):
    def send():
        msgid, data = load_eml("encrypted.eml", sender.addr, acc.addr)
        assert sender.send(acc.addr, data) == {}
        return msgid

    return send


def port25_refused(mail_from, rcpts, data):
    """Sends on port 25; returns the refusing reply code (RCPT or DATA), or fails."""
    with peer_smtp() as conn:
        try:
            refused = conn.sendmail(mail_from, rcpts, data)
        except smtplib.SMTPRecipientsRefused as e:
            return min(code for code, _ in e.recipients.values())
        except smtplib.SMTPDataError as e:
            return e.smtp_code
        pytest.fail(f"accepted (refused recipients: {refused})")


def mxdeliv(rcpts, data, mail_from=PEER):
    """POSTs to /mxdeliv; returns (status, body)."""
    conn = http.client.HTTPConnection(HOST, HTTP_PORT, timeout=DEADLINE)
    try:
        conn.putrequest("POST", "/mxdeliv")
        conn.putheader("X-MAIL-FROM", mail_from)
        for r in rcpts:
            conn.putheader("X-MAIL-TO", r)
        conn.putheader("Content-Length", str(len(data)))
        conn.endheaders()
        conn.send(data)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def stuffed(data):
    return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in data.split(b"\r\n"))


def local_part(addr):
    return addr.rsplit("@", 1)[0]


def spellings(addr):
    """Spellings Postfix and Dovecot deliver to `addr`'s mailbox (domain [127.0.0.1])."""
    local, domain = addr.rsplit("@", 1)
    return [
        f"{local}+anything@{domain}",
        f"{local}+@{domain}",
        f"{local.upper()}+x@{domain}",
        f"{local.upper()}@{domain}",
        f'"{local}"@{domain}',
        f"@[127.0.0.2]:{local}@{domain}",
    ]


# --- Recipients --------------------------------------------------------------------------


def test_port25_cleartext_to_other_spellings_never_lands(relay, make_account):
    relay.require("filtermail")
    b = make_account().create()
    for rcpt in spellings(b.addr):
        marker = f"attack-{uuid.uuid4().hex}"
        _, data = load_eml("plain.eml", PEER, rcpt)
        code = port25_refused(PEER, [rcpt], marked(data, marker))
        assert code >= 500, (rcpt, code)
        assert_not_delivered(relay, b, marker, canary_port25(b))


def test_port25_encrypted_to_detail_address_arrives(relay, make_account):
    """The canonical mailbox decides, so encrypted mail to a +detail spelling still works."""
    relay.require("filtermail")
    b = make_account().create()
    local, domain = b.addr.rsplit("@", 1)
    rcpt = f"{local}+x@{domain}"
    msgid, data = load_eml("encrypted.eml", PEER, rcpt)
    with peer_smtp() as conn:
        assert conn.sendmail(PEER, [rcpt], data) == {}
    assert b.wait_for_message(msgid) is not None


def test_mxdeliv_cleartext_to_other_spellings_never_lands(relay, make_account):
    relay.require("filtermail")
    b = make_account().create()
    for rcpt in [*spellings(b.addr), b.addr]:
        marker = f"attack-{uuid.uuid4().hex}"
        _, data = load_eml("plain.eml", PEER, rcpt)
        status, body = mxdeliv([rcpt], stuffed(marked(data, marker)))
        assert status == 400, (rcpt, status, body)
        assert body.startswith(("523", "553")), (rcpt, body)
        assert_not_delivered(relay, b, marker, canary_port25(b))


# --- MIME ambiguity ------------------------------------------------------------------------


def ambiguous_variants(from_addr, to_addr):
    """(name, message) pairs: a real encrypted message made ambiguous, with cleartext."""
    _, enc = load_eml("encrypted.eml", from_addr, to_addr)
    top = b"Content-Type: multipart/encrypted"
    assert top in enc
    from_line = f"From: {from_addr}".encode()
    assert from_line in enc
    return [
        (
            "cleartext Content-Type first",
            enc.replace(top, b"Content-Type: text/plain\r\n" + top, 1).replace(
                b"\r\n\r\n", b"\r\n\r\nSECRET cleartext in the preamble\r\n", 1
            ),
        ),
        ("second From", enc.replace(from_line, from_line + b"\r\nFrom: boss@[127.0.0.2]", 1)),
        ("From with two addresses", enc.replace(from_line, from_line + b", boss@[127.0.0.2]", 1)),
        ("duplicated boundary", enc.replace(b"boundary=", b'boundary="evil"; boundary=', 1)),
        (
            "second MIME-Version",
            enc.replace(from_line, from_line + b"\r\nMIME-Version: 1.0\r\nMIME-Version: 1.0", 1),
        ),
    ] + grammar_variants(enc)


def grammar_variants(enc):
    """Messages outside the canonical grammar (RELIABILITY.md "What the filter enforces")
    on which a client's parser (mailparse) and the filter's could read different parts:
    parameter tricks, text outside the parts, transfer encodings, and bytes Postfix would
    change are in test_after_filter.py."""
    b = b"YFrteb74qSXmggbOxZL9dRnhymywAi"
    quoted = b'boundary="' + b + b'"'
    assert quoted in enc
    close = b"--" + b + b"--"

    def param(new):
        return enc.replace(quoted, new, 1)

    return [
        ("`;` inside the quoted boundary", param(b'boundary="' + b + b';x"')),
        ("quoted-pair in the boundary", param(b'boundary="' + b[:5] + b"\\" + b[5:] + b'"')),
        ("encoded word as the boundary", param(b'boundary="=?utf-8?q?' + b + b'?="')),
        ("RFC 2231 continuation from *1", param(b'boundary*1="' + b + b'"')),
        ("fold inside the quoted boundary", param(b'boundary="' + b[:5] + b"\r\n " + b[5:] + b'"')),
        ("empty parameter value", param(b'charset=""; ' + quoted)),
        ("unknown parameter", param(b"x-boundary=evil; " + quoted)),
        ("cleartext in the epilogue", enc.replace(close, close + b"\r\nSECRET cleartext\r\n", 1)),
        (
            "a preamble line that starts with the delimiter",
            enc.replace(b"\r\n\r\n--" + b, b"\r\n\r\n--" + b + b"x SECRET\r\n--" + b, 1),
        ),
        ("no MIME-Version", enc.replace(b"MIME-Version: 1.0\r\n", b"", 1)),
    ]


def test_port25_ambiguous_structure_never_lands(relay, make_account):
    relay.require("filtermail")
    b = make_account().create()
    for name, data in ambiguous_variants(PEER, b.addr):
        marker = f"attack-{uuid.uuid4().hex}"
        code = port25_refused(PEER, [b.addr], marked(data, marker))
        assert code == 523, (name, code)
        assert_not_delivered(relay, b, marker, canary_port25(b))


def test_mxdeliv_ambiguous_structure_never_lands(relay, make_account):
    relay.require("filtermail")
    b = make_account().create()
    for name, data in ambiguous_variants(PEER, b.addr):
        marker = f"attack-{uuid.uuid4().hex}"
        status, body = mxdeliv([b.addr], stuffed(marked(data, marker)))
        assert (status, body[:3]) == (400, "523"), (name, status, body)
        assert_not_delivered(relay, b, marker, canary_port25(b))


@pytest.mark.parametrize("port", [465, 587])
def test_submission_ambiguous_structure_never_leaves(relay, make_account, port):
    relay.require("filtermail")
    b = make_account().create()
    variants = len(ambiguous_variants("x@[127.0.0.1]", b.addr))
    for i in range(variants):
        # A sender of its own per variant: each costs two sends (attack and canary), and
        # the outgoing rate limit allows a burst of 10.
        a = make_account().create()
        name, data = ambiguous_variants(a.addr, b.addr)[i]
        marker = f"attack-{uuid.uuid4().hex}"
        with pytest.raises(smtplib.SMTPDataError) as err:
            a.send(b.addr, marked(data, marker), port=port)
        assert err.value.smtp_code == 523, name
        assert_not_delivered(relay, b, marker, canary_submission(a, b))


def test_mxdeliv_bare_lf_is_invalid_data(relay, make_account):
    relay.require("filtermail")
    b = make_account().create()
    marker = f"attack-{uuid.uuid4().hex}"
    _, data = load_eml("encrypted.eml", PEER, b.addr)
    data = marked(data, marker).replace(
        b"Content-Type: multipart/encrypted", b"Content-Type: text/plain\nContent-Type: multipart/encrypted", 1
    )
    status, body = mxdeliv([b.addr], stuffed(data))
    assert (status, body) == (400, "500 Invalid DATA")
    assert_not_delivered(relay, b, marker, canary_port25(b))


def test_port25_bare_lf_smuggling_never_lands(relay, make_account):
    """Postfix reads a bare LF as a line end; the filter then sees (and refuses) the
    duplicated header the attacker hid behind it."""
    relay.require("filtermail")
    b = make_account().create()
    marker = f"attack-{uuid.uuid4().hex}"
    _, data = load_eml("encrypted.eml", PEER, b.addr)
    data = marked(data, marker).replace(
        b"Content-Type: multipart/encrypted", b"Content-Type: text/plain\nContent-Type: multipart/encrypted", 1
    )
    raw = socket.create_connection((HOST, 25), timeout=DEADLINE)
    f = raw.makefile("rb")

    def reply():
        lines = []
        while True:
            line = f.readline()
            lines.append(line)
            if line[3:4] != b"-":
                return b"".join(lines)

    reply()
    raw.sendall(b"EHLO peer.example\r\n")
    reply()
    raw.sendall(b"STARTTLS\r\n")
    assert reply().startswith(b"220")
    tls = tls_context().wrap_socket(raw, server_hostname=None)
    f = tls.makefile("rb")
    for cmd in [b"EHLO peer.example", f"MAIL FROM:<{PEER}>".encode(), f"RCPT TO:<{b.addr}>".encode(), b"DATA"]:
        tls.sendall(cmd + b"\r\n")
        r = reply()
    assert r.startswith(b"354"), r
    tls.sendall(stuffed(data) + b".\r\n")
    r = reply()
    assert r.startswith(b"5"), r
    tls.sendall(b"QUIT\r\n")
    tls.close()
    assert_not_delivered(relay, b, marker, canary_port25(b))


# --- Exceptions ----------------------------------------------------------------------------


def fake_reports(to_addr):
    _, report = load_eml("mailer-daemon.eml", "", to_addr)
    report = report.replace(b"MAILER-DAEMON@example.org", b"MAILER-DAEMON@[127.0.0.2]")
    status = b"content-type: message/delivery-status"
    assert status in report
    return [
        ("other report type", report.replace(b"report-type=delivery-status", b"report-type=x", 1)),
        ("no status part", report.replace(status, b"content-type: text/plain", 1)),
        ("padded past the cap", report.replace(status, b"X-Pad: " + b"x" * 200_000 + b"\r\n" + status, 1)),
    ]


def test_port25_fake_delivery_reports_never_land(relay, make_account):
    relay.require("filtermail")
    b = make_account().create()
    for name, data in fake_reports(b.addr):
        marker = f"attack-{uuid.uuid4().hex}"
        code = port25_refused("", [b.addr], marked(data, marker))
        assert code == 523, (name, code)
        assert_not_delivered(relay, b, marker, canary_port25(b))


def test_securejoin_with_extra_cleartext_never_lands(relay, make_account):
    relay.require("filtermail")
    a, b = make_account().create(), make_account().create()
    _, sj = load_eml("securejoin-vc.eml", a.addr, b.addr)
    end = b"--Gl92xgZjOShJ5PGHntqYkoo2OK2Dvi--"
    assert end in sj
    marker = f"attack-{uuid.uuid4().hex}"
    extra = sj.replace(
        end,
        b"--Gl92xgZjOShJ5PGHntqYkoo2OK2Dvi\r\nContent-Type: text/plain\r\n\r\n"
        + marker.encode()
        + b"\r\n"
        + end,
        1,
    )
    with pytest.raises(smtplib.SMTPDataError) as err:
        a.send(b.addr, extra)
    assert err.value.smtp_code == 523
    code = port25_refused(PEER, [b.addr], extra.replace(a.addr.encode(), PEER.encode()))
    assert code == 523
    assert_not_delivered(relay, b, marker, canary_submission(a, b))


# --- Senders -------------------------------------------------------------------------------


def test_submission_from_must_be_the_login_mailbox(relay, make_account):
    relay.require("filtermail")
    a, b = make_account().create(), make_account().create()
    local, domain = a.addr.rsplit("@", 1)
    marker = f"attack-{uuid.uuid4().hex}"
    _, data = load_eml("encrypted.eml", a.addr, b.addr)
    quoted = marked(data, marker).replace(f"From: {a.addr}".encode(), f'From: <"{local}"@{domain}>'.encode(), 1)
    with pytest.raises(smtplib.SMTPDataError) as err:
        a.send(b.addr, quoted)
    assert err.value.smtp_code == 523  # parsers differ on quoted local parts
    other = marked(data, marker).replace(f"From: {a.addr}".encode(), f"From: <{b.addr}>".encode(), 1)
    with pytest.raises(smtplib.SMTPDataError) as err:
        a.send(b.addr, other)
    assert err.value.smtp_code == 500
    assert_not_delivered(relay, b, marker, canary_submission(a, b))


def test_port25_ipv6_literal_sender_accepted(relay, make_account):
    """`From: user@[IPv6:...]` is one address like the IPv4 form (no DKIM for literals)."""
    relay.require("filtermail")
    b = make_account().create()
    sender = "someone@[IPv6:2001:db8::1]"
    msgid, data = load_eml("encrypted.eml", sender, b.addr)
    with peer_smtp() as conn:
        assert conn.sendmail(sender, [b.addr], data) == {}
    assert b.wait_for_message(msgid) is not None
