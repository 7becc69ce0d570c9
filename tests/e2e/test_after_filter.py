"""What Postfix does after the filter, tried through the real Postfix and Dovecot.

Two promises (RELIABILITY.md, "What Postfix does after the filter"):

- Nothing Postfix writes by itself bypasses the filter. Mail to an address without a
  mailbox and mail claiming one of our users as its envelope sender are refused at the
  door (port 25 and `/mxdeliv`), so nothing is queued that could come back as a bounce; a
  message the filter accepted but Postfix cannot deliver is dropped without a bounce, so
  its content never goes out to a (possibly forged) sender nor into a local mailbox.
- What is stored is what was checked. Bytes Postfix's cleanup or its LMTP client would
  change (a NUL, lines over 998 bytes, a header beyond `header_size_limit`) are refused with
  523 on every path, and the mailbox does not change.

Every test looks at the mailboxes on disk (all of them) and at Postfix's queue, not only at
the reply.
"""

import os
import smtplib
import time
import uuid

import pytest

from conftest import load_eml
from test_attacks import (
    assert_not_delivered,
    canary_port25,
    canary_submission,
    mailbox_files,
    marked,
    mxdeliv,
    peer_smtp,
    stuffed,
)

SENDER_IS_LOCAL = "550 5.7.1 Sender address rejected: users of this domain send only through submission"


def unique_peer():
    """A remote sender no other test uses: any bounce would be addressed to it."""
    return f"peer-{uuid.uuid4().hex[:12]}@[127.0.0.2]"


def unknown_user(relay):
    return f"ci-{uuid.uuid4().hex[:6]}@{relay.domain}"


def unknown_reply(addr):
    return f"550 5.1.1 <{addr}>: Recipient address rejected: User unknown"


def queued_for(relay, *addrs):
    """Queue entries whose sender or a recipient is one of `addrs`."""
    found = []
    for entry in relay.queue():
        rcpts = [r["address"] for r in entry.get("recipients", [])]
        if entry.get("sender") in addrs or any(r in addrs for r in rcpts):
            found.append(entry)
    return found


def assert_mailboxes_unchanged(relay, before, except_for=()):
    """No message file appeared, changed or vanished in any mailbox but `except_for`."""
    after = relay.message_files()
    skip = tuple(str(relay.maildir(a)) + "/" for a in except_for)
    changed = {
        str(p)
        for p in set(before) | set(after)
        if not str(p).startswith(skip) and before.get(p) != after.get(p)
    }
    assert not changed, f"mailboxes changed: {sorted(changed)}"


# --- (a) recipients without a mailbox ------------------------------------------------------


def test_port25_unknown_recipient_refused_at_rcpt(relay, make_account):
    relay.require("filtermail")
    b = make_account().create()
    peer, nobody = unique_peer(), unknown_user(relay)
    before = relay.message_files()
    _, data = load_eml("encrypted.eml", peer, nobody)
    with peer_smtp() as conn, pytest.raises(smtplib.SMTPRecipientsRefused) as err:
        conn.sendmail(peer, [nobody], data)
    code, text = err.value.recipients[nobody]
    assert f"{code} {text.decode()}" == unknown_reply(nobody)
    # A blocked account is unknown as well.
    blocked = make_account().create()
    (relay.maildir(blocked.addr) / "blocked").write_bytes(b"")
    with peer_smtp() as conn, pytest.raises(smtplib.SMTPRecipientsRefused) as err:
        conn.sendmail(peer, [blocked.addr], data)
    assert err.value.recipients[blocked.addr][0] == 550
    assert_not_delivered(relay, b, "never-sent", canary_port25(b))
    assert_mailboxes_unchanged(relay, before, except_for=[b.addr])
    assert queued_for(relay, peer, nobody, blocked.addr) == []


def test_mxdeliv_unknown_recipient_refuses_the_request(relay, make_account):
    relay.require("filtermail")
    b = make_account().create()
    peer, nobody = unique_peer(), unknown_user(relay)
    marker = f"attack-{uuid.uuid4().hex}"
    before = relay.message_files()
    _, data = load_eml("encrypted.eml", peer, b.addr)
    status, body = mxdeliv([b.addr, nobody], stuffed(marked(data, marker)), mail_from=peer)
    assert (status, body) == (400, unknown_reply(nobody))
    assert_not_delivered(relay, b, marker, canary_port25(b))
    assert_mailboxes_unchanged(relay, before, except_for=[b.addr])
    assert queued_for(relay, peer, nobody) == []


# --- (b) our own users as envelope senders ---------------------------------------------------


def local_spellings(addr):
    local, domain = addr.rsplit("@", 1)
    bare = domain.strip("[]")
    return [addr, f"{local.upper()}+x@{domain}", f"{local}@{bare}", f'"{local}"@{domain}']


def test_port25_local_sender_refused(relay, make_account):
    relay.require("filtermail")
    a, b = make_account().create(), make_account().create()
    marker = f"attack-{uuid.uuid4().hex}"
    before = relay.message_files()
    # Postfix itself refuses the unbracketed IP (`501 5.1.7 Bad sender address syntax`).
    for sender in local_spellings(a.addr)[:2] + local_spellings(a.addr)[3:]:
        _, data = load_eml("plain.eml", sender, b.addr)
        with peer_smtp() as conn, pytest.raises(smtplib.SMTPRecipientsRefused) as err:
            conn.sendmail(sender, [b.addr], marked(data, marker))
        # Postfix's proxy passes the filter's MAIL refusal on at RCPT.
        code, text = err.value.recipients[b.addr]
        assert f"{code} {text.decode()}" == SENDER_IS_LOCAL, sender
    assert_not_delivered(relay, b, marker, canary_port25(b))
    assert_mailboxes_unchanged(relay, before, except_for=[b.addr])


def test_mxdeliv_local_sender_refused(relay, make_account):
    relay.require("filtermail")
    a, b = make_account().create(), make_account().create()
    marker = f"attack-{uuid.uuid4().hex}"
    before = relay.message_files()
    for sender in local_spellings(a.addr):
        _, data = load_eml("encrypted.eml", sender, b.addr)
        status, body = mxdeliv([b.addr], stuffed(marked(data, marker)), mail_from=sender)
        assert (status, body) == (400, SENDER_IS_LOCAL), sender
    assert_not_delivered(relay, b, marker, canary_port25(b))
    assert_mailboxes_unchanged(relay, before, except_for=[b.addr])


# --- (c) accepted, then undeliverable: no bounce -------------------------------------------


def fill_quota(relay, addr):
    """Makes Dovecot see the mailbox as over its quota: a fresh maildir++ `maildirsize`
    with the configured limit and one usage line above it (Dovecot trusts such a file)."""
    size = relay.ini.get("max_mailbox_size", "500M").strip().upper().rstrip("B")
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    limit = int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)
    path = relay.maildir(addr) / "maildirsize"
    path.write_text(f"{limit}S\n{limit + 1} 1\n")
    owner = relay.maildir(addr).stat()
    os.chown(path, owner.st_uid, owner.st_gid)


def wait_until(what, done, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        got = done()
        if got:
            return got
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def expire_and_settle(relay, peer):
    """Waits for the message from `peer` to be deferred (mailbox full), forces Postfix to
    give up on it (as `maximal_queue_lifetime` would), waits until it has left the queue and
    asserts that no bounce to `peer` took its place; returns its queue id."""
    entries = wait_until(
        "message deferred by the full mailbox",
        lambda: [
            e
            for e in queued_for(relay, peer)
            if e.get("sender") == peer and any(r.get("delay_reason") for r in e["recipients"])
        ],
    )
    qid = entries[0]["queue_id"]
    reason = entries[0]["recipients"][0]["delay_reason"]
    assert "4.2.2" in reason, reason
    for tool, *args in (["postsuper", "-e", qid], ["postqueue", "-i", qid]):
        proc = relay.postfix(tool, *args)
        assert proc.returncode == 0, proc.stderr
    try:
        # Postfix queues a bounce before it removes the original.
        wait_until(
            "the expired message left the queue",
            lambda: all(e["queue_id"] != qid for e in relay.queue()),
        )
        bounces = queued_for(relay, peer)
        assert bounces == [], "a bounce to the sender was queued"
    finally:
        for entry in queued_for(relay, peer):  # never leave a bounce for later tests
            relay.postfix("postsuper", "-d", entry["queue_id"])
    return qid


@pytest.mark.parametrize("path", ["port25", "mxdeliv"])
@pytest.mark.parametrize("kind", ["encrypted", "cleartext"])
def test_undeliverable_incoming_mail_is_not_bounced(relay, make_account, path, kind):
    """Accepted by the filter, then refused by Dovecot (mailbox full, until Postfix gives
    up): no bounce goes out to the sender (backscatter of content the outgoing filter never
    saw) and no mailbox changes."""
    relay.require("filtermail")
    b = make_account().create()
    peer = unique_peer()
    if kind == "cleartext":
        # A mailbox that takes cleartext: a bounce would send the sender's text back out.
        relay.maildir(b.addr).joinpath("enforceE2EEincoming").unlink()
        _, data = load_eml("plain.eml", peer, b.addr)
    else:
        _, data = load_eml("encrypted.eml", peer, b.addr)
    fill_quota(relay, b.addr)
    before = relay.message_files()
    if path == "port25":
        with peer_smtp() as conn:
            assert conn.sendmail(peer, [b.addr], data) == {}
    else:
        assert mxdeliv([b.addr], stuffed(data), mail_from=peer) == (200, "250 OK")
    qid = expire_and_settle(relay, peer)
    lines = [line for line in relay.postfix_log().splitlines() if f" {qid}: " in line]
    assert any("expired, returned to sender" in line for line in lines), lines
    # The bounce daemon found no recipient to report (all NOTIFY=NEVER): no notice.
    assert not any("non-delivery notification" in line for line in lines), lines
    assert_mailboxes_unchanged(relay, before)


# --- (d) bytes Postfix would change -------------------------------------------------------

ARMOR_BEGIN = b"-----BEGIN PGP MESSAGE-----\r\n\r\n"
ARMOR_END = b"\r\n=agR5\r\n-----END PGP MESSAGE-----"


def postfix_changing_variants(from_addr, to_addr):
    """(name, message): an otherwise valid encrypted message with bytes that Postfix's
    cleanup or LMTP client would change on the way to the mailbox."""
    _, enc = load_eml("encrypted.eml", from_addr, to_addr)
    subject = b"Subject: e2e test\r\n"
    preamble = b'boundary="YFrteb74qSXmggbOxZL9dRnhymywAi"\r\n\r\n'
    part = b"Content-Description: PGP/MIME version identification\r\n"
    assert subject in enc and preamble in enc and ARMOR_BEGIN in enc and ARMOR_END in enc
    assert part in enc
    start = enc.index(ARMOR_BEGIN) + len(ARMOR_BEGIN)
    end = enc.index(ARMOR_END)
    one_line_armor = enc[:start] + enc[start:end].replace(b"\r\n", b"") + enc[end:]
    assert max(len(line) for line in one_line_armor.split(b"\r\n")) > 998
    field = b"X-Pad: " + b"\r\n ".join([b"x" * 900] * 130) + b"\r\n"  # one field, ~117 KB
    block = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"y" * 900) for i in range(130))  # ~119 KB
    return [
        # cleanup(8) cuts a header at a NUL (cleanup_out_header uses C strings).
        ("NUL in a header", enc.replace(subject, b"Subject: e2e\x00test\r\n", 1)),
        ("NUL in the preamble", enc.replace(preamble, preamble + b"hidden\x00text\r\n", 1)),
        # With lmtp_header_checks the LMTP client parses every MIME header (mime_state),
        # whose buffer stops at a NUL.
        ("NUL in a MIME part header", enc.replace(part, part[:32] + b"\x00" + part[32:], 1)),
        # The LMTP client breaks lines over 998 bytes with CRLF SPACE (smtp_text_out).
        ("header line over 998 bytes", enc.replace(subject, b"Subject: " + b"s" * 1000 + b"\r\n", 1)),
        ("body line over 998 bytes", one_line_armor),
        ("preamble line over 998 bytes", enc.replace(preamble, preamble + b"p" * 1200 + b"\r\n", 1)),
        # mime_state truncates a header field at header_size_limit (102400 bytes).
        ("header field over header_size_limit", enc.replace(subject, subject + field, 1)),
        ("header block over header_size_limit", enc.replace(subject, subject + block, 1)),
    ]


def run_variants(relay, acc, variants, send, canary):
    """Sends every (name, message) with a marker (on top, or in place of the variant's
    `X-Attack-Marker: MARKER` line) through `send` (which returns None for a 523 refusal,
    else what happened instead), then one canary to `acc` through the same
    path; fails listing every variant that was not refused with 523 or that reached the
    mailbox (once the canary is there, anything accepted earlier is there too)."""
    failures, markers = [], {}
    for name, data in variants:
        marker = f"attack-{uuid.uuid4().hex}"
        markers[name] = marker
        placeholder = b"X-Attack-Marker: MARKER\r\n"
        if placeholder in data:  # the variant's first line must stay first
            data = data.replace(b"MARKER", marker.encode(), 1)
        else:
            data = marked(data, marker)
        outcome = send(data)
        if outcome is not None:
            failures.append(f"{name}: {outcome}")
    got = acc.wait_for_message(canary())
    assert got is not None, "canary did not arrive"
    stored = b"".join(mailbox_files(relay, acc.addr))
    failures += [f"{name}: stored" for name, m in markers.items() if m.encode() in stored]
    assert not failures, "\n".join(failures)


def smtp_outcome(send):
    try:
        send()
        return "accepted"
    except smtplib.SMTPDataError as e:
        return None if e.smtp_code == 523 else f"{e.smtp_code} {e.smtp_error[:80]!r}"


def test_port25_postfix_changing_bytes_never_land(relay, make_account):
    relay.require("filtermail")
    b = make_account().create()
    peer = unique_peer()
    before = relay.message_files()

    def send(data):
        with peer_smtp() as conn:
            return smtp_outcome(lambda: conn.sendmail(peer, [b.addr], data))

    run_variants(relay, b, postfix_changing_variants(peer, b.addr), send, canary_port25(b))
    assert_mailboxes_unchanged(relay, before, except_for=[b.addr])


def test_mxdeliv_postfix_changing_bytes_never_land(relay, make_account):
    relay.require("filtermail")
    b = make_account().create()
    peer = unique_peer()

    def send(data):
        status, body = mxdeliv([b.addr], stuffed(data), mail_from=peer)
        return None if (status, body[:3]) == (400, "523") else f"{status} {body[:80]!r}"

    # Port 25's smtpd rewrites these before the filter sees them; /mxdeliv's messages meet
    # that code only at reinjection (smtpd.c:receive_data_message): a first line "From "
    # becomes an `X-Mailbox-Line:` header, a first line starting with a space gets an empty
    # line before it (the whole header turns into body).
    _, enc = load_eml("encrypted.eml", peer, b.addr)
    mark = b"X-Attack-Marker: MARKER\r\n"
    first_line = [
        ("first line 'From '", b"From mallory Mon Jan  1 00:00:00 2024\r\n" + mark + enc),
        ("first line starting with a space", b" folded\r\n" + mark + enc),
    ]
    variants = postfix_changing_variants(peer, b.addr) + first_line
    run_variants(relay, b, variants, send, canary_port25(b))


def test_submission_postfix_changing_bytes_never_leave(relay, make_account):
    relay.require("filtermail")
    a, b = make_account().create(), make_account().create()

    def send(data):
        return smtp_outcome(lambda: a.send(b.addr, data, port=587))

    run_variants(relay, b, postfix_changing_variants(a.addr, b.addr), send, canary_submission(a, b))
