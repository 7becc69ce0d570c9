"""What Delta Chat really sends, measured against the filter: real clients (the pinned
deltachat-rpc-server) go through every kind of message they send over the local relay
(securejoin with a contact and a group QR code, keyupdates, text, files, an image, a
reaction, an edit, a delete, a read receipt, the message timer, group changes, webxdc
updates, a channel, a second device with copies to self and sync messages), each action is
checked to arrive, and filtermail must refuse none of it (its logs and Postfix's over the
run: no `Rejected unencrypted mail`, no 523, no proxy-reject). That check is shown to see a
refusal by one cleartext message at the end.

Every message delivered during the run is copied from the accounts' maildirs the moment it
appears (the clients delete some from the server right after reading them), and becomes a
corpus file: the bytes the client submitted, minus the fields delivery put on top
(`Return-Path`, `Delivered-To`), with the CRLF line ends SMTP carried. The relay's
submission cleanup has replaced the Subject by `[...]` and dropped `Received`, `X-Mailer`
and `User-Agent` (relay/postfix/submission_header_cleanup); nothing else differs.
With `CHATMAIL_CORPUS_OUT=DIR` the files are written to DIR (its `*.eml` replaced), which is
how `filtermail/tests/data/deltachat/` is made; `filtermail/tests/deltachat_corpus.rs` checks
each file passes the filter's policy in both directions."""

import contextlib
import os
import signal
import smtplib
import struct
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from corpus import MAX_CORPUS_MESSAGE, LogWindow, MaildirCapture, kind_of, write_corpus
from test_deltachat import deltachat, online_account, wait_text  # noqa: F401 (fixture)

rpc_client = pytest.importorskip("deltachat_rpc_client")
EventType = rpc_client.EventType

PHASE_TIMEOUT = 120  # seconds for one action to arrive and the relay to fall quiet
QUIET = 2.0  # seconds without a new delivery that end a phase
MAX_CORPUS_TOTAL = 2 * 1024 * 1024  # bytes of corpus kept in the repository at most
# What the filter writes for every refusal (filtermail::policy::LOG_REJECTED), and what
# Postfix logs when the before-queue filter refuses a message.
REFUSAL_MARKERS = ("Rejected unencrypted mail", "proxy-reject", " 523 ")
WAITING = [None]  # what `until` waits for, named when a phase times out


class Run:
    """The accounts, the capture and the relay's logs of one corpus run, split in phases."""

    def __init__(self, relay, logins, capture):
        self.relay = relay
        self.logins = logins  # {role: conftest.Account}
        self.roles = {login.addr.lower(): role for role, login in logins.items()}
        self.capture = capture
        log = relay.state / "log"
        self.logs = {name: LogWindow(log / name) for name in ("filtermail.log", "filtermail-incoming.log", "postfix.log")}
        self.clients = []
        self.phases = []
        self.sending = set()

    def delivered(self, role):
        """Messages Postfix handed to Dovecot for this mailbox since the run started."""
        addr = self.logins[role].addr
        want = f"to=<{addr}>"
        return sum(
            1
            for line in self.logs["postfix.log"].lines()
            if want in line and "dovecot-lmtp" in line and "status=sent" in line
        )

    @contextlib.contextmanager
    def phase(self, kind, sends=True):
        """One action: it must arrive within PHASE_TIMEOUT; then every delivery it caused is
        waited for, and the deliveries captured meanwhile are its messages (there must be
        some if it `sends`)."""
        index = len(self.phases)
        self.phases.append(kind)
        if sends:
            self.sending.add(kind)

        def expired(signum, frame):
            raise TimeoutError(f"phase {kind}: nothing within {PHASE_TIMEOUT}s (waiting for {WAITING[0]})")

        old = signal.signal(signal.SIGALRM, expired)
        signal.alarm(PHASE_TIMEOUT)
        WAITING[0] = "the action"
        try:
            yield
            WAITING[0] = "every delivery"
            self.settle(kind)
        except BaseException:
            print(self.describe())
            raise
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
        with self.capture.lock:
            for d in self.capture.deliveries:
                if d.phase < 0:
                    d.phase = index

    def settle(self, kind):
        """Waits until the clients have nothing left to do, every message Postfix delivered
        to a test mailbox was captured, and nothing new came for QUIET seconds."""
        for client in self.clients:
            client._rpc.wait_for_all_work_done(client.id)
        seen, since = -1, time.monotonic()
        while True:
            counts = {role: (self.delivered(role), self.capture.count(role)) for role in self.logins}
            total = sum(c for _, c in counts.values())
            if total != seen:
                seen, since = total, time.monotonic()
            if all(d == c for d, c in counts.values()) and time.monotonic() - since >= QUIET:
                return
            time.sleep(0.2)

    def describe(self):
        """Every client's chats, for the reader of a failed phase."""
        out = []
        for client in self.clients:
            out.append(f"account {client.id} {client.get_config('configured_addr')}:")
            for chat in client.get_chatlist():
                snap = chat.get_basic_snapshot()
                last = [m.get_snapshot() for m in chat.get_messages()[-3:]]
                out.append(
                    f"  chat {chat.id} {snap.chat_type} {snap.name!r} members={len(chat.get_contacts())}"
                    f" can_send={chat.can_send()} request={snap.is_contact_request}"
                    f" last={[(m.text, m.is_info) for m in last]}"
                )
        return "\n".join(out)

    def refusals(self):
        """Log lines of the run that show a refused message."""
        return [
            f"{name}: {line}"
            for name, window in self.logs.items()
            for line in window.lines()
            if any(m in line for m in REFUSAL_MARKERS)
        ]

    def write_corpus(self, out):
        """The run's deliveries as corpus files in `out`, see `corpus.write_corpus`."""
        return write_corpus(out, self.capture.deliveries, self.phases, self.roles)


def until(check, what):
    """Polls `check` until it returns something true, and returns that (the phase's alarm
    ends a wait that never succeeds; `what` names it for the reader)."""
    WAITING[0] = what
    while not (result := check()):
        time.sleep(0.2)
    WAITING[0] = None
    return result


def sendable_group(account, name):
    """The group chat called `name` that `account` can write to, if any."""
    for chat in account.get_chatlist():
        snap = chat.get_basic_snapshot()
        if snap.chat_type == "Group" and snap.name == name and chat.can_send():
            return chat
    return None


def wait_event(account, kind, match=lambda e: True):
    while True:
        event = account.wait_for_event(kind)
        if match(event):
            return event


def make_png(path, width=48, height=32):
    """A small RGB gradient as PNG (no imaging library needed)."""

    def chunk(tag, data):
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 5 % 256, y * 7 % 256, 160)) for x in range(width)) for y in range(height)
    )
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    path.write_bytes(png)
    return str(path)


def make_xdc(path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("manifest.toml", 'name = "corpus app"\n')
        z.writestr("index.html", "<!doctype html><title>corpus</title><script src=webxdc.js></script>\n")
    return str(path)


def chat_of(account, msg):
    return account.get_chat_by_id(msg.chat_id)


def texts(account, chat_id):
    return [m.get_snapshot().text for m in account.get_chat_by_id(chat_id).get_messages()]


def test_everything_delta_chat_sends_passes(relay, make_account, deltachat, tmp_path):  # noqa: F811
    relay.require("filtermail", "chatmail-metadata")
    logins = {role: make_account() for role in ("alice", "bob", "carol")}
    clients = {}
    for role, login in logins.items():
        acc = online_account(deltachat, relay, login)
        acc.set_config("mdns_enabled", "1")  # read receipts
        acc.set_config("displayname", role.capitalize())
        clients[role] = acc
    alice, bob, carol = clients["alice"], clients["bob"], clients["carol"]
    maildirs = {role: relay.maildir(login.addr) for role, login in logins.items()}

    with MaildirCapture(maildirs) as capture:
        run = Run(relay, logins, capture)
        run.clients = list(clients.values())
        try:
            actions(run, deltachat, alice, bob, carol, logins, tmp_path)
        finally:
            # What came so far, for a look after a failure.
            written, skipped = run.write_corpus(tmp_path / "corpus")
        refused = run.refusals()

    assert not refused, "the filter refused what Delta Chat sent:\n" + "\n".join(refused)
    # The logs above do show a refusal: one cleartext message is refused and logged.
    alice_login, bob_login = logins["alice"], logins["bob"]
    cleartext = f"From: <{alice_login.addr}>\r\nTo: <{bob_login.addr}>\r\nSubject: x\r\n\r\nclear\r\n"
    with pytest.raises(smtplib.SMTPDataError) as refusal:
        alice_login.send(bob_login.addr, cleartext.encode())
    assert refusal.value.smtp_code == 523, refusal.value
    deadline = time.monotonic() + 10
    while not run.refusals() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert run.refusals(), "a refusal did not show in the logs the run reads"
    out = os.environ.get("CHATMAIL_CORPUS_OUT")
    if out:
        written, skipped = run.write_corpus(Path(out))
    total = sum(size for _, size in written)
    print(f"corpus: {len(written)} messages, {total} bytes; not kept (> {MAX_CORPUS_MESSAGE} bytes): {skipped}")
    for name, size in written:
        print(f"  {name} {size}")
    kinds = {kind_of(name) for name, _ in written + skipped}
    assert run.sending <= kinds, f"actions without a captured message: {run.sending - kinds}"
    assert total < MAX_CORPUS_TOTAL, f"corpus of {total} bytes: keep the repository small"


def actions(run, deltachat, alice, bob, carol, logins, tmp_path):  # noqa: F811
    """Every kind of message, one phase each, in an order where each builds on the last."""
    with run.phase("securejoin-contact"):
        bob.secure_join(alice.get_qr_code())
        alice.wait_for_securejoin_inviter_success()
        bob.wait_for_securejoin_joiner_success()

    with run.phase("keyupdate"):
        # A new account tells its key-contacts which relays it reads, once, when the
        # debounce after its transport was configured has passed (keyupdate.rs of the client).
        for account in (alice, bob):
            until(lambda: account.get_config("keyupdate_baseline"), "a keyupdate")

    with run.phase("text"):
        bob.create_chat(alice).send_text("corpus text")
        assert wait_text(alice, "corpus text").show_padlock
        alice.create_chat(bob).send_text("corpus reply")
        assert wait_text(bob, "corpus reply").show_padlock

    with run.phase("file"):
        payload = os.urandom(20_000)
        path = tmp_path / "corpus.bin"
        path.write_bytes(payload)
        bob.create_chat(alice).send_message(text="corpus file", file=str(path))
        msg = wait_text(alice, "corpus file")
        assert Path(msg.file).read_bytes() == payload

    with run.phase("file-large"):
        # Large enough for the client's download-on-demand limit (a pre-message, if any).
        payload = os.urandom(300_000)
        path = tmp_path / "corpus-large.bin"
        path.write_bytes(payload)
        bob.create_chat(alice).send_message(text="corpus large file", file=str(path))
        msg = wait_text(alice, "corpus large file")
        assert Path(msg.file).read_bytes() == payload

    with run.phase("image"):
        alice_chat = alice.create_chat(bob)
        alice_chat.send_message(text="corpus image", file=make_png(tmp_path / "corpus.png"))
        image = wait_text(bob, "corpus image")
        assert image.view_type == "Image", image.view_type

    with run.phase("reaction"):
        sent = [m for m in alice_chat.get_messages() if m.get_snapshot().text == "corpus image"][0]
        image.message.send_reaction("\N{THUMBS UP SIGN}")
        wait_event(alice, EventType.REACTIONS_CHANGED, lambda e: e.msg_id == sent.id)
        until(lambda: sent.get_reactions() is not None, "reaction")

    with run.phase("edit"):
        sent = alice_chat.send_text("corpus before edit")
        received = wait_text(bob, "corpus before edit")
        alice._rpc.send_edit_request(alice.id, sent.id, "corpus after edit")
        until(lambda: received.message.get_snapshot().text == "corpus after edit", "edit")

    with run.phase("delete"):
        sent = alice_chat.send_text("corpus to delete")
        received = wait_text(bob, "corpus to delete")
        alice._rpc.delete_messages_for_all(alice.id, [sent.id])
        until(lambda: not bob._rpc.get_existing_msg_ids(bob.id, [received.id]), "delete")

    with run.phase("read-receipt"):
        sent = alice_chat.send_text("corpus please read")
        received = wait_text(bob, "corpus please read")
        bob.mark_seen_messages([received.message])
        wait_event(alice, EventType.MSG_READ, lambda e: e.msg_id == sent.id)

    with run.phase("ephemeral-timer"):
        alice_chat.set_ephemeral_timer(86400)
        bob_chat = chat_of(bob, image)
        until(lambda: bob._rpc.get_chat_ephemeral_timer(bob.id, bob_chat.id) == 86400, "timer")
        alice_chat.set_ephemeral_timer(0)
        until(lambda: bob._rpc.get_chat_ephemeral_timer(bob.id, bob_chat.id) == 0, "timer off")

    with run.phase("securejoin-group"):
        qr_group = alice.create_group("corpus qr group")
        carol.secure_join(qr_group.get_qr_code())
        alice.wait_for_securejoin_inviter_success()
        carol.wait_for_securejoin_joiner_success()
        qr_group.send_text("corpus qr group text")
        msg = wait_text(carol, "corpus qr group text")
        assert chat_of(carol, msg).get_basic_snapshot().chat_type == "Group"

    bob_contact = alice.get_contact_by_addr(logins["bob"].addr)
    carol_contact = alice.get_contact_by_addr(logins["carol"].addr)
    with run.phase("group-create"):
        group = alice.create_group("corpus group")
        group.add_contact(bob_contact, carol_contact)
        group.send_text("corpus group created")
        member_chats = {}
        for name, member in (("bob", bob), ("carol", carol)):
            msg = wait_text(member, "corpus group created")
            chat = chat_of(member, msg)
            assert chat.get_basic_snapshot().chat_type == "Group", name
            chat.accept()  # a group one was added to is a contact request until accepted
            member_chats[name] = (member, chat)

    with run.phase("group-rename"):
        group.set_name("corpus group renamed")
        for member, chat in member_chats.values():
            until(lambda: chat.get_basic_snapshot().name == "corpus group renamed", "rename")

    with run.phase("group-avatar"):
        group.set_image(make_png(tmp_path / "avatar.png", 64, 64))
        for member, chat in member_chats.values():
            until(lambda: chat.get_basic_snapshot().profile_image, "avatar")

    with run.phase("group-member-remove"):
        group.remove_contact(carol_contact)
        bob_group, carol_group = member_chats["bob"][1], member_chats["carol"][1]
        until(lambda: len(bob_group.get_contacts()) == 2, "removed at bob")
        until(lambda: not carol_group.can_send(), "removed at carol")

    with run.phase("group-member-add"):
        group.add_contact(carol_contact)
        until(lambda: len(bob_group.get_contacts()) == 3, "added at bob")
        carol_group = until(lambda: sendable_group(carol, "corpus group renamed"), "added at carol")

    with run.phase("group-text"):
        carol_group.send_text("corpus carol in group")
        for member in (alice, bob):
            assert wait_text(member, "corpus carol in group").show_padlock

    with run.phase("webxdc"):
        app = alice_chat.send_message(text="corpus app", file=make_xdc(tmp_path / "corpus.xdc"))
        bob_app = wait_text(bob, "corpus app")
        assert bob_app.view_type == "Webxdc", bob_app.view_type

    with run.phase("webxdc-update"):
        bob_app.message.send_webxdc_status_update({"payload": {"from": "bob"}}, "bob played")
        wait_event(alice, EventType.WEBXDC_STATUS_UPDATE, lambda e: e.msg_id == app.id)
        app.send_webxdc_status_update({"payload": {"from": "alice"}}, "alice played")
        wait_event(bob, EventType.WEBXDC_STATUS_UPDATE, lambda e: e.msg_id == bob_app.id)
        assert {u["payload"]["from"] for u in app.get_webxdc_status_updates()} == {"alice", "bob"}

    with run.phase("channel"):
        channel = alice.create_broadcast("corpus channel")
        bob.secure_join(channel.get_qr_code())
        bob.wait_for_securejoin_joiner_success()
        channel.send_text("corpus channel post")
        msg = wait_text(bob, "corpus channel post")
        assert msg.show_padlock

    multi_device(run, deltachat, alice, bob, alice_chat, tmp_path)


def multi_device(run, deltachat, alice, bob, alice_chat, tmp_path):  # noqa: F811
    """A second device of alice from a backup; with copies to self on, the devices keep each
    other informed by messages to their own address."""
    with run.phase("second-device", sends=False):
        backups = tmp_path / "backup"
        backups.mkdir()
        alice.export_backup(backups)
        [backup] = list(backups.iterdir())
        alice2 = deltachat.add_account()
        alice2.import_backup(backup)
        assert alice2.is_configured()
        alice2.bring_online()
        run.clients.append(alice2)
        for device in (alice, alice2):
            device.set_config("bcc_self", "1")

    with run.phase("self-copy"):
        alice_chat.send_text("corpus from the first device")
        wait_text(bob, "corpus from the first device")
        until(lambda: "corpus from the first device" in texts(alice2, alice_chat.id), "copy on device 2")
        alice2.get_chat_by_id(alice_chat.id).send_text("corpus from the second device")
        wait_text(bob, "corpus from the second device")
        until(lambda: "corpus from the second device" in texts(alice, alice_chat.id), "copy on device 1")

    with run.phase("sync"):
        alice_chat.pin()
        until(lambda: alice2.get_chat_by_id(alice_chat.id).get_basic_snapshot().pinned, "pin synced")
        alice.set_config("displayname", "Alice Corpus")
        until(lambda: alice2.get_config("displayname") == "Alice Corpus", "name synced")
