#!/usr/bin/env python3
"""A scripted SMTP server for smtpkit's batch tests.

    server.py MODE N CAPTURE_DIR   prints "port=N" on stdout, serves until
                                   killed (or 120 s pass)

It speaks enough SMTP for a batch (EHLO with PIPELINING, MAIL, RCPT, DATA,
RSET, NOOP, QUIT; commands are read from one buffer, so pipelined groups
work), stores every message it accepts as CAPTURE_DIR/accepted-K.eml and
every end of data it reads, accepted or not, as a line in CAPTURE_DIR/seen
(its Message-ID), and misbehaves after N messages on each connection:

  421-mail   answers the next MAIL with 421 and closes
  421-dot    answers the next end of data with 421 and closes (the message
             was not accepted: the client must send it again)
  drop-dot   closes after the next end of data without a reply (delivery
             unknown: the client must not send it again)
  reject     refuses every RCPT whose address starts with "bad" (550) and
             every message whose Subject contains "reject" (554 at the end
             of data); no connection ends

Loopback only.
"""
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import loopback_server  # noqa: E402

MODE, N, CAPTURE = sys.argv[1], int(sys.argv[2]), sys.argv[3]
LOCK = threading.Lock()
COUNT = [0]


class Closed(Exception):
    pass


class Conn:
    def __init__(self, sock):
        self.s = sock
        self.buf = b""
        self.out = b""

    def line(self):
        end = time.time() + 30
        while b"\n" not in self.buf:
            self.flush()  # RFC 2920 §3.2: replies go out when input runs dry
            self.s.settimeout(max(0.1, end - time.time()))
            d = self.s.recv(65536)
            if not d:
                raise Closed
            self.buf += d
            if time.time() > end:
                raise Closed
        l, self.buf = self.buf.split(b"\n", 1)
        return l.rstrip(b"\r")

    def send(self, b):
        self.out += b

    def flush(self):
        if self.out:
            self.s.sendall(self.out)
            self.out = b""


def message_id(data):
    m = re.search(rb"(?im)^message-id:\s*(\S+)", data)
    return m.group(1).decode("ascii", "replace") if m else "?"


def store(data):
    with LOCK:
        COUNT[0] += 1
        k = COUNT[0]
    tmp = os.path.join(CAPTURE, ".tmp-%d" % k)
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, os.path.join(CAPTURE, "accepted-%06d.eml" % k))


def seen(data):
    with LOCK:
        with open(os.path.join(CAPTURE, "seen"), "a") as f:
            f.write(message_id(data) + "\n")


def serve(c):
    done = 0  # messages accepted on this connection
    rcpts = 0
    c.send(b"220 batch.test ESMTP\r\n")
    for _ in range(100000):
        l = c.line()
        up = l.upper()
        if up.startswith(b"EHLO"):
            c.send(b"250-batch.test\r\n250-PIPELINING\r\n250-SIZE 100000000\r\n"
                   b"250 8BITMIME\r\n")
        elif up.startswith(b"MAIL"):
            if MODE == "421-mail" and done >= N:
                c.send(b"421 4.3.2 too many messages, closing\r\n")
                c.flush()
                return
            rcpts = 0
            c.send(b"250 2.1.0 ok\r\n")
        elif up.startswith(b"RCPT"):
            if MODE == "reject" and up.startswith(b"RCPT TO:<BAD"):
                c.send(b"550 5.1.1 no such user\r\n")
            else:
                rcpts += 1
                c.send(b"250 2.1.5 ok\r\n")
        elif up.startswith(b"DATA"):
            if rcpts == 0:
                c.send(b"554 5.5.1 no valid recipients\r\n")
                continue
            c.send(b"354 go ahead\r\n")
            lines = []
            for _ in range(10000000):
                d = c.line()
                if d == b".":
                    break
                lines.append(d[1:] if d.startswith(b".") else d)
            data = b"\r\n".join(lines) + b"\r\n"
            seen(data)
            if MODE == "421-dot" and done >= N:
                c.send(b"421 4.3.0 shutting down\r\n")
                c.flush()
                return
            if MODE == "drop-dot" and done >= N:
                return
            if MODE == "reject" and re.search(rb"(?im)^subject:.*reject", data):
                c.send(b"554 5.7.1 message refused by policy\r\n")
                continue
            store(data)
            done += 1
            c.send(b"250 2.0.0 ok: queued as Q%d\r\n" % COUNT[0])
        elif up.startswith(b"QUIT"):
            c.send(b"221 bye\r\n")
            c.flush()
            return
        else:  # RSET, NOOP
            c.send(b"250 2.0.0 ok\r\n")


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
