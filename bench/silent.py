#!/usr/bin/env python3
"""Listeners that accept connections and never say a word (bench case E).

    silent.py ADDR PORT...   prints "ready" once listening; holds every
                             connection open, silent, until killed (or
                             120 s pass). Loopback only.
"""
import select
import socket
import sys
import time

addr = sys.argv[1]
listeners = []
for p in sys.argv[2:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(p)))
    s.listen(64)
    listeners.append(s)
print("ready", flush=True)
held = []
end = time.time() + 120
while time.time() < end:
    r, _, _ = select.select(listeners, [], [], 1)
    for s in r:
        c, _ = s.accept()
        held.append(c)
