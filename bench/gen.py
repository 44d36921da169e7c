#!/usr/bin/env python3
"""Test data for bench/run.sh.

    gen.py maildir DIR COUNT SIZE   COUNT messages of about SIZE bytes in a
                                    Maildir (new/), unique Message-IDs
    gen.py one FILE SIZE            one such message
    gen.py attachment BIN EML MB    MB megabytes of pseudo-random bytes in
                                    BIN, and EML: a MIME message with BIN
                                    attached, base64 (what curl and msmtp
                                    are given pre-encoded)
"""
import base64
import os
import random
import sys


def message(i, size):
    head = ("From: bench@example.test\r\nTo: sink@example.test\r\n"
            "Subject: bench message %d\r\nMessage-ID: <bench-%d@example.test>\r\n"
            "\r\n" % (i, i))
    line = "The quick brown fox jumps over the lazy dog, message %d.\r\n" % i
    body = (line * (size // len(line) + 1))[: max(0, size - len(head))]
    return head + body


def main():
    what = sys.argv[1]
    if what == "maildir":
        d, n, size = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        for i in range(n):
            with open(os.path.join(d, "new", "%d.M%dP1.bench" % (1700000000 + i, i)),
                      "w", newline="") as f:
                f.write(message(i, size))
    elif what == "one":
        with open(sys.argv[2], "w", newline="") as f:
            f.write(message(0, int(sys.argv[3])))
    elif what == "attachment":
        bin_path, eml, mb = sys.argv[2], sys.argv[3], int(sys.argv[4])
        rnd = random.Random(42)
        with open(bin_path, "wb") as f:
            for _ in range(mb):
                f.write(rnd.randbytes(1 << 20))
        with open(bin_path, "rb") as src, open(eml, "w", newline="") as out:
            out.write("From: bench@example.test\r\nTo: sink@example.test\r\n"
                      "Subject: big attachment\r\nMIME-Version: 1.0\r\n"
                      "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
                      "--b1\r\nContent-Type: text/plain\r\n\r\nattached\r\n"
                      "--b1\r\nContent-Type: application/octet-stream\r\n"
                      "Content-Transfer-Encoding: base64\r\n"
                      "Content-Disposition: attachment; filename=\"big.bin\"\r\n\r\n")
            for chunk in iter(lambda: src.read(57 * 1024), b""):
                enc = base64.b64encode(chunk)
                out.write("\r\n".join(enc[i:i + 76].decode()
                                      for i in range(0, len(enc), 76)) + "\r\n")
            out.write("--b1--\r\n")
    else:
        sys.exit(__doc__)


main()
