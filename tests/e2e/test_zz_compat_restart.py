"""Compatibility and restarts: mailboxes written in the reference's on-disk formats are
served as they are, and a restarted relay keeps accounts and device tokens (SPEC §1.5, §5.4).
Runs last (file name) because it restarts the relay."""

import json
import os
import secrets
import subprocess
import time

from conftest import DEADLINE, RELAY_CMD, load_eml, metadata_get, metadata_set


def _write_reference_mailbox(relay, acc, metadata):
    """A mailbox as the Python chatmaild leaves it: {SHA512-CRYPT} password file (glibc
    crypt, 5000 rounds), enforceE2EEincoming, metadata.json with json.dump defaults."""
    salt = secrets.token_hex(8)
    # On stdin: a password may start with "-" (token_urlsafe), which openssl would parse.
    crypt = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, "-stdin"], input=acc.password + "\n",
                           capture_output=True, text=True, check=True).stdout.strip()
    maildir = relay.maildir(acc.addr)
    maildir.mkdir(mode=0o700)
    (maildir / "password").write_text("{SHA512-CRYPT}" + crypt)
    (maildir / "enforceE2EEincoming").write_text("")
    (maildir / "metadata.json").write_text(json.dumps(metadata))
    owner = os.stat(relay.mailboxes_dir)
    for p in (maildir, *maildir.iterdir()):
        os.chown(p, owner.st_uid, owner.st_gid)


def test_reference_mailbox_served_as_is(relay, make_account):
    relay.require("chatmail-metadata")
    acc = make_account()
    _write_reference_mailbox(relay, acc, {"devicetoken": ["legacy-token-1", "legacy-token-2"]})
    stored = (relay.maildir(acc.addr) / "password").read_text()
    conn = acc.imap()
    tokens = metadata_get(conn, "/private/devicetoken")
    conn.logout()
    assert "legacy-token-1" in tokens and "legacy-token-2" in tokens
    assert (relay.maildir(acc.addr) / "password").read_text() == stored


def test_restart_keeps_accounts_tokens_and_queued_notifications(relay, make_account):
    relay.require("chatmail-metadata", "filtermail")
    acc = make_account().create()
    token = "restart-token-" + secrets.token_hex(4)
    conn = acc.imap()
    metadata_set(conn, "/private/devicetoken", token)
    conn.logout()

    # A notification the push service refuses stays queued on disk (SPEC §5.5) ...
    mock = relay.notifications
    if mock is not None:
        mock.status = 500
        sender = make_account().create()
        msgid, data = load_eml("encrypted.eml", sender.addr, acc.addr)
        sender.send(acc.addr, data)
        assert acc.wait_for_message(msgid) is not None
        assert mock.wait_for(token), "first notification attempt missing"
        queue = relay.mailboxes_dir / "pending_notifications"
        assert _queued(queue, token)
        mock.status = 200
        attempts = mock.count(token)

    env = dict(os.environ, CHATMAIL_RELAY_DIR=str(relay.state), CHATMAIL_NO_BUILD="1")
    proc = subprocess.run([*RELAY_CMD, "restart"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr

    conn = acc.imap()
    tokens = metadata_get(conn, "/private/devicetoken")
    conn.logout()
    assert token in tokens
    # ... and is sent again by the restarted relay, then leaves the queue.
    if mock is not None:
        assert mock.wait_for(token, attempts + 1), "queued notification lost in the restart"
        deadline = time.monotonic() + DEADLINE
        while _queued(queue, token):
            assert time.monotonic() < deadline, "notification still queued after success"
            time.sleep(0.1)


def _queued(queue, token):
    """Whether a queue file (SPEC §5.5: addr, start time, token) holds this token."""
    for f in queue.iterdir():
        if f.name.endswith(".tmp"):
            continue
        try:
            if f.read_text().split("\n", 2)[-1] == token:
                return True
        except (FileNotFoundError, UnicodeDecodeError):
            continue
    return False
