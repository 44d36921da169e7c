#!/usr/bin/env python3
"""A scripted hostile SMTP server for smtpkit's attack tests.

    server.py MODE CERTDIR   prints "port=N" on stdout, serves connections
                             until killed (or 120 s pass)

Each MODE misbehaves in one way, at one stage; the tests assert that the
client names the right cause, exits with the right code, never hangs and
never sends a credential it should not. Loopback only.
"""
import os
import ssl
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import loopback_server  # noqa: E402

MODE = sys.argv[1]
CERTS = sys.argv[2]
CAPS_PLAIN = b"250-hostile.test\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
CAPS_TLS = b"250-hostile.test\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n"


class Conn:
    def __init__(self, sock):
        self.s = sock
        self.buf = b""

    def line(self, limit=10):
        end = time.time() + limit
        while b"\n" not in self.buf:
            self.s.settimeout(max(0.1, end - time.time()))
            d = self.s.recv(65536)
            if not d:
                raise EOFError
            self.buf += d
            if time.time() > end:
                raise TimeoutError
        l, self.buf = self.buf.split(b"\n", 1)
        return l.rstrip(b"\r")

    def send(self, b):
        self.s.sendall(b)

    def tls(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(CERTS + "/server.pem", CERTS + "/server.key")
        self.s = ctx.wrap_socket(self.s, server_side=True)
        self.buf = b""


def until(c, verb):
    """Reads commands, answering the harmless ones, until one starts with verb."""
    for _ in range(50):
        l = c.line()
        up = l.upper()
        if up.startswith(verb):
            return l
        if up.startswith(b"AUTH"):
            log("AUTH-RECEIVED")
        if up.startswith(b"EHLO"):
            c.send(CAPS_TLS if isinstance(c.s, ssl.SSLSocket) else CAPS_PLAIN)
        elif up.startswith(b"QUIT"):
            c.send(b"221 bye\r\n")
            raise EOFError
        else:
            c.send(b"250 ok\r\n")
    raise EOFError


def log(what):
    with open(CERTS + "/events", "a") as f:
        f.write(what + "\n")


def serve(c):
    m = MODE
    if m == "garbage":
        c.send(b"\x16\x03\x01\x00\xff\x00garbage\x00\x01\r\n")
        time.sleep(5)
        return
    if m == "421-greeting":
        c.send(b"421 4.3.2 Service not available\r\n")
        return
    if m == "endless-multiline":
        c.send(b"220 hi\r\n")
        until(c, b"EHLO")
        for _ in range(100000):
            c.send(b"250-" + b"x" * 60 + b"\r\n")
        return
    if m == "huge-line":
        c.send(b"220 hi\r\n")
        until(c, b"EHLO")
        chunk = b"250-" + b"y" * 65532
        for _ in range(160):  # 10 MB without a line end
            c.send(chunk)
        return
    if m == "drip":
        for b in b"220 slowly, one byte a second\r\n":
            c.send(bytes([b]))
            time.sleep(1)
        return
    c.send(b"220 hostile.test ESMTP\r\n")
    if m == "silent-after-greeting":
        c.line()
        time.sleep(60)
        return
    if m == "421-ehlo":
        until(c, b"EHLO")
        c.send(b"421 4.3.2 shutting down\r\n")
        return
    until(c, b"EHLO")
    c.send(CAPS_PLAIN)
    until(c, b"STARTTLS")
    if m == "starttls-454":
        c.send(b"454 4.7.0 TLS not available due to local problem\r\n")
        until(c, b"NEVER")  # logs any AUTH that follows
        return
    if m == "injection":
        # The reply to STARTTLS and a forged capability reply in one segment.
        c.send(b"220 2.0.0 Ready to start TLS\r\n250-hostile.test\r\n"
               b"250 AUTH PLAIN\r\n")
        time.sleep(0.5)
        try:
            c.tls()
            until(c, b"NEVER")
        except Exception:
            pass
        return
    c.send(b"220 2.0.0 go ahead\r\n")
    c.tls()
    if m == "421-auth":
        until(c, b"AUTH")
        log("AUTH-RECEIVED")
        c.send(b"421 4.7.0 Try again later, closing connection\r\n")
        return
    until(c, b"AUTH")
    c.send(b"235 2.7.0 ok\r\n")
    if m == "421-mail":
        until(c, b"MAIL")
        c.send(b"421 4.4.2 timeout\r\n")
        return
    until(c, b"MAIL")
    c.send(b"250 ok\r\n")
    until(c, b"RCPT")
    c.send(b"250 ok\r\n")
    until(c, b"DATA")
    c.send(b"354 go\r\n")
    if m == "close-mid-data":
        c.line()
        c.s.close()
        return
    for _ in range(1000000):
        if c.line(30) == b".":
            break
    if m == "close-after-dot":
        c.s.close()
        return
    if m == "421-dot":
        c.send(b"421 4.3.0 collapsed\r\n")
        return
    c.send(b"250 2.0.0 queued as H1\r\n")
    until(c, b"NEVER")


def handle(sock):
    c = Conn(sock)
    try:
        serve(c)
    except Exception:
        pass
    finally:
        try:
            c.s.close()
        except Exception:
            pass


loopback_server.serve(handle, 120)
