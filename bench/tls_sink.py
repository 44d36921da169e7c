#!/usr/bin/env python3
"""A TLS submission sink without a size limit, for bench case D.

    tls_sink.py CERT KEY   prints "port=N"; STARTTLS, then AUTH PLAIN or
                           LOGIN (anything accepted); every message is read
                           to its end of data and thrown away. Serves until
                           killed (or 600 s pass). Loopback only.

The lab (smtpkit lab) advertises SIZE 35882577, too small for a 50 MB
attachment (about 68 MB once encoded), so case D uses this.
"""
import os
import ssl
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
import loopback_server  # noqa: E402

CTX = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
CTX.load_cert_chain(sys.argv[1], sys.argv[2])


def serve(sock):
    f_out = sock
    buf = b""
    tls = False

    def line():
        nonlocal buf
        while b"\n" not in buf:
            d = f_out.recv(262144)
            if not d:
                raise EOFError
            buf += d
        l, buf = buf.split(b"\n", 1)
        return l.rstrip(b"\r")

    f_out.sendall(b"220 sink.bench ESMTP\r\n")
    for _ in range(10000):
        l = line().upper()
        if l.startswith(b"EHLO"):
            caps = b"250-sink.bench\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
            caps += b"250 AUTH PLAIN LOGIN\r\n" if tls else b"250 STARTTLS\r\n"
            f_out.sendall(caps)
        elif l.startswith(b"STARTTLS"):
            f_out.sendall(b"220 go\r\n")
            f_out = CTX.wrap_socket(f_out, server_side=True)
            buf, tls = b"", True
        elif l.startswith(b"AUTH PLAIN") and len(l) > 11:
            f_out.sendall(b"235 2.7.0 ok\r\n")
        elif l.startswith(b"AUTH"):
            f_out.sendall(b"334 \r\n")
            if l.startswith(b"AUTH LOGIN"):
                line()
                f_out.sendall(b"334 \r\n")
            line()
            f_out.sendall(b"235 2.7.0 ok\r\n")
        elif l.startswith(b"DATA"):
            f_out.sendall(b"354 go\r\n")
            data = buf
            buf = b""
            while True:
                end = data.find(b"\r\n.\r\n")
                if end >= 0 or data.startswith(b".\r\n"):
                    buf = data[end + 5:] if end >= 0 else data[3:]
                    break
                keep = data[-4:]
                d = f_out.recv(262144)
                if not d:
                    raise EOFError
                data = keep + d
            f_out.sendall(b"250 2.0.0 ok\r\n")
        elif l.startswith(b"QUIT"):
            f_out.sendall(b"221 bye\r\n")
            return
        else:
            f_out.sendall(b"250 ok\r\n")


def handle(sock):
    try:
        serve(sock)
    except Exception:
        pass
    finally:
        sock.close()


loopback_server.serve(handle, 600)
