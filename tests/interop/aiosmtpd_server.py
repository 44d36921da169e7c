"""aiosmtpd harness for smtpkit's SASL interop tests; started by tests/interop/aiosmtpd.sh.

Runs with Debian's python3-aiosmtpd (/usr/bin/python3). Two listeners on HOST,
both on free ports picked by the kernel:
  submission  - plain SMTP; STARTTLS required before anything else
                (require_starttls=True: "530 Must issue a STARTTLS command
                first"); AUTH advertised and accepted only after STARTTLS
                (auth_require_tls=True)
  submissions - implicit TLS; AUTH accepted at once
AUTH PLAIN and LOGIN accept alice / "correct horse". RCPT needs a successful
AUTH (550 5.7.1 otherwise). Each accepted message is stored in CAPTURE_DIR as
one file, exactly as received (temp file + rename). When both ports listen,
they are written to PORTS_FILE. Logs go to stderr (the shell script sends
them to the log file); user names are logged, passwords never.

usage: aiosmtpd_server.py --host H --cert PEM --key PEM --capture-dir DIR
           --tmp-dir DIR --ports-file FILE
"""
import argparse
import asyncio
import itertools
import logging
import os
import signal
import ssl
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

USER = b"alice"
PASSWORD = b"correct horse"
SIZE_LIMIT = 50 * 1024 * 1024
HOSTNAME = "aiosmtpd.smtpkit.test"

log = logging.getLogger("harness")


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login == USER and auth_data.password == PASSWORD)
    login = getattr(auth_data, "login", b"")
    log.info("auth mechanism=%s user=%r result=%s peer=%s", mechanism,
             login.decode("utf-8", "replace"), "accepted" if ok else "rejected",
             session.peer)
    return AuthResult(success=ok, handled=False)


class CaptureHandler:
    """Accepts any recipient after AUTH and stores each message as one file."""

    def __init__(self, capture_dir, tmp_dir):
        self.capture_dir = capture_dir
        self.tmp_dir = tmp_dir
        self.sequence = itertools.count(1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if not session.authenticated:
            return "550 5.7.1 Relaying denied: authentication required"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        name = f"{time.time_ns()}-{next(self.sequence):06d}.eml"
        tmp = os.path.join(self.tmp_dir, name)
        with open(tmp, "wb") as f:
            f.write(envelope.original_content)
        os.rename(tmp, os.path.join(self.capture_dir, name))
        log.info("stored file=%s bytes=%d from=%s to=%s", name,
                 len(envelope.original_content), envelope.mail_from,
                 ",".join(envelope.rcpt_tos))
        return f"250 2.0.0 Message stored as {name}"


def tls_context(cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


def smtp_factory(handler, ctx, implicit_tls):
    common = dict(hostname=HOSTNAME, data_size_limit=SIZE_LIMIT,
                  authenticator=authenticator, auth_required=False)
    if implicit_tls:
        # the TLS layer is below SMTP here, so aiosmtpd does not know it is
        # encrypted: do not offer STARTTLS, and allow AUTH on this port
        return lambda: SMTP(handler, auth_require_tls=False, **common)
    return lambda: SMTP(handler, tls_context=ctx, require_starttls=True,
                        auth_require_tls=True, **common)


async def serve(args):
    ctx = tls_context(args.cert, args.key)
    handler = CaptureHandler(args.capture_dir, args.tmp_dir)
    loop = asyncio.get_running_loop()
    plain = await loop.create_server(smtp_factory(handler, ctx, False), args.host, 0)
    secure = await loop.create_server(smtp_factory(handler, ctx, True), args.host, 0, ssl=ctx)
    ports = [s.sockets[0].getsockname()[1] for s in (plain, secure)]
    tmp = args.ports_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"SUBMISSION_PORT={ports[0]}\nSUBMISSIONS_PORT={ports[1]}\n")
    os.rename(tmp, args.ports_file)
    log.info("listening host=%s submission=%d submissions=%d pid=%d",
             args.host, ports[0], ports[1], os.getpid())
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    for server in (plain, secure):
        server.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("host", "cert", "key", "capture-dir", "tmp-dir", "ports-file"):
        parser.add_argument("--" + name, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # aiosmtpd itself sets the deprecated attribute on every AUTH; drop the noise
    logging.getLogger("mail.log").addFilter(
        lambda record: "login_data is deprecated" not in record.getMessage())
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
