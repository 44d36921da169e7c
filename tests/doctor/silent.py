#!/usr/bin/env python3
# silent.py N SECONDS [PORT...] — listens on N loopback ports (the PORTs
# given, else free ones), prints
# "ports P1 P2 ..." and accepts every connection without ever sending a
# byte (a firewall that accepts, a tarpit), for SECONDS at most.
import socket, sys, threading, time

n, life = int(sys.argv[1]), float(sys.argv[2])
fixed = [int(p) for p in sys.argv[3:]]
socks, held = [], []
for i in range(n):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", fixed[i] if i < len(fixed) else 0))
    s.listen(64)
    socks.append(s)
print("ports " + " ".join(str(s.getsockname()[1]) for s in socks), flush=True)

def serve(s):
    s.settimeout(0.5)
    while time.time() < end:
        try:
            c, _ = s.accept()
            held.append(c)
        except socket.timeout:
            pass

end = time.time() + life
for s in socks:
    threading.Thread(target=serve, args=(s,), daemon=True).start()
while time.time() < end:
    time.sleep(0.2)
