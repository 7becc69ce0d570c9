"""A real Delta Chat client against the local relay: two accounts configured from dclogin:
URLs (self-signed certificate accepted), a SecureJoin handshake, then an end-to-end
encrypted message. Skipped when deltachat-rpc-client/-server (tests/e2e/requirements.txt)
are not installed."""

import shutil
import signal

import pytest

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
    while True:
        msg = alice.wait_for_incoming_msg().get_snapshot()
        if msg.text == "hello over the local relay":
            break
    assert msg.show_padlock, "message was not end-to-end encrypted"
