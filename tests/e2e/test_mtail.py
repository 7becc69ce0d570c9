"""The reference's mtail program (delivered_mail.mtail, read in place from
../shared/reference/mtail) keeps counting with this relay: Debian's mtail runs it over the
relay's logs fed as a deployed relay feeds it (`journalctl -f -o short-iso -n 0 | mtail
--progs /etc/mtail --logs -`), and each counter our services feed moves by exactly what
the traffic should make it move, while warning_count stays put."""

import os
import re
import secrets
import shutil
import smtplib
import socket
import string
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import (
    DEADLINE,
    REPO,
    RUN_DIR,
    Account,
    admin_ok,
    cross_quota_warning,
    load_eml,
    peer_smtp,
    quota_bytes,
)

REFERENCE = Path(os.environ.get("CHATMAIL_REFERENCE", REPO.parent / "shared" / "reference"))
PROGRAM_DIR = REFERENCE / "mtail"

# Each log file of the local relay and the syslog identifier its lines carry in a deployed
# relay's journal. Our daemons' files hold their stderr as is; Dovecot's lines start with its
# own timestamp, which the journal has apart. Dovecot's log is fed for the lines it writes
# for our chatmail-quota-expire (and its deliveries); Postfix's is not: its counters follow
# Postfix's own logging, and queue retries of other tests' mail would log its warnings here.
SERVICE_LOGS = {
    "doveauth.log": "doveauth",
    "lastlogin.log": "lastlogin",
    "chatmail-metadata.log": "chatmail-metadata",
    "filtermail.log": "filtermail",
    "filtermail-incoming.log": "filtermail",
    "filtermail-transport.log": "filtermail",
    "chatmail-exporter.log": "chatmail-exporter",
}
DOVECOT_LOG = "dovecot.log"
# The counters the reference's program defines.
PROGRAM_COUNTERS = set(re.findall(r"^counter (\w+)$", (PROGRAM_DIR / "delivered_mail.mtail").read_text(), re.M)) if (
    PROGRAM_DIR / "delivered_mail.mtail"
).exists() else set()
SYSLOG_STAMP = re.compile(r"^[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d ")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def journal_message(name, line):
    """The `ident[pid]: message` part of the journal line a log file's line becomes, or
    None for lines the journal would not have (scripts/relay's start markers)."""
    if line.startswith("--- ") or not line.strip():
        return None
    if name == DOVECOT_LOG:
        # Dovecot logs through syslog as "dovecot", without the "Info: " of its own files.
        return "dovecot[1]: " + SYSLOG_STAMP.sub("", line).replace(": Info: ", ": ", 1)
    ident = SERVICE_LOGS[name]
    pid_file = RUN_DIR / f"{name.removesuffix('.log')}.pid"
    pid = pid_file.read_text().strip() if pid_file.exists() else "1"
    return f"{ident}[{pid}]: {line}"


class Journal:
    """Follows the relay's log files from their current end (`-n 0`) and writes each new line
    to `out` as `journalctl -o short-iso` prints it."""

    def __init__(self, log_dir, out):
        self.out = out
        self.host = socket.gethostname().split(".")[0]
        self.files = {}
        for name in [*SERVICE_LOGS, DOVECOT_LOG]:
            path = log_dir / name
            self.files[name] = [path, path.stat().st_size if path.exists() else 0, b""]
        self.lines = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def poll(self):
        for name, state in self.files.items():
            path, offset, partial = state
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    data = f.read()
            except FileNotFoundError:
                continue
            state[1] = offset + len(data)
            *complete, state[2] = (partial + data).split(b"\n")
            for raw in complete:
                msg = journal_message(name, raw.decode("utf-8", "replace"))
                if msg is None:
                    continue
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                line = f"{stamp} {self.host} {msg}"
                self.lines.append(line)
                self.out.write((line + "\n").encode())
        self.out.flush()

    def run(self):
        while not self.stop.is_set():
            self.poll()
            time.sleep(0.05)

    def close(self):
        self.stop.set()
        self.thread.join()


class Mtail:
    def __init__(self, relay, work):
        exe = shutil.which("mtail")
        assert exe, "Debian's mtail is not installed (scripts/install-deps)"
        assert (PROGRAM_DIR / "delivered_mail.mtail").exists(), (
            f"the reference's mtail program is not in {PROGRAM_DIR} (CHATMAIL_REFERENCE)"
        )
        self.port = free_port()
        self.log = open(work / "mtail.log", "w")
        # Debian 12's mtail 3.0.0~rc50 takes `--logs -` for a file name pattern and reads
        # nothing; /dev/stdin is the same pipe.
        self.proc = subprocess.Popen(
            [exe, "--progs", str(PROGRAM_DIR), "--logs", "/dev/stdin", "--address", "127.0.0.1",
             "--port", str(self.port), "--logtostderr"],
            stdin=subprocess.PIPE,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + DEADLINE
        while True:
            assert self.proc.poll() is None, (work / "mtail.log").read_text()
            try:
                if set(self.counters()) == PROGRAM_COUNTERS:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "mtail did not start"
            time.sleep(0.1)
        self.journal = Journal(relay.state / "log", self.proc.stdin)

    def counters(self):
        """Every counter the program defines, by name."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        out = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                name = s.name.removesuffix("_total")
                if s.labels.get("prog") == "delivered_mail.mtail" and name in PROGRAM_COUNTERS:
                    out[name] = s.value
        return out

    def expect(self, before, moves):
        """Waits until every counter of `moves` has moved by exactly its value from `before`
        and every other counter has stayed; a second look after a pause
        catches late counts."""
        want = {name: before[name] + moves.get(name, 0) for name in before}
        deadline = time.monotonic() + DEADLINE
        while self.counters() != want and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)
        now = self.counters()
        moved = {n: now[n] - before[n] for n in now if now[n] != before[n]}
        lines = "\n".join(self.journal.lines)
        assert now == want, f"moved {moved}, expected {moves}; fed:\n{lines}"
        return now

    def close(self):
        self.journal.close()
        self.proc.stdin.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def mtail(relay, tmp_path_factory):
    relay.require("doveauth", "filtermail")
    m = Mtail(relay, tmp_path_factory.mktemp("mtail"))
    yield m
    m.close()


def user_account(relay):
    """A login whose name does not start with ci- (mtail counts those apart)."""
    n = int(relay.ini.get("username_max_length", 9))
    local = "".join(secrets.choice(string.ascii_lowercase) for _ in range(n))
    return Account(relay, f"{local}@{relay.domain}", secrets.token_urlsafe(15))


def test_mtail_counts_what_our_services_log(relay, make_account, mtail):
    before = mtail.counters()
    a, b = make_account().create(), make_account().create()
    user_account(relay).create()
    # A tombstoned address is refused ("registration rejected: "); a short password is
    # refused too, but the reference logs no "registration rejected" for it either.
    gone = make_account().create()
    admin_ok(relay, "delete", gone.addr)
    with pytest.raises(Exception):
        gone.imap()
    short = make_account()
    short.password = "short"
    with pytest.raises(Exception):
        short.imap()

    msgid, data = load_eml("encrypted.eml", a.addr, b.addr)
    assert a.send(b.addr, data) == {}
    assert b.wait_for_message(msgid) is not None
    _, plain = load_eml("plain.eml", a.addr, b.addr)
    with pytest.raises(smtplib.SMTPDataError):
        a.send(b.addr, plain)

    peer = "someone@[127.0.0.2]"
    msgid_in, data = load_eml("encrypted.eml", peer, b.addr)
    _, plain = load_eml("plain.eml", peer, b.addr)
    msgid_report, report = load_eml("mailer-daemon.eml", "", b.addr)
    report = report.replace(b"MAILER-DAEMON@example.org", b"MAILER-DAEMON@[127.0.0.2]")
    report = report.replace(b"<owner-ups-mib@CS.UTK.EDU>", f"<{b.addr}>".encode())
    with peer_smtp() as conn:
        assert conn.sendmail(peer, [b.addr], data) == {}
        with pytest.raises(smtplib.SMTPDataError):
            conn.sendmail(peer, [b.addr], plain)
        assert conn.sendmail("", [b.addr], report) == {}
    assert b.wait_for_message(msgid_in) is not None
    assert b.wait_for_message(msgid_report) is not None

    mtail.expect(
        before,
        {
            "created_accounts": 4,
            "created_ci_accounts": 3,
            "created_nonci_accounts": 1,
            "rejected_registrations": 1,
            "outgoing_encrypted_mail_count": 1,
            "outgoing_unencrypted_mail_count": 1,
            "filtered_outgoing_mail_count": 2,
            "incoming_encrypted_mail_count": 1,
            # The delivery report is cleartext, then a mailer-daemon report (SPEC §6.7).
            "incoming_unencrypted_mail_count": 2,
            "incoming_mailer_daemon_mail_count": 1,
            "filtered_incoming_mail_count": 4,
            "rejected_unencrypted_mail_count": 2,
            # Dovecot: the three messages that reached b's INBOX.
            "delivered_mail": 3,
        },
    )


def test_mtail_counts_quota_expiry(relay, make_account, mtail):
    """Dovecot's quota_warning runs chatmail-quota-expire, whose line reaches the journal
    through Dovecot (as a deployed relay has it)."""
    relay.require("chatmail-quota-expire")
    limit = quota_bytes(relay)
    start = mtail.counters()
    b = make_account().create()
    # Counted before the quota expiry's own figures are looked at.
    before = mtail.expect(start, {"created_accounts": 1, "created_ci_accounts": 1})
    crossing = cross_quota_warning(relay, b, limit)
    removed = sum(1 for f in crossing.planted if not f.exists())
    # Dovecot logs the script's stderr as "quota-warning: Error: quota-expire: removed ...":
    # the service's name makes the reference's warning_count count every quota expiry.
    mtail.expect(
        before,
        {
            "incoming_unencrypted_mail_count": 1,
            "filtered_incoming_mail_count": 1,
            "delivered_mail": 1,
            "quota_expire_runs": 1,
            "quota_expire_removed_files": removed,
            "warning_count": 1,
        },
    )
    quota_lines = [line for line in mtail.journal.lines if "quota-expire: removed" in line]
    assert len(quota_lines) == 1 and "dovecot[1]: quota-warning: " in quota_lines[0], quota_lines
