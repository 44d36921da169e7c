#!/usr/bin/env python3
"""Python smtplib reusing one connection: the peer for bench cases A and B.

    smtplib_batch.py HOST PORT MAILDIR [CA_FILE USER PASSWORD_FILE]

Sends every file of MAILDIR/new with sendmail() over one SMTP connection
(STARTTLS + AUTH PLAIN when CA_FILE is given); prints the count sent.
"""
import os
import smtplib
import ssl
import sys

host, port, d = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = smtplib.SMTP(host, port, timeout=30)
s.ehlo("bench.example.test")
if len(sys.argv) > 4:
    ctx = ssl.create_default_context(cafile=sys.argv[4])
    s.starttls(context=ctx)
    s.ehlo("bench.example.test")
    s.user = sys.argv[5]
    s.password = open(sys.argv[6]).read().rstrip("\n")
    s.auth("PLAIN", s.auth_plain)
sent = 0
new = os.path.join(d, "new")
for name in sorted(os.listdir(new)):
    with open(os.path.join(new, name), "rb") as f:
        s.sendmail("bench@example.test", ["sink@example.test"], f.read())
    sent += 1
s.quit()
print(sent)
