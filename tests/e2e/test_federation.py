"""Two complete relays on one machine delivering to each other as relays on the internet do.

The session's relay (relay 1, 127.0.0.1) and a second one started here with `scripts/relay
--instance 2` (127.0.0.2, addresses name@[127.0.0.2], stopped and removed at the end of this
module unless it was running before). Mail between them goes through each side's transport
(filtermail transport mode): HTTPS `/mxdeliv` on the peer's nginx first, SMTP on the peer's
port 25 when that fails; the peer's incoming filter checks it. Real Delta Chat clients on both
relays: SecureJoin, text, a file, read receipts, a group with members on both relays; the peer
stopped and started again (the queue keeps the mail, delivery resumes, once); the peer's
`/mxdeliv` down (SMTP fallback); cleartext refused; the transport's counters by path.
"""

import contextlib
import http.client
import os
import re
import shutil
import signal
import smtplib
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import (
    DEADLINE,
    HOST,
    NOTIFY_PORT,
    RELAY_CMD,
    RUN_DIR,
    Relay,
    account_maker,
    auth_mode,
    load_eml,
    load_ini,
    tls_context,
)

rpc_client = pytest.importorskip("deltachat_rpc_client")

from test_deltachat import dclogin, wait_text  # noqa: E402  (after the importorskip)

# The second relay (another number beside a session relay that is not relay 1), its
# directories: scripts/relay's defaults for --instance N, and a state directory of the tests'
# own when it is started here.
INSTANCE = int(os.environ.get("CHATMAIL_E2E_INSTANCE2", "2"))
# The command that runs scripts/relay for relay 2 (CHATMAIL_E2E_RELAY2; `scripts/e2e
# --debian13` runs relay 1 in the Debian 13 root and relay 2 on this machine, so a Dovecot 2.4
# relay and a Dovecot 2.3 one federate); by default relay 1's.
RELAY2_CMD = os.environ.get("CHATMAIL_E2E_RELAY2", "").split() or RELAY_CMD
RUN2 = Path(os.environ.get("CHATMAIL_E2E_RUN2", f"/run/chatmail-local-{INSTANCE}"))
STATE2 = Path(os.environ.get("CHATMAIL_E2E_STATE2", f"/var/lib/chatmail-e2e-{INSTANCE}"))
TIMEOUT = 120


@contextlib.contextmanager
def within(seconds, what):
    """The client API waits for events without a timeout: fail instead of hanging."""

    def expired(signum, frame):
        raise TimeoutError(f"{what}: no result within {seconds}s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def deadline():
    with within(TIMEOUT, "test"):
        yield


def relay2_env(relay):
    """scripts/relay's environment for relay 2: its own directories (none of relay 1's
    settings), push notifications where relay 1 sends them (the session's mock server), no
    second build."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CHATMAIL_RELAY_DIR", "CHATMAIL_RELAY_RUN", "CHATMAIL_SOCKET_ROOT", "CHATMAIL_INI_SET")
    }
    env["CHATMAIL_RELAY_DIR"] = str(STATE2)
    env["CHATMAIL_RELAY_RUN"] = str(RUN2)
    env["CHATMAIL_NOTIFICATION_URL"] = relay.ini.get("notification_url", f"http://{HOST}:{NOTIFY_PORT}/notify")
    if relay.started_here:
        env["CHATMAIL_NO_BUILD"] = "1"
    return env


def relay2_cmd(relay, *args, check=True):
    proc = subprocess.run(
        [*RELAY2_CMD, "--instance", str(INSTANCE), *args],
        env=relay2_env(relay),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check:
        assert proc.returncode == 0, f"scripts/relay --instance {INSTANCE} {' '.join(args)}:\n{proc.stderr}"
    return proc


def relay2_running(relay):
    out = relay2_cmd(relay, "status", check=False).stdout
    up = {m.group(1) for m in re.finditer(r"^(\S+)\s+running", out, re.M)}
    return {"postfix", "dovecot", "doveauth", "nginx"} <= up


@pytest.fixture(scope="module")
def relay2(relay):
    """Relay 2: the one running already (`scripts/relay --instance 2 start`), else a fresh
    one, stopped and removed afterwards."""
    if relay2_running(relay):
        state = Path((RUN2 / "state_dir").read_text().strip())
        rel = Relay(state=state, started_here=False)
        rel.ini = load_ini(rel.ini_path)
        yield rel
        return
    if STATE2.exists():
        shutil.rmtree(STATE2)
    proc = relay2_cmd(relay, "start", check=False)
    if proc.returncode != 0:
        relay2_cmd(relay, "stop", check=False)
        pytest.fail(f"scripts/relay --instance {INSTANCE} start failed:\n{proc.stderr}\n{proc.stdout}")
    rel = Relay(state=STATE2, started_here=True)
    rel.ini = load_ini(rel.ini_path)
    yield rel
    relay2_cmd(relay, "stop", check=False)
    if not os.environ.get("CHATMAIL_E2E_KEEP"):
        shutil.rmtree(STATE2, ignore_errors=True)
        shutil.rmtree(RUN2, ignore_errors=True)


@pytest.fixture(scope="module")
def dc(tmp_path_factory, relay2):
    if shutil.which("deltachat-rpc-server") is None:
        pytest.skip("deltachat-rpc-server is not installed")
    accounts = tmp_path_factory.mktemp("federation") / "accounts"
    with rpc_client.Rpc(accounts_dir=str(accounts)) as rpc:
        yield rpc_client.DeltaChat(rpc)


def online(dc, rel):
    login = account_maker(rel)()
    account = dc.add_account()
    account.add_transport_from_qr(dclogin(login, rel))
    assert account.is_configured()
    account.bring_online()
    return account, login


@pytest.fixture(scope="module")
def pair(relay, relay2, dc):
    """Alice on relay 1 and Bob on relay 2, verified contacts by a SecureJoin: Bob scans
    Alice's QR code, and the handshake goes over both relays' transports."""
    relay.require("filtermail", "chatmail-metadata", "chatmail-exporter")
    with within(TIMEOUT, "SecureJoin across relays"):
        alice, alice_login = online(dc, relay)
        bob, bob_login = online(dc, relay2)
        bob.secure_join(alice.get_qr_code())
        alice.wait_for_securejoin_inviter_success()
        bob.wait_for_securejoin_joiner_success()
    return alice, alice_login, bob, bob_login


def delivered(rel):
    """The transport's counters of `rel`: (https, smtp, fallbacks to SMTP)."""
    with urllib.request.urlopen(rel.metrics_url, timeout=10) as r:
        text = r.read().decode()

    def value(pattern):
        m = re.search(rf"^{pattern} (\S+)$", text, re.M)
        assert m, f"{pattern} not served:\n{text}"
        return float(m.group(1))

    return (
        value(r'chatmail_transport_delivered_total\{path="https"\}'),
        value(r'chatmail_transport_delivered_total\{path="smtp"\}'),
        value("chatmail_transport_https_fallbacks_total"),
    )


def saved(rel, msgid):
    """How often the relay's Dovecot stored the message with this Message-ID (its LMTP log
    line per delivery to a mailbox)."""
    log = (rel.state / "log" / "dovecot.log").read_text(errors="replace")
    return log.count(f"msgid={msgid}: saved mail to INBOX")


def wait_for(check, what, timeout=DEADLINE):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def queued_for(rel, addr, queue_name=None):
    """The messages in the relay's Postfix queue for `addr` (in `queue_name`, if given)."""
    return [
        m
        for m in rel.queue()
        if any(r["address"] == addr for r in m["recipients"]) and queue_name in (None, m["queue_name"])
    ]


def flush(rel):
    """Asks the relay's Postfix to retry its deferred mail now (it would within minutes)."""
    proc = rel.postfix("postqueue", "-f")
    assert proc.returncode == 0, proc.stderr


# Every TCP port a relay listens on: Postfix (smtp, smtps, submission, both reinjections),
# Dovecot (imap, imaps), nginx, filtermail (outgoing, incoming SMTP and HTTP, transport),
# doveauth's /create (with Lua auth only: in dict mode Dovecot asks doveauth over its dict
# socket), chatmail-exporter.
PORTS = [25, 465, 587, 10025, 10026, 143, 993, 443, 10080, 10081, 10082, 10083, 10089]
if auth_mode() == "lua":
    PORTS.append(10084)


def test_each_relay_listens_on_its_own_address_and_answers_for_itself(relay, relay2):
    listeners = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True).stdout
    local = {line.split()[3] for line in listeners.splitlines()}
    for port in PORTS:
        assert f"{relay.host}:{port}" in local, (port, sorted(local))
        assert f"{relay2.host}:{port}" in local, (port, sorted(local))
        assert not {f"0.0.0.0:{port}", f"*:{port}", f"[::]:{port}"} & local, port
    # `account` prints a login of relay 2 and creates it there (its first login).
    out = relay2_cmd(relay, "account").stdout
    addr = re.search(r"address:\s+(\S+)", out).group(1)
    assert addr.endswith(f"@[{relay2.host}]"), out
    assert re.search(r"created:\s+yes", out), out
    assert (relay2.mailboxes_dir / addr / "password").is_file()
    assert not (relay.mailboxes_dir / addr).exists()


def test_securejoin_text_file_and_read_receipt_across_relays(relay, relay2, pair, deadline, tmp_path):
    alice, _, bob, bob_login = pair
    before1, before2 = delivered(relay), delivered(relay2)
    # The handshake ended in success on both sides (the fixture); Alice has Bob's key.
    contact = alice.get_contact_by_addr(bob_login.addr).get_snapshot()
    assert contact.e2ee_avail and contact.is_key_contact, contact

    alice.create_chat(bob).send_text("hello relay 2")
    msg = wait_text(bob, "hello relay 2")
    assert msg.show_padlock, "not end-to-end encrypted"

    # A file (incompressible, over nginx's default body limit once encrypted and encoded).
    payload = os.urandom(800_000)
    path = tmp_path / "report.bin"
    path.write_bytes(payload)
    sent = bob.create_chat(alice).send_message(text="a file from relay 2", file=str(path))
    msg = wait_text(alice, "a file from relay 2")
    assert msg.show_padlock
    with open(msg.file, "rb") as f:
        assert f.read() == payload

    # Alice reads it: her read receipt goes back to relay 2.
    alice.mark_seen_messages([alice.get_message_by_id(msg.id)])
    while sent.get_snapshot().state != rpc_client.const.MessageState.OUT_MDN_RCVD:
        bob.wait_for_event(rpc_client.const.EventType.MSG_READ)

    # Everything went over HTTPS /mxdeliv, both ways; nothing over SMTP.
    after1, after2 = delivered(relay), delivered(relay2)
    assert after1[0] - before1[0] >= 2, (before1, after1)  # text, read receipt
    assert after2[0] - before2[0] >= 1, (before2, after2)  # the file
    assert (after1[1], after2[1]) == (before1[1], before2[1]), "SMTP used although HTTPS is up"
    assert (after1[2], after2[2]) == (before1[2], before2[2])


def test_group_with_members_on_both_relays(relay, relay2, pair, dc, deadline):
    alice, _, bob, bob_login = pair
    carol, _ = online(dc, relay2)
    group = alice.create_group("two relays")
    carol.secure_join(group.get_qr_code())
    alice.wait_for_securejoin_inviter_success()
    carol.wait_for_securejoin_joiner_success()
    group.add_contact(alice.get_contact_by_addr(bob_login.addr))
    group.send_text("hello both relays")
    chats = {}
    for name, member in (("bob", bob), ("carol", carol)):
        msg = wait_text(member, "hello both relays")
        assert msg.show_padlock, name
        chats[name] = member.get_chat_by_id(msg.chat_id)
        assert chats[name].get_basic_snapshot().chat_type == "Group", name
    # Carol's answer goes to a member of her own relay and one of the other.
    chats["carol"].send_text("carol on relay 2")
    for member in (alice, bob):
        msg = wait_text(member, "carol on relay 2")
        assert msg.show_padlock
        assert len(member.get_chat_by_id(msg.chat_id).get_contacts()) == 3


def test_cleartext_between_relays_is_refused(relay, relay2):
    sender = account_maker(relay)().create()
    rcpt = account_maker(relay2)().create()
    # Relay 1's outgoing filter refuses it before it leaves.
    msgid, plain = load_eml("plain.eml", sender.addr, rcpt.addr)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        sender.send(rcpt.addr, plain)
    assert refused.value.smtp_code == 523, refused.value
    # Relay 2's incoming filter refuses it too, on both of a peer's paths: port 25 ...
    with smtplib.SMTP(relay2.host, 25, timeout=DEADLINE) as conn:
        conn.starttls(context=tls_context())
        with pytest.raises(smtplib.SMTPDataError) as refused:
            conn.sendmail(sender.addr, [rcpt.addr], plain)
    assert refused.value.smtp_code == 523, refused.value
    # ... and /mxdeliv through its nginx, where the encrypted message is taken.
    msgid_enc, encrypted = load_eml("encrypted.eml", sender.addr, rcpt.addr)
    answers = {}
    for name, body in (("plain", plain), ("encrypted", encrypted)):
        conn = http.client.HTTPSConnection(relay2.host, 443, context=tls_context(), timeout=DEADLINE)
        conn.request("POST", "/mxdeliv", body=body, headers={"X-Mail-From": sender.addr, "X-Mail-To": rcpt.addr})
        resp = conn.getresponse()
        answers[name] = (resp.status, resp.read().decode(errors="replace"))
        conn.close()
    assert answers["plain"][0] == 400 and answers["plain"][1].startswith("523"), answers
    assert answers["encrypted"] == (200, "250 OK"), answers
    wait_for(lambda: saved(relay2, msgid_enc) == 1, "the encrypted message")
    assert saved(relay2, msgid) == 0


def test_peer_down_then_back_delivers_once(relay, relay2, pair, dc, deadline):
    alice, alice_login, bob, bob_login = pair
    before = delivered(relay)
    relay2_cmd(relay, "stop")
    try:
        # `stop` stopped relay 2 only.
        assert relay2_cmd(relay, "status", check=False).returncode != 0
        assert subprocess.run([*RELAY_CMD, "status"], capture_output=True).returncode == 0
        alice.create_chat(bob).send_text("while relay 2 was down")
        msgid, data = load_eml("encrypted.eml", alice_login.addr, bob_login.addr)
        alice_login.send(bob_login.addr, data)
        # Relay 1 keeps both: tried, deferred, queued.
        wait_for(lambda: len(queued_for(relay, bob_login.addr, "deferred")) >= 2, "both deferred")
        assert delivered(relay)[:2] == before[:2]
        assert saved(relay2, msgid) == 0
    finally:
        relay2_cmd(relay, "start")
    flush(relay)
    dc.maybe_network()
    wait_text(bob, "while relay 2 was down")
    wait_for(lambda: not queued_for(relay, bob_login.addr), "relay 1's queue to empty")
    assert saved(relay2, msgid) == 1, "not delivered exactly once"
    after = delivered(relay)
    assert after[0] - before[0] >= 2 and after[1] == before[1], (before, after)


def restart_transport(relay):
    """Relay 1's transport remembers a host that took mail over SMTP for 30 minutes; start
    it afresh so later runs see HTTPS again."""
    pid = int((RUN_DIR / "filtermail-transport.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), "the transport to stop")
    env = dict(os.environ, CHATMAIL_RELAY_DIR=str(relay.state), CHATMAIL_NO_BUILD="1")
    proc = subprocess.run([*RELAY_CMD, "start"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr


def test_peer_without_mxdeliv_gets_smtp(relay, relay2, pair, deadline):
    alice, alice_login, bob, bob_login = pair
    before = delivered(relay)
    nginx = int((RUN2 / "nginx.pid").read_text())
    os.kill(nginx, signal.SIGQUIT)
    try:
        wait_for(lambda: not Path(f"/proc/{nginx}").exists(), "relay 2's nginx to stop")
        alice.create_chat(bob).send_text("over SMTP")
        wait_text(bob, "over SMTP")
        msgid, data = load_eml("encrypted.eml", alice_login.addr, bob_login.addr)
        alice_login.send(bob_login.addr, data)
        wait_for(lambda: saved(relay2, msgid) == 1, "the message over SMTP")
        after = delivered(relay)
        assert after[0] == before[0], ("HTTPS counted without nginx", before, after)
        assert after[1] - before[1] >= 2 and after[2] > before[2], (before, after)
    finally:
        relay2_cmd(relay, "start")
        restart_transport(relay)
