"""The mail client of the tests under systemd (tests/systemd/inside.sh): IMAP logins, SMTP
submission and incoming SMTP against the relay on 127.0.0.1, with the standard library only.

    mail.py login ADDR PASSWORD                 one IMAPS login (creates the account)
    mail.py logins DOMAIN PASSWORD STOPFILE     log in as a new address of DOMAIN again and
                                                again (each creates an account) until
                                                STOPFILE exists; prints "ok N failed M"
    mail.py send FROM PASSWORD TO EML           submission on 587 (STARTTLS); exit 0 accepted,
                                                2 refused (the reply is printed)
    mail.py sends FROM PASSWORD TO EML STOPFILE submit again and again until STOPFILE exists;
                                                prints "ok N failed M"
    mail.py incoming FROM TO EML                port 25 from outside, exit as for send
    mail.py fetch ADDR PASSWORD TEXT            exit 0 when a message in INBOX holds TEXT
    mail.py new URL                             POST to the account URL (/new) as Delta Chat
                                                does; prints "ADDR PASSWORD" of the answer,
                                                or exits 2 printing a refusal's status
"""

import imaplib
import json
import random
import smtplib
import ssl
import string
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"


def tls():
    # The relay's self-signed certificate: encryption without verification is enough here.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def login(addr, password):
    conn = imaplib.IMAP4_SSL(HOST, 993, ssl_context=tls(), timeout=20)
    conn.login(addr, password)
    return conn


def message(path, sender, to):
    text = Path(path).read_text()
    text = text.replace("{from_addr}", sender).replace("{to_addr}", to)
    text = text.replace("{subject}", "systemd test")
    # The delivery report of the corpus, as another relay (an IP-literal domain) sends it.
    text = text.replace("MAILER-DAEMON@example.org", "MAILER-DAEMON@[127.0.0.2]")
    text = text.replace("<owner-ups-mib@CS.UTK.EDU>", f"<{to}>")
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def submit(sender, password, to, eml):
    with smtplib.SMTP(HOST, 587, timeout=20) as s:
        s.starttls(context=tls())
        s.login(sender, password)
        s.sendmail(sender, [to], message(eml, sender, to))


def sent(fn):
    try:
        fn()
    except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused,
            smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as e:
        print("refused:", e)
        return 2
    return 0


def main(cmd, *args):
    if cmd == "login":
        login(*args).logout()
        return 0
    if cmd == "logins":
        domain, password, stop = args
        ok = failed = 0
        while not Path(stop).exists():
            addr = "".join(random.choices(string.ascii_lowercase + string.digits, k=9))
            try:
                login(f"{addr}@{domain}", password).logout()
                ok += 1
            except Exception as e:  # every failure counts, whatever its kind
                failed += 1
                print("failed:", repr(e), file=sys.stderr)
                time.sleep(0.05)
        print(f"ok {ok} failed {failed}")
        return 0
    if cmd == "sends":
        sender, password, to, eml, stop = args
        ok = failed = 0
        while not Path(stop).exists():
            try:
                submit(sender, password, to, eml)
                ok += 1
                time.sleep(0.1)
            except Exception as e:  # every failure counts, whatever its kind
                failed += 1
                print("failed:", repr(e), file=sys.stderr)
                time.sleep(0.05)
        print(f"ok {ok} failed {failed}")
        return 0
    if cmd == "send":
        sender, password, to, eml = args

        return sent(lambda: submit(sender, password, to, eml))
    if cmd == "incoming":
        sender, to, eml = args

        def send():
            with smtplib.SMTP(HOST, 25, timeout=20) as s:
                s.ehlo("peer.example")
                s.starttls(context=tls())
                s.ehlo("peer.example")
                s.sendmail(sender, [to], message(eml, sender, to))

        return sent(send)
    if cmd == "fetch":
        addr, password, text = args
        conn = login(addr, password)
        conn.select("INBOX", readonly=True)
        _, data = conn.fetch("1:*", "(BODY.PEEK[])")
        conn.logout()
        bodies = [part[1] for part in data if isinstance(part, tuple)]
        return 0 if any(text.encode() in body for body in bodies) else 1
    if cmd == "new":
        (url,) = args
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"),
                                        timeout=20) as r:
                creds = json.load(r)
        except urllib.error.HTTPError as e:
            print("refused:", e.code, e.read().decode(errors="replace"))
            return 2
        print(creds["email"], creds["password"])
        return 0
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
