"""Real Delta Chat clients against the local relay: accounts configured from dclogin: URLs
(self-signed certificate accepted), a SecureJoin handshake, end-to-end encrypted text in both
directions, a file, a verified group of three joined by QR code, and accounts made from an
invitation. Skipped when deltachat-rpc-client/-server (tests/e2e/requirements.txt) are not
installed."""

import os
import shutil
import signal
import time

import pytest

from conftest import admin_ok, auth_mode, new_invitation, newemail

rpc_client = pytest.importorskip("deltachat_rpc_client")

TIMEOUT = 120


def dclogin(acc, relay):
    ip = relay.ini["mail_domain"]
    return f"dclogin:{acc.addr}?p={acc.password}&v=1&ih={ip}&sh={ip}&ic=3"


@pytest.fixture
def deltachat(tmp_path):
    if shutil.which("deltachat-rpc-server") is None:
        pytest.skip("deltachat-rpc-server is not installed")
    with rpc_client.Rpc(accounts_dir=str(tmp_path / "accounts")) as rpc:
        yield rpc_client.DeltaChat(rpc)


def online_account(dc, relay, acc):
    account = dc.add_account()
    account.add_transport_from_qr(dclogin(acc, relay))
    assert account.is_configured()
    account.bring_online()
    return account


@pytest.fixture
def deadline():
    """The client API waits for events without a timeout: fail instead of hanging."""

    def expired(signum, frame):
        raise TimeoutError(f"no result within {TIMEOUT}s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TIMEOUT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def wait_text(account, text):
    """The next incoming message of `account` with this text (others are skipped)."""
    while True:
        msg = account.wait_for_incoming_msg().get_snapshot()
        if msg.text == text or msg.text.startswith(text + " ["):
            # A large message arrives as a placeholder first; the client fetches the rest
            # by itself (asked again if it has not started after a while).
            asked = time.monotonic() + 10
            while msg.download_state != "Done":
                assert msg.download_state != "Failure", msg
                if msg.download_state == "Available" and time.monotonic() > asked:
                    asked = float("inf")
                    try:
                        account._rpc.download_full_message(account.id, msg.id)
                    except rpc_client.JsonRpcError:
                        pass  # already scheduled
                time.sleep(0.2)
                msg = account.get_message_by_id(msg.id).get_snapshot()
            assert msg.text == text, msg.text
            return msg


def test_two_clients_exchange_encrypted_message(relay, make_account, deltachat, deadline):
    relay.require("filtermail", "chatmail-metadata")
    alice = online_account(deltachat, relay, make_account())
    bob = online_account(deltachat, relay, make_account())

    # SecureJoin: Bob scans Alice's QR code; the handshake's first message is the only
    # cleartext the relay lets through.
    qr = alice.get_qr_code()
    bob.secure_join(qr)
    alice.wait_for_securejoin_inviter_success()
    bob.wait_for_securejoin_joiner_success()

    chat = bob.create_chat(alice)
    chat.send_text("hello over the local relay")
    msg = wait_text(alice, "hello over the local relay")
    assert msg.show_padlock, "message was not end-to-end encrypted"

    # The answer goes the other way.
    alice.create_chat(bob).send_text("hello back")
    msg = wait_text(bob, "hello back")
    assert msg.show_padlock


def test_file_and_verified_group(relay, make_account, deltachat, deadline, tmp_path):
    relay.require("filtermail", "chatmail-metadata")
    alice = online_account(deltachat, relay, make_account())
    bob_login = make_account()
    bob = online_account(deltachat, relay, bob_login)
    carol = online_account(deltachat, relay, make_account())

    bob.secure_join(alice.get_qr_code())
    alice.wait_for_securejoin_inviter_success()
    bob.wait_for_securejoin_joiner_success()

    # A file (incompressible, well over one IMAP chunk) arrives intact and encrypted.
    payload = os.urandom(300_000)
    path = tmp_path / "report.bin"
    path.write_bytes(payload)
    bob.create_chat(alice).send_message(text="a file for you", file=str(path))
    msg = wait_text(alice, "a file for you")
    assert msg.show_padlock, "file message was not end-to-end encrypted"
    assert msg.file, msg
    with open(msg.file, "rb") as f:
        assert f.read() == payload

    # A verified group: Carol joins by scanning the group's QR code, Alice adds Bob.
    group = alice.create_group("e2e group")
    carol.secure_join(group.get_qr_code())
    alice.wait_for_securejoin_inviter_success()
    carol.wait_for_securejoin_joiner_success()
    bob_contact = alice.get_contact_by_addr(bob_login.addr)
    assert bob_contact is not None
    group.add_contact(bob_contact)
    group.send_text("hello group")
    group_chats = {}
    for name, member in (("bob", bob), ("carol", carol)):
        msg = wait_text(member, "hello group")
        assert msg.show_padlock, "group message was not end-to-end encrypted"
        chat = member.get_chat_by_id(msg.chat_id)
        assert chat.get_basic_snapshot().chat_type == "Group", name
        group_chats[name] = chat

    # Carol answers in the group: both others get it, encrypted, in a group of three.
    group_chats["carol"].send_text("carol here")
    for member in (alice, bob):
        msg = wait_text(member, "carol here")
        assert msg.show_padlock
        assert len(member.get_chat_by_id(msg.chat_id).get_contacts()) == 3


def test_invitation_makes_delta_chat_accounts(relay, deltachat, deadline, invite_only):
    """An invitation with two uses: two Delta Chat accounts that talk end-to-end encrypted,
    and a third request refused with a reason.

    Delta Chat reads the `dcaccount:` URL `chatmail-admin invite create` prints, but cannot
    fetch it from an IP-only relay: it trusts only its built-in web PKI roots (and, without
    checks, only hostnames starting with `_`), and a relay at 127.0.0.1 has a self-signed
    certificate. So the request it would make, an empty POST over verified HTTPS, is made
    here, and the account is configured from the `dclogin_url` the CGI adds for relays with
    self-signed certificates, as a self-signed relay's web page does."""
    relay.require("chatmail-newemail", "filtermail", "chatmail-metadata")
    token, url = new_invitation(relay, "--uses", "2", "--comment", "delta chat")
    probe = deltachat.add_account()
    qr = probe.check_qr(url)
    assert qr["kind"] == "account" and qr["domain"] == relay.ini["mail_domain"], qr
    with pytest.raises(rpc_client.JsonRpcError) as refused:
        probe.set_config_from_qr(url)
    assert "certificate" in str(refused.value).lower(), refused.value
    assert f"{token}\tuses_left=2" in admin_ok(relay, "invite", "list"), "a failed client used it"

    accounts = []
    for _ in range(2):
        status, body = newemail(relay, url)
        assert status == 200, body
        account = deltachat.add_account()
        account.add_transport_from_qr(body["dclogin_url"])
        assert account.is_configured()
        assert account.get_config("configured_addr") == body["email"]
        account.bring_online()
        accounts.append(account)
    if auth_mode() == "lua":
        status, body = newemail(relay, url)
        assert status == 403 and "invitation is not valid" in body["reason"], (status, body)

    alice, bob = accounts
    bob.secure_join(alice.get_qr_code())
    alice.wait_for_securejoin_inviter_success()
    bob.wait_for_securejoin_joiner_success()
    bob.create_chat(alice).send_text("invited and encrypted")
    msg = wait_text(alice, "invited and encrypted")
    assert msg.show_padlock, "message was not end-to-end encrypted"
