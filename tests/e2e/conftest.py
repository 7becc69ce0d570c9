"""Fixtures of the end-to-end tests: a running local relay, accounts, mail clients.

The tests talk to the relay only as a mail client or a peer server would (IMAP, SMTP on the
public ports), plus a look at the files SPEC §1.5 defines. If a relay started by
`scripts/relay start` is already running it is used as is; otherwise the session starts a
fresh one in its own state directory (with push notifications pointed at a local mock
server), and stops and removes it at the end.
"""

import configparser
import gzip
import http.server
import imaplib
import json
import os
import re
import secrets
import shutil
import smtplib
import ssl
import string
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RELAY = REPO / "scripts" / "relay"
# The command that runs scripts/relay: itself, or (CHATMAIL_E2E_RELAY, e.g. set by
# `scripts/e2e --debian13`) a wrapper that runs it in another distribution's root.
RELAY_CMD = os.environ.get("CHATMAIL_E2E_RELAY", "").split() or [str(RELAY)]
# The prefix that runs a program where the relay runs (set by `scripts/e2e --debian13` to
# enter the Debian 13 root), for Postfix's queue tools.
RUN_CMD = os.environ.get("CHATMAIL_E2E_RUN", "").split()
# The sample messages: the repository's corpus (the filter's tests read the same files).
TESTDATA = Path(os.environ.get("CHATMAIL_TESTDATA", REPO / "filtermail" / "tests" / "data"))
RUN_DIR = Path(os.environ.get("CHATMAIL_RELAY_RUN", "/run/chatmail-local"))
E2E_STATE = Path(os.environ.get("CHATMAIL_E2E_STATE", "/var/lib/chatmail-e2e"))
NOTIFY_PORT = int(os.environ.get("CHATMAIL_E2E_NOTIFY_PORT", "19989"))
HOST = "127.0.0.1"
DEADLINE = 30  # seconds to wait for a delivery
SMALL_QUOTA_MB = 2


def tls_context():
    """The relay's certificate is self-signed, as on every IP-only relay."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def peer_smtp():
    """Port 25 as another relay connects: STARTTLS (mandatory), then EHLO again."""
    conn = smtplib.SMTP(HOST, 25, timeout=DEADLINE)
    conn.ehlo("peer.example")
    conn.starttls(context=tls_context())
    conn.ehlo("peer.example")
    return conn


def assert_cleartext_refused(sender, recipient):
    """Cleartext to `recipient` is refused from our user `sender` (submission) and from
    another server (port 25)."""
    _, plain = load_eml("plain.eml", sender.addr, recipient.addr)
    with pytest.raises(smtplib.SMTPDataError):
        sender.send(recipient.addr, plain)
    _, plain25 = load_eml("plain.eml", "someone@[127.0.0.2]", recipient.addr)
    with peer_smtp() as conn, pytest.raises(smtplib.SMTPDataError):
        conn.sendmail("someone@[127.0.0.2]", [recipient.addr], plain25)


def quota_bytes(relay):
    """The running relay's max_mailbox_size in bytes; skips a test when it is too large to
    fill."""
    quota = relay.ini.get("max_mailbox_size", "500M").strip().upper().rstrip("B")
    if not quota.endswith("M") or int(quota[:-1]) > 8:
        pytest.skip("the running relay's quota is too large to fill in a test")
    return int(quota[:-1]) * 1048576


@dataclass
class QuotaCrossing:
    """What `cross_quota_warning` planted and sent."""

    size: int  # of each planted message, as Dovecot counts it (S=)
    planted: list  # the planted files, oldest first
    msgid: str  # of the message that crossed the line


def cross_quota_warning(relay, account, limit):
    """Plants messages ten days old worth just under 75% of `account`'s quota `limit`
    (Dovecot counts the S= size; the account no longer enforces encryption), then has
    another server deliver a message of a fifth of the quota, which crosses the 75% line:
    Dovecot's quota_warning runs chatmail-quota-expire. Returns once the oldest planted
    message is gone."""
    maildir = relay.maildir(account.addr)
    (maildir / "enforceE2EEincoming").unlink()
    owner = os.stat(maildir)
    cur = maildir / "cur"
    cur.mkdir(exist_ok=True)
    os.chown(cur, owner.st_uid, owner.st_gid)
    size = limit // 10
    old = int(time.time()) - 10 * 86400
    planted = []
    for i in range(int(limit * 0.75) // size - 1):
        f = cur / f"{old + i}.M{i}P1.e2e,S={size},W={size}:2,S"
        f.write_bytes(b"Subject: old\r\n\r\n" + b"x" * (size - 19))
        os.chown(f, owner.st_uid, owner.st_gid)
        os.utime(f, (old + i, old + i))
        planted.append(f)
    (maildir / "maildirsize").unlink(missing_ok=True)
    msgid, data = load_eml("plain.eml", "someone@[127.0.0.2]", account.addr)
    data = data.replace(b"Hi!", b"Hi!\r\n" + (b"y" * 998 + b"\r\n") * (limit // 5 // 1000))
    with peer_smtp() as conn:
        assert conn.sendmail("someone@[127.0.0.2]", [account.addr], data) == {}
    assert account.wait_for_message(msgid) is not None
    deadline = time.monotonic() + DEADLINE
    while planted[0].exists():
        assert time.monotonic() < deadline, "the oldest message was not expired"
        time.sleep(0.1)
    return QuotaCrossing(size, planted, msgid)


def admin(relay, *args, stdin=""):
    """Runs chatmail-admin on the relay's config; returns the completed process."""
    exe = relay.bin("chatmail-admin")
    if not exe.exists():
        exe = REPO / "target" / "debug" / "chatmail-admin"
    cmd = [str(exe), "--config", str(relay.ini_path), *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120)


def admin_ok(relay, *args, stdin=""):
    proc = admin(relay, *args, stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def new_invitation(relay, *args):
    """`chatmail-admin invite create ARGS`: (token, dcaccount URL)."""
    out = admin_ok(relay, "invite", "create", *args)
    m = re.fullmatch(r"invitation ([a-z0-9]+) uses \d+ expires \S+ (dcaccount:\S+)\n", out)
    assert m, out
    return m.group(1), m.group(2)


def newemail(relay, url):
    """POSTs, as Delta Chat does for a `dcaccount:` URL, to the relay's newemail CGI over
    HTTPS, trusting the relay's own certificate (and nothing else); returns (status, JSON)."""
    url = url.removeprefix("dcaccount:")
    assert url.startswith(f"https://{relay.ini['mail_domain']}/new"), url
    ctx = ssl.create_default_context(cafile=str(relay.state / "tls" / "cert.pem"))
    req = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=DEADLINE) as resp:
            assert resp.headers.get_content_type() == "application/json"
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        assert e.headers.get_content_type() == "application/json"
        return e.code, json.loads(e.read())


def auth_mode():
    """How Dovecot asks doveauth: lua (HTTP /create, which the CGI also uses) or dict."""
    return os.environ.get("CHATMAIL_RELAY_AUTH", "lua")


class NotificationServer:
    """A local stand-in for notifications.delta.chat: records every POST body."""

    def __init__(self, port):
        self.requests = []
        self.status = 200
        self.cond = threading.Condition()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode("utf-8", "replace")
                with outer.cond:
                    outer.requests.append((self.path, body))
                    outer.cond.notify_all()
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((HOST, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self, token):
        with self.cond:
            return sum(1 for _, body in self.requests if body == token)

    def wait_for(self, token, times=1, timeout=DEADLINE):
        """Waits until `token` has been posted at least `times` times."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while sum(1 for _, body in self.requests if body == token) < times:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Relay:
    state: Path
    started_here: bool
    notifications: NotificationServer | None = None
    ini: dict = field(default_factory=dict)

    @property
    def ini_path(self):
        return self.state / "chatmail.ini"

    @property
    def domain(self):
        bare = self.ini["mail_domain"]
        return f"[{bare}]" if re.fullmatch(r"[0-9.]+", bare) else bare

    @property
    def host(self):
        """The address its mail and HTTPS ports listen on: its IP-only domain (127.0.0.N for
        `scripts/relay --instance N`), else 127.0.0.1."""
        bare = self.ini["mail_domain"]
        return bare if re.fullmatch(r"[0-9.]+", bare) else HOST

    @property
    def metrics_url(self):
        host = self.ini.get("metrics_host", HOST)
        return f"http://{host}:{int(self.ini.get('metrics_port', 10089))}/metrics"

    @property
    def mailboxes_dir(self):
        return Path(self.ini.get("mailboxes_dir", f"/home/vmail/mail/{self.ini['mail_domain']}"))

    def bin(self, name):
        return self.state / "bin" / name

    def has(self, name):
        return self.bin(name).exists()

    def require(self, *names):
        missing = [n for n in names if not self.has(n)]
        if missing:
            pytest.skip(f"not built yet: {', '.join(missing)}")

    def maildir(self, addr):
        return self.mailboxes_dir / addr

    def postfix(self, tool, *args):
        """Runs one of Postfix's tools (postqueue, postsuper) on the relay's instance."""
        cmd = [*RUN_CMD, tool, "-c", str(self.state / "postfix"), *map(str, args)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    def queue(self):
        """The relay's Postfix queue: one dict per message (`postqueue -j`)."""
        proc = self.postfix("postqueue", "-j")
        assert proc.returncode == 0, proc.stderr
        return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]

    def postfix_log(self):
        return (self.state / "log" / "postfix.log").read_text(errors="replace")

    def message_files(self):
        """Every message file of every mailbox (any folder's new/cur/tmp), as path -> bytes,
        decompressed (the relay's Dovecot stores mail gzipped)."""
        out = {}
        for f in self.mailboxes_dir.glob("*@*/**/*"):
            if f.is_file() and f.parent.name in ("new", "cur", "tmp"):
                data = f.read_bytes()
                out[f] = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        return out

    def run_as_vmail(self, *args, **kw):
        cmd = ["setpriv", "--reuid=vmail", "--regid=vmail", "--init-groups", *map(str, args)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


def relay_running():
    if not RELAY.exists():
        return None
    out = subprocess.run([*RELAY_CMD, "status"], capture_output=True, text=True).stdout
    up = {m.group(1) for m in re.finditer(r"^(\S+)\s+running", out, re.M)}
    if {"postfix", "dovecot", "doveauth"} <= up:
        state = (RUN_DIR / "state_dir").read_text().strip()
        return Path(state)
    return None


def load_ini(path):
    parser = configparser.RawConfigParser(inline_comment_prefixes=None)
    parser.read(path)
    return dict(parser["params"])


@pytest.fixture(scope="session")
def relay():
    state = relay_running()
    if state is not None:
        rel = Relay(state=state, started_here=False)
        rel.ini = load_ini(rel.ini_path)
        url = rel.ini.get("notification_url", "")
        m = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/.*", url)
        if m:
            try:
                rel.notifications = NotificationServer(int(m.group(1)))
            except OSError:
                pass
        yield rel
        if rel.notifications:
            rel.notifications.close()
        return

    if E2E_STATE.exists():
        shutil.rmtree(E2E_STATE)
    notifications = NotificationServer(NOTIFY_PORT)
    env = dict(os.environ)
    env["CHATMAIL_RELAY_DIR"] = str(E2E_STATE)
    env["CHATMAIL_NOTIFICATION_URL"] = f"http://{HOST}:{NOTIFY_PORT}/notify"
    # A small quota lets a test fill a mailbox to the quota warning (SPEC §7.5).
    env["CHATMAIL_INI_SET"] = f"max_mailbox_size={SMALL_QUOTA_MB}M"
    proc = subprocess.run([*RELAY_CMD, "start"], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        subprocess.run([*RELAY_CMD, "stop"], env=env)
        notifications.close()
        pytest.fail(f"scripts/relay start failed:\n{proc.stderr}\n{proc.stdout}")
    rel = Relay(state=E2E_STATE, started_here=True, notifications=notifications)
    rel.ini = load_ini(rel.ini_path)
    yield rel
    subprocess.run([*RELAY_CMD, "stop"], env=env, capture_output=True)
    notifications.close()
    if not os.environ.get("CHATMAIL_E2E_KEEP"):
        shutil.rmtree(E2E_STATE, ignore_errors=True)


@pytest.fixture
def invite_only(relay):
    """The relay in invite-only registration for one test, then back to its mode before."""
    before = admin_ok(relay, "registration", "status").split()[-1]
    admin_ok(relay, "registration", "invite-only")
    yield
    admin_ok(relay, "registration", before)


def account_maker(relay):
    """A function that makes a fresh (not yet created) login on `relay`."""

    def make():
        # "ci-" marks test accounts: chatmail-fsreport counts them apart from real users.
        n = int(relay.ini.get("username_max_length", 9)) - 3
        local = "ci-" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(n))
        password = secrets.token_urlsafe(15)
        return Account(relay, f"{local}@{relay.domain}", password)

    return make


@pytest.fixture
def make_account(relay):
    """Returns a function that makes a fresh (not yet created) login."""
    return account_maker(relay)


class Account:
    def __init__(self, relay, addr, password):
        self.relay = relay
        self.addr = addr
        self.password = password

    def imap(self):
        conn = imaplib.IMAP4_SSL(self.relay.host, 993, ssl_context=tls_context(), timeout=DEADLINE)
        conn.login(self.addr, self.password)
        return conn

    def create(self):
        """The first login creates the account (SPEC §3.4)."""
        conn = self.imap()
        conn.logout()
        return self

    def smtp(self, port=465):
        if port == 465:
            conn = smtplib.SMTP_SSL(self.relay.host, 465, context=tls_context(), timeout=DEADLINE)
        else:
            conn = smtplib.SMTP(self.relay.host, port, timeout=DEADLINE)
            conn.starttls(context=tls_context())
        conn.login(self.addr, self.password)
        return conn

    def send(self, to, data, port=465, mail_from=None):
        with self.smtp(port) as conn:
            return conn.sendmail(mail_from or self.addr, to if isinstance(to, list) else [to], data)

    def wait_for_message(self, message_id, timeout=DEADLINE):
        """Polls INBOX until a message with this Message-ID arrives; returns its bytes."""
        deadline = time.monotonic() + timeout
        conn = self.imap()
        try:
            while True:
                conn.select("INBOX")
                typ, data = conn.search(None, "HEADER", "Message-ID", message_id)
                ids = data[0].split() if typ == "OK" and data and data[0] else []
                if ids:
                    typ, msg = conn.fetch(ids[-1], "(RFC822)")
                    return msg[0][1]
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.2)
        finally:
            conn.logout()


def load_eml(name, from_addr, to_addr, subject="e2e test"):
    """A sample message of the shared corpus with its placeholders filled and a unique
    Message-ID; returns (message-id, bytes with CRLF line ends)."""
    text = (TESTDATA / name).read_text()
    text = text.replace("{from_addr}", from_addr).replace("{to_addr}", to_addr)
    text = text.replace("{subject}", subject)
    msgid = f"<{uuid.uuid4().hex}@e2e.test>"
    text, n = re.subn(r"(?im)^Message-ID:.*$", f"Message-ID: {msgid}", text, count=1)
    if n == 0:
        text = f"Message-ID: {msgid}\n" + text
    data = text.replace("\r\n", "\n").replace("\n", "\r\n").encode()
    return msgid, data


def metadata_call(conn, *args):
    """Runs an IMAP METADATA command (RFC 5464; imaplib has no wrapper) and returns the
    untagged METADATA data."""
    imaplib.Commands.setdefault(args[0], ("AUTH", "SELECTED"))
    typ, data = conn._simple_command(*args)
    assert typ == "OK", data
    return conn._untagged_response(typ, data, "METADATA")[1]


def metadata_get(conn, entry, mailbox="INBOX"):
    """The METADATA response for one entry, flattened to text (values may be literals)."""
    data = metadata_call(conn, "GETMETADATA", mailbox, entry)
    parts = []
    for item in data:
        if isinstance(item, tuple):
            parts.extend(x.decode("utf-8", "replace") for x in item)
        elif item:
            parts.append(item.decode("utf-8", "replace"))
    return " ".join(parts)


def metadata_set(conn, entry, value, mailbox="INBOX"):
    metadata_call(conn, "SETMETADATA", mailbox, f'({entry} "{value}")')
