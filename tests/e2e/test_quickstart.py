"""What the README's quick start promises: `scripts/relay account` (also printed by
`scripts/relay start`) hands out a working login and a dclogin: URL in the format of SPEC §9."""

import os
import re
import socket
import subprocess
import urllib.parse

import pytest

from conftest import RELAY_CMD, Account


def test_printed_login_works(relay):
    env = dict(os.environ, CHATMAIL_RELAY_DIR=str(relay.state))
    out = subprocess.run([*RELAY_CMD, "account"], env=env, capture_output=True, text=True, check=True).stdout
    fields = dict(re.findall(r"^\s+(address|password|created|dclogin):\s+(\S+)", out, re.M))
    addr, password = fields["address"], fields["password"]
    assert re.fullmatch(r"[a-z0-9]{9}@\[127\.0\.0\.1\]", addr)
    assert len(password) >= int(relay.ini.get("password_min_length", 9))
    assert fields["created"] == "yes"
    url = fields["dclogin"]
    assert url == f"dclogin:{addr}?p={urllib.parse.quote(password, safe='')}&v=1&ih=127.0.0.1&sh=127.0.0.1&ic=3"
    Account(relay, addr, password).imap().logout()
    assert (relay.maildir(addr) / "password").exists()


def test_relay_runs_the_expected_dovecot(relay):
    """`scripts/e2e --debian13` must really test Debian 13's Dovecot 2.4 (and plain
    `scripts/e2e` this machine's): the relay's Dovecot log names its version."""
    expected = os.environ.get("CHATMAIL_E2E_DOVECOT")
    if not expected:
        expected = subprocess.run(["dovecot", "--version"], capture_output=True, text=True).stdout.split()[0]
    log = (relay.state / "log" / "dovecot.log").read_text(errors="replace")
    started = re.findall(r"Dovecot v(\S+) .*starting up", log)
    assert started, "no start line in the Dovecot log"
    assert started[-1] == expected, (started[-1], expected)


def test_transport_mode_runs(relay):
    """`scripts/relay start` runs filtermail's transport mode (Postfix's default_transport for
    mail to other relays) and it answers LMTP; the old usage check never started it."""
    relay.require("filtermail")
    env = dict(os.environ, CHATMAIL_RELAY_DIR=str(relay.state))
    out = subprocess.run([*RELAY_CMD, "status"], env=env, capture_output=True, text=True).stdout
    assert re.search(r"^filtermail-transport\s+running", out, re.M), out
    port = int(relay.ini.get("filtermail_lmtp_port_transport", "10083"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        f = conn.makefile("rwb")
        assert f.readline().startswith(b"220"), "no LMTP greeting"
        f.write(b"LHLO e2e.test\r\n")
        f.flush()
        line = f.readline()
        while line[3:4] == b"-":
            line = f.readline()
        assert line.startswith(b"250"), line
        f.write(b"QUIT\r\n")
        f.flush()


def test_relay_uses_the_requested_auth(relay):
    """Lua auth with doveauth's HTTP /create by default, doveauth's dict socket with
    CHATMAIL_RELAY_AUTH=dict (Dovecot 2.3): the rendered passdb and what doveauth serves."""
    if not relay.started_here:
        pytest.skip("a relay started elsewhere: its auth mode was chosen there")
    mode = os.environ.get("CHATMAIL_RELAY_AUTH", "lua")
    conf = (relay.state / "dovecot" / "auth-backend.conf").read_text()
    log = (relay.state / "log" / "doveauth.log").read_text(errors="replace")
    if mode == "dict":
        assert "driver = dict" in conf
        assert "entering serving loop" in log
    else:
        assert "driver = lua" in conf or "passdb lua" in conf
        assert "serving HTTP /create" in log
    assert "Created address:" in log
