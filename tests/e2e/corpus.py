"""The messages a test run delivered, as corpus files: `MaildirCapture` copies every message
file the moment Dovecot delivers it (clients delete some from the server right after reading
them), `write_corpus` turns the copies back into what the client sent over SMTP and names
them by the step of the run that caused them. `LogWindow` reads what the relay logged
meanwhile."""

import email.parser
import email.policy
import gzip
import os
import re
import threading
import time
from dataclasses import dataclass, field
from email.utils import getaddresses
from pathlib import Path

POLL = 0.01  # seconds between two looks at the maildirs
MAX_CORPUS_MESSAGE = 256 * 1024  # larger messages are not kept
# Fields Dovecot's LMTP delivery puts on top of the message (Postfix's own Received lines
# are removed by lmtp_header_cleanup before delivery).
DELIVERY_FIELDS = ("return-path", "delivered-to", "received")
# The corpus's list of envelope recipients, one line per file: `name addr addr...`.
ENVELOPES = "envelopes.txt"
ENVELOPES_HEAD = "# file, then the RCPT TO addresses of its SMTP transaction (MAIL FROM is its From)"


@dataclass
class Delivery:
    """One message file as it appeared in one mailbox."""

    mailbox: str  # role of the mailbox owner
    name: str  # maildir base name (delivery time, unique per mailbox)
    data: bytes
    phase: int = -1


@dataclass
class Corpus:
    """One message the client sent, with every mailbox it reached."""

    phase: int
    kind: str
    data: bytes
    order: tuple
    mailboxes: set = field(default_factory=set)


class MaildirCapture:
    """Copies every message file that appears below the watched maildirs (new/ and cur/ of
    every folder), as soon as it appears, in a background thread."""

    def __init__(self, maildirs):
        self.maildirs = maildirs  # {role: Path}
        self.deliveries = []
        self.keys = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            self.poll()
            time.sleep(POLL)

    def poll(self):
        for role, root in self.maildirs.items():
            try:
                folders = [root] + [e.path for e in os.scandir(root) if e.name.startswith(".") and e.is_dir()]
            except FileNotFoundError:
                continue
            for folder in folders:
                for sub in ("new", "cur"):
                    self.poll_dir(role, Path(folder) / sub)

    def poll_dir(self, role, path):
        try:
            entries = list(os.scandir(path))
        except FileNotFoundError:
            return
        for entry in entries:
            base = entry.name.split(":", 1)[0]
            if (role, base) in self.keys:
                continue
            try:
                data = Path(entry.path).read_bytes()
            except FileNotFoundError:
                continue  # moved to cur/ or deleted meanwhile: found there, or counted missing
            with self.lock:
                self.keys.add((role, base))
                self.deliveries.append(Delivery(role, base, data))

    def count(self, role):
        with self.lock:
            return sum(1 for d in self.deliveries if d.mailbox == role)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


class LogWindow:
    """The part of a log file written after this object was made."""

    def __init__(self, path):
        self.path = path
        self.start = path.stat().st_size if path.exists() else 0

    def lines(self):
        if not self.path.exists():
            return []
        with open(self.path, "rb") as f:
            f.seek(self.start)
            return f.read().decode("utf-8", "replace").splitlines()


def as_sent(data):
    """A delivered maildir file as the client sent it: uncompressed (the relay's Dovecot
    stores mail gzipped), without the fields delivery put on top, with CRLF line ends
    (maildir stores LF)."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    i = 0
    while i < len(lines) and lines[i].split(b":", 1)[0].strip().lower().decode("latin-1") in DELIVERY_FIELDS:
        i += 1
        while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
            i += 1
    return b"\r\n".join(lines[i:])


def delivery_order(name):
    """Dovecot's maildir names start with the delivery time: `<sec>.M<usec>P<pid>...`."""
    m = re.match(r"(\d+)\.M(\d+)P", name)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def corpus_of(deliveries, phases):
    """The deliveries as one entry per distinct message (a message to several mailboxes is
    delivered once to each), in phase and delivery order; `phases` names each phase."""
    by_bytes = {}
    for d in deliveries:
        data = as_sent(d.data)
        entry = by_bytes.get(data)
        if entry is None:
            kind = phases[d.phase] if d.phase >= 0 else "after-run"
            entry = by_bytes[data] = Corpus(d.phase, kind, data, (d.phase, delivery_order(d.name), d.name))
        entry.mailboxes.add(d.mailbox)
        entry.order = min(entry.order, (d.phase, delivery_order(d.name), d.name))
    return sorted(by_bytes.values(), key=lambda c: c.order)


def file_names(corpus, roles):
    """`NN-kind-K-sender-to-recipients.eml`: NN the phase, K the message's place in it,
    sender and recipients as `roles` ({address: role}) name them."""
    names, per_phase = [], {}
    for c in corpus:
        k = per_phase[c.phase] = per_phase.get(c.phase, 0) + 1
        to = "+".join(sorted(c.mailboxes))
        names.append(f"{c.phase + 1:02d}-{c.kind}-{k}-{sender_role(c.data, roles)}-to-{to}.eml")
    return names


def write_corpus(out, deliveries, phases, roles):
    """Writes the corpus files to `out` (replacing its *.eml) and, in ENVELOPES, each one's
    `RCPT TO` addresses: the mailboxes it was delivered to (Delta Chat writes
    `To: "hidden-recipients": ;`, so the headers do not tell). Returns (written, skipped),
    lists of (name, size): messages over MAX_CORPUS_MESSAGE are skipped."""
    corpus = corpus_of(deliveries, phases)
    addrs = {role: addr for addr, role in roles.items()}
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.eml"):
        old.unlink()
    written, skipped, envelopes = [], [], [ENVELOPES_HEAD]
    for name, c in zip(file_names(corpus, roles), corpus):
        if len(c.data) > MAX_CORPUS_MESSAGE:
            skipped.append((name, len(c.data)))
            continue
        (out / name).write_bytes(c.data)
        written.append((name, len(c.data)))
        envelopes.append(" ".join([name, *sorted(addrs[m] for m in c.mailboxes)]))
    (out / ENVELOPES).write_text("\n".join(envelopes) + "\n")
    return written, skipped


def sender_role(data, roles):
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(data)
    addrs = getaddresses(headers.get_all("From", []))
    return roles.get(addrs[0][1].lower(), "other") if addrs else "none"


def kind_of(name):
    """The kind in a name made by `file_names`."""
    return name.split("-", 1)[1].rsplit("-", 4)[0]
