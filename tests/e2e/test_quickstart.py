"""What the README's quick start promises: `scripts/relay account` (also printed by
`scripts/relay start`) hands out a working login and a dclogin: URL in the format of SPEC §9."""

import os
import re
import subprocess
import urllib.parse

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
