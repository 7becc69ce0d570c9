"""The relay's one Prometheus endpoint (chatmail-exporter on 127.0.0.1:metrics_port), read
with the Prometheus project's own Python parser while the relay works: its counters move as
accounts are created, mail is sent and refused, and a device is notified."""

import os
import re
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import DEADLINE, REPO, assert_cleartext_refused, load_eml, metadata_set

DAEMONS = ["doveauth", "lastlogin", "chatmail-metadata", "filtermail", "filtermail-incoming"]


class Scrape:
    def __init__(self, text):
        self.text = text
        self.families = list(text_string_to_metric_families(text))
        self.samples = {}
        for fam in self.families:
            for s in fam.samples:
                key = (s.name, frozenset(s.labels.items()))
                assert key not in self.samples, f"series served twice: {s}"
                self.samples[key] = s.value

    def get(self, name, **labels):
        """The value of one series; it must be served."""
        key = (name, frozenset(labels.items()))
        assert key in self.samples, f"{name}{labels} not served:\n{self.text}"
        return self.samples[key]

    def names(self):
        return {name for name, _ in self.samples}


def scrape(relay):
    with urllib.request.urlopen(relay.metrics_url, timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return Scrape(r.read().decode())


def wait_until(relay, check, what):
    """Scrapes until `check(scrape)` holds (a notification is sent after the delivery)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        s = scrape(relay)
        if check(s):
            return s
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{s.text}"
        time.sleep(0.2)


def listed_families():
    """Every family name of chatmaild::metrics::names (the list the dashboard test uses)."""
    text = (REPO / "chatmaild" / "src" / "metrics" / "names.rs").read_text()
    return set(re.findall(r'pub const [A-Z_]+: &str = "(chatmail_[a-z_]+)";', text))


def family_of(series, families):
    for suffix in ("", "_bucket", "_sum", "_count"):
        if suffix and not series.endswith(suffix):
            continue
        base = series[: len(series) - len(suffix)] if suffix else series
        if base in families:
            return base
    return None


@pytest.fixture
def exporter(relay):
    relay.require("chatmail-exporter")
    return relay


def test_every_daemon_is_up_and_every_name_is_listed(exporter):
    s = scrape(exporter)
    for name in DAEMONS:
        assert s.get("chatmail_service_up", service=name) == 1, name
    if exporter.has("filtermail"):
        assert s.get("chatmail_service_up", service="filtermail-transport") == 1
    families = listed_families()
    assert len(families) > 30
    unlisted = sorted(n for n in s.names() if family_of(n, families) is None)
    assert not unlisted, f"served but not in chatmaild::metrics::names: {unlisted}"
    for fam in s.families:
        if fam.type == "histogram":
            assert any(x.labels.get("le") == "+Inf" for x in fam.samples), fam.name


def test_counters_move_as_the_relay_works(exporter, make_account):
    relay = exporter
    relay.require("filtermail", "chatmail-metadata", "chatmail-fsreport")
    if relay.notifications is None:
        pytest.skip("the running relay's notification_url is not a local mock")
    before = scrape(relay)
    created = "chatmail_doveauth_accounts_created_total"
    out_ok = dict(direction="outgoing", verdict="accepted", reason="none")
    out_plain = dict(direction="outgoing", verdict="rejected", reason="encryption_needed")
    in_plain = dict(direction="incoming", verdict="rejected", reason="encryption_needed")
    messages = "chatmail_filtermail_messages_total"
    notified = "chatmail_metadata_notifications_total"

    a, b = make_account().create(), make_account().create()
    s = scrape(relay)
    assert s.get(created) == before.get(created) + 2
    lookups = "chatmail_doveauth_lookups_total"
    found = sum(s.get(lookups, kind=k, result="found") for k in ("passdb", "create"))
    found_before = sum(before.get(lookups, kind=k, result="found") for k in ("passdb", "create"))
    assert found >= found_before + 2
    assert s.get("chatmail_doveauth_password_hash_duration_seconds_count") >= (
        before.get("chatmail_doveauth_password_hash_duration_seconds_count") + 2
    )

    # A short password creates nothing and is counted with its reason.
    short = make_account()
    short.password = "short"
    with pytest.raises(Exception):
        short.imap()
    s = scrape(relay)
    refused = "chatmail_doveauth_creations_refused_total"
    assert s.get(refused, reason="invalid_password") == before.get(refused, reason="invalid_password") + 1
    assert s.get(created) == before.get(created) + 2

    # Encrypted mail to a device that registered for push notifications.
    token = "e2e-metrics-" + os.urandom(6).hex()
    conn = b.imap()
    metadata_set(conn, "/private/devicetoken", token)
    conn.logout()
    msgid, data = load_eml("encrypted.eml", a.addr, b.addr)
    assert a.send(b.addr, data) == {}
    assert b.wait_for_message(msgid) is not None
    assert relay.notifications.wait_for(token)
    s = wait_until(
        relay,
        lambda s: s.get(notified, event="sent") >= before.get(notified, event="sent") + 1,
        "the notification to be counted as sent",
    )
    assert s.get(notified, event="queued") >= before.get(notified, event="queued") + 1
    assert s.get("chatmail_metadata_tokens_set_total") >= before.get("chatmail_metadata_tokens_set_total") + 1
    assert s.get(messages, **out_ok) == before.get(messages, **out_ok) + 1
    bytes_ = "chatmail_filtermail_message_bytes_total"
    assert s.get(bytes_, direction="outgoing") >= before.get(bytes_, direction="outgoing") + len(data) - 100

    # Cleartext is refused, from our user and from another server.
    assert_cleartext_refused(a, b)
    s = scrape(relay)
    assert s.get(messages, **out_plain) == before.get(messages, **out_plain) + 1
    assert s.get(messages, **in_plain) == before.get(messages, **in_plain) + 1
    assert s.get(messages, **out_ok) == before.get(messages, **out_ok) + 1
    seconds = "chatmail_filtermail_message_duration_seconds_count"
    assert s.get(seconds, direction="outgoing") >= before.get(seconds, direction="outgoing") + 2

    # The daily report's figures come in through its textfile.
    textfiles = relay.state / "metrics"
    proc = relay.run_as_vmail(relay.bin("chatmail-fsreport"), relay.ini_path, "--textfile", textfiles)
    assert proc.returncode == 0, proc.stderr
    s = scrape(relay)
    assert s.get("chatmail_textfile_mtime_seconds", file="fsreport.prom") > time.time() - 60
    assert any(n == "chatmail_accounts" for n in s.names()), s.text
    accounts = {dict(labels).get("kind"): v for (n, labels), v in s.samples.items() if n == "chatmail_accounts"}
    assert max(accounts.values()) >= 2, accounts


def test_exporter_serves_only_localhost_and_only_metrics(exporter):
    port = int(exporter.ini.get("metrics_port", 10089))
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10)
    assert err.value.code == 404
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
    assert out.strip(), "nothing listens on the metrics port"
    assert all("127.0.0.1:" in line for line in out.splitlines()), out
