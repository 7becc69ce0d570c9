"""Debian's Prometheus scrapes the relay's chatmail-exporter while the relay works, then
evaluates every query of the Grafana dashboard (contrib/grafana/chatmail.json) through its
HTTP API, each of which must return at least one series, and loads the alert rules
(contrib/prometheus/alerts.yml), each of which must evaluate without error."""

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from conftest import DEADLINE, REPO, assert_cleartext_refused, load_eml, metadata_set

DASHBOARD = REPO / "contrib" / "grafana" / "chatmail.json"
ALERTS = REPO / "contrib" / "prometheus" / "alerts.yml"
SCRAPE_SECONDS = 1

# Grafana's built-in variables, as Grafana would fill them for a short time range.
DASHBOARD_VARIABLES = {
    "$__rate_interval": "1m",
    "${__rate_interval}": "1m",
    "$__interval": "15s",
    "${__interval}": "15s",
    "$__range": "1h",
    "${__range}": "1h",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    def __init__(self, port):
        self.url = f"http://127.0.0.1:{port}"

    def api(self, path, **params):
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr):
        """The instant vector (or scalar) `expr` evaluates to now."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def value(self, expr):
        """The one value of `expr` (0 when it has no series)."""
        result = self.query(expr)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else 0.0

    def wait_for(self, expr, check, what):
        deadline = time.monotonic() + DEADLINE
        while True:
            v = self.value(expr)
            if check(v):
                return v
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {expr} = {v}"
            time.sleep(0.2)

    def settle(self):
        """Waits until two more scrapes have been stored, so rates see what just happened."""
        stored = self.value('timestamp(up{job="chatmail"})')
        self.wait_for('timestamp(up{job="chatmail"})', lambda t: t >= stored + 2 * SCRAPE_SECONDS, "two scrapes")


@pytest.fixture(scope="module")
def prometheus(relay, tmp_path_factory):
    relay.require("chatmail-exporter")
    exe = shutil.which("prometheus")
    assert exe, "Debian's prometheus is not installed (scripts/install-deps)"
    work = tmp_path_factory.mktemp("prometheus")
    metrics_port = int(relay.ini.get("metrics_port", 10089))
    config = {
        "global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "evaluation_interval": f"{SCRAPE_SECONDS}s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [{"job_name": "chatmail", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}],
    }
    # JSON is YAML: no YAML library needed to write the config.
    (work / "prometheus.yml").write_text(json.dumps(config))
    port = free_port()
    log = open(work / "prometheus.log", "w")
    proc = subprocess.Popen(
        [
            exe,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    prom = Prometheus(port)
    try:
        deadline = time.monotonic() + DEADLINE
        while True:
            assert proc.poll() is None, (work / "prometheus.log").read_text()
            try:
                with urllib.request.urlopen(f"{prom.url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "prometheus did not become ready"
            time.sleep(0.1)
        prom.wait_for('up{job="chatmail"}', lambda v: v == 1, "the first scrape of chatmail-exporter")
        yield prom
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def dashboard_queries():
    """(panel title, expr) of every query of the dashboard, rows' panels included."""
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((p.get("title", "?"), t["expr"]))
            walk(p.get("panels", []))

    walk(json.loads(DASHBOARD.read_text())["panels"])
    return out


def substitute(expr):
    for name in sorted(DASHBOARD_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, DASHBOARD_VARIABLES[name])
    assert "$" not in expr, f"a dashboard variable this test does not know: {expr}"
    return expr


def drive_traffic(relay, make_account):
    """Logins, a refused creation, encrypted mail to a device registered for pushes,
    cleartext refused from a user and from another server, the daily reports."""
    a, b = make_account().create(), make_account().create()
    short = make_account()
    short.password = "short"
    with pytest.raises(Exception):
        short.imap()
    # A device registered for pushes, if they go to the session's mock server.
    token = "e2e-prometheus-" + os.urandom(6).hex()
    if relay.notifications is not None:
        conn = b.imap()
        metadata_set(conn, "/private/devicetoken", token)
        conn.logout()
    msgid, data = load_eml("encrypted.eml", a.addr, b.addr)
    assert a.send(b.addr, data) == {}
    assert b.wait_for_message(msgid) is not None
    if relay.notifications is not None:
        assert relay.notifications.wait_for(token)
    assert_cleartext_refused(a, b)
    # The daily timers' textfiles (chatmail-expire as a dry run: nothing is removed).
    textfiles = relay.state / "metrics"
    for tool, args in (("chatmail-fsreport", []), ("chatmail-expire", ["-v"])):
        relay.require(tool)
        proc = relay.run_as_vmail(relay.bin(tool), relay.ini_path, *args, "--textfile", textfiles)
        assert proc.returncode == 0, proc.stderr


def test_prometheus_evaluates_every_dashboard_query_and_alert_rule(relay, make_account, prometheus):
    relay.require("doveauth", "filtermail", "chatmail-metadata")
    started = time.time()
    drive_traffic(relay, make_account)
    prometheus.wait_for(
        "chatmail_expire_last_run_timestamp_seconds",
        lambda t: t >= int(started),
        "the expire textfile to be scraped",
    )
    prometheus.settle()

    empty = []
    for title, expr in dashboard_queries():
        if not prometheus.query(substitute(expr)):
            empty.append(f"{title}: {expr}")
    assert len(dashboard_queries()) > 30
    assert not empty, "dashboard queries without a series:\n" + "\n".join(empty)

    # What was driven shows on the dashboard's panels, not merely some series.
    assert prometheus.value("sum(increase(chatmail_doveauth_accounts_created_total[1h]))") > 0
    assert prometheus.value('sum(rate(chatmail_doveauth_creations_refused_total{reason="invalid_password"}[5m]))') > 0
    refused = 'sum(rate(chatmail_filtermail_messages_total{reason="encryption_needed",direction="%s"}[5m]))'
    assert prometheus.value(refused % "outgoing") > 0
    assert prometheus.value(refused % "incoming") > 0
    accepted = 'sum(rate(chatmail_filtermail_messages_total{verdict="accepted",direction="outgoing"}[5m]))'
    assert prometheus.value(accepted) > 0
    if relay.notifications is not None:
        assert prometheus.value('sum(rate(chatmail_metadata_notifications_total{event="sent"}[5m]))') > 0
    assert prometheus.value("min(chatmail_service_up)") == 1
    # The disk gauges are the exporter's reading of mailboxes_dir.
    disk = os.statvfs(relay.mailboxes_dir)
    assert prometheus.value("chatmail_mailboxes_filesystem_size_bytes") == disk.f_blocks * disk.f_frsize
    assert prometheus.value("chatmail_mailboxes_filesystem_files") == disk.f_files

    # Every alert rule loads and evaluates on the live data; nothing fires on a healthy relay.
    rule_names = re.findall(r"^\s*- alert: (\S+)$", ALERTS.read_text(), re.M)
    deadline = time.monotonic() + DEADLINE
    while True:
        rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
        if all(r.get("lastEvaluation", "").startswith("2") and r["health"] != "unknown" for r in rules):
            break
        assert time.monotonic() < deadline, rules
        time.sleep(0.2)
    assert sorted(r["name"] for r in rules) == sorted(rule_names)
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad, bad
    firing = [a["labels"] for a in prometheus.api("alerts")["alerts"] if a["state"] == "firing"]
    assert not firing, firing
