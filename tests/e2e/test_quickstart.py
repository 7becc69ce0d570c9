"""What the README's quick start promises: `scripts/relay account` (also printed by
`scripts/relay start`) hands out a working login and a dclogin: URL in the format of SPEC §9."""

import os
import re
import subprocess
import urllib.parse

from conftest import RELAY, Account


def test_printed_login_works(relay):
    env = dict(os.environ, CHATMAIL_RELAY_DIR=str(relay.state))
    out = subprocess.run([str(RELAY), "account"], env=env, capture_output=True, text=True, check=True).stdout
    fields = dict(re.findall(r"^\s+(address|password|created|dclogin):\s+(\S+)", out, re.M))
    addr, password = fields["address"], fields["password"]
    assert re.fullmatch(r"[a-z0-9]{9}@\[127\.0\.0\.1\]", addr)
    assert len(password) >= int(relay.ini.get("password_min_length", 9))
    assert fields["created"] == "yes"
    url = fields["dclogin"]
    assert url == f"dclogin:{addr}?p={urllib.parse.quote(password, safe='')}&v=1&ih=127.0.0.1&sh=127.0.0.1&ic=3"
    Account(relay, addr, password).imap().logout()
    assert (relay.maildir(addr) / "password").exists()
