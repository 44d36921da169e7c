"""The accept loop shared by the scripted test servers (tests/hostile,
tests/batch, bench/tls_sink.py): listen on a free loopback port, print
"port=N", serve each connection in its own thread, stop by itself."""
import socket
import threading
import time


def serve(handle, seconds):
    """Calls handle(sock) for every connection, for at most seconds."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    print("port=%d" % ls.getsockname()[1], flush=True)
    ls.settimeout(1)
    end = time.time() + seconds
    while time.time() < end:
        try:
            s, _ = ls.accept()
        except socket.timeout:
            continue
        threading.Thread(target=handle, args=(s,), daemon=True).start()
