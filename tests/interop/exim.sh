#!/usr/bin/env bash
# Real Exim 4 submission server for smtpkit's SASL interop tests.
#
#   tests/interop/exim.sh install           fetch Exim once into a private cache
#   tests/interop/exim.sh start STATE_DIR   run a private Exim daemon on 127.0.0.1
#   tests/interop/exim.sh stop STATE_DIR    stop it (idempotent)
#
# Why: Exim is a widely deployed MTA with its own SASL and TLS code (GnuTLS
# on Debian); smtpkit must interoperate with it, not just with our own lab.
#
# How Exim runs here (Debian 12): the exim4-daemon-heavy package conflicts
# with postfix, so it is NOT installed. `install` runs `apt-get download
# exim4-daemon-heavy exim4-base` and unpacks them with `dpkg -x` into
# ${SMTPKIT_CACHE:-$HOME/.cache/smtpkit}/exim, installs the shared libraries
# the binary needs that are missing (plain library packages, no conflict),
# and creates the Debian-exim system user the binary was built for.
# `start` (as root) copies the binary into STATE_DIR (the re-exec for
# delivery happens as Debian-exim, which cannot read root's cache) and runs
#   exim4 -C STATE_DIR/exim/exim.conf -bdf
# Because that config is not in Debian's compiled-in TRUSTED_CONFIG_LIST,
# Exim drops root for good and runs everything as Debian-exim (it logs
# "exim user lost privilege for using -C option" to paniclog; harmless).
# That is enough: ports are high, and all files it writes are chowned to
# Debian-exim. No file outside STATE_DIR and the cache is touched.
#
# Server behaviour (see write_config): listens on 127.0.0.1 only; one port
# with STARTTLS, one with implicit TLS (tls_on_connect_ports); AUTH PLAIN,
# LOGIN, CRAM-MD5 for alice / "correct horse", advertised only once TLS is
# on (before TLS, AUTH gets "503 AUTH command used when not advertised");
# any recipient accepted after AUTH, relay refused (550) otherwise;
# message_size_limit 50M; every message goes through a pipe transport into
# the capture dir as one file (CRLF line ends, no Received: header added).
#
# After start, STATE_DIR/env defines EX_HOST, EX_SUBMISSION_PORT,
# EX_SUBMISSIONS_PORT, EX_CA_FILE, EX_CAPTURE_DIR, EX_LOG (Exim's mainlog).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
EXIM_USER=Debian-exim
CACHE=${SMTPKIT_CACHE:-$HOME/.cache/smtpkit}/exim
CACHED_BIN=$CACHE/root/usr/sbin/exim4
WAIT_SECS=20

die() { echo "exim.sh: $*" >&2; exit 1; }
say() { echo "exim.sh: $*" >&2; }

# ---------------------------------------------------------------- install

ensure_user() {
  id "$EXIM_USER" >/dev/null 2>&1 && return 0
  say "creating system user $EXIM_USER"
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin "$EXIM_USER"
}

missing_libs() {  # prints sonames the cached binary cannot resolve
  ldd "$CACHED_BIN" 2>/dev/null | awk '/not found/ {print $1}'
}

fetch_exim() {
  local tmp
  tmp=$(mktemp -d)
  say "downloading exim4-daemon-heavy and exim4-base into $CACHE"
  if ! (cd "$tmp" && apt-get -q -o APT::Sandbox::User=root download \
          exim4-daemon-heavy exim4-base >/dev/null); then
    apt-get -q update >/dev/null
    (cd "$tmp" && apt-get -q -o APT::Sandbox::User=root download \
       exim4-daemon-heavy exim4-base >/dev/null)
  fi
  rm -rf "$CACHE/root.new"
  mkdir -p "$CACHE/root.new"
  local deb
  for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$CACHE/root.new"; done
  dpkg-deb -f "$tmp"/exim4-daemon-heavy_*.deb Depends > "$CACHE/depends"
  rm -rf "$CACHE/root" "$tmp"
  mv "$CACHE/root.new" "$CACHE/root"
}

install_libs() {  # the library packages exim4-daemon-heavy depends on
  [ -z "$(missing_libs)" ] && return 0
  local pkgs=() p
  for p in $(tr ',|' '\n' < "$CACHE/depends" | awk '{print $1}' | grep '^lib'); do
    dpkg -s "$p" >/dev/null 2>&1 || pkgs+=("$p")
  done
  say "installing libraries: ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null ||
    { apt-get -q update >/dev/null
      apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null; }
  [ -z "$(missing_libs)" ] || die "still missing libraries: $(missing_libs | xargs)"
}

do_install() {
  [ "$(id -u)" = 0 ] || die "install must run as root"
  ensure_user
  if [ ! -x "$CACHED_BIN" ] || [ ! -f "$CACHE/depends" ]; then fetch_exim; fi
  install_libs
  "$CACHED_BIN" -C /dev/null -bV >/dev/null 2>&1 ||
    die "$CACHED_BIN does not run; remove $CACHE and retry"
}

# ------------------------------------------------------------- helpers

free_ports() {  # free_ports N: N free TCP ports on 127.0.0.1
  "$PY" - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

wait_smtp() {  # wait_smtp PID PORT plain|tls CA: wait for a 220 greeting
  WAIT_SECS=$WAIT_SECS "$PY" - "$@" <<'EOF'
import os, socket, ssl, sys, time
pid, port, mode, ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
deadline = time.monotonic() + float(os.environ["WAIT_SECS"])

def alive():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

def greeted():
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        if mode == "tls":
            s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
        with s:
            return s.recv(512).startswith(b"220")
    except OSError:
        return False

while time.monotonic() < deadline:
    if not alive():
        sys.exit(f"server process {pid} exited before answering on port {port}")
    if greeted():
        sys.exit(0)
    time.sleep(0.2)
sys.exit(f"no SMTP greeting on 127.0.0.1:{port} ({mode}) within the deadline")
EOF
}

write_env() {  # write_env FILE PREFIX KEY=VALUE...: replace PREFIX_* lines
  local file=$1 prefix=$2 kv
  shift 2
  {
    if [ -f "$file" ]; then grep -v "^${prefix}_" "$file" || true; fi
    for kv in "$@"; do printf '%s_%s=%q\n' "$prefix" "${kv%%=*}" "${kv#*=}"; done
  } > "$file.tmp.$$"
  mv "$file.tmp.$$" "$file"
}

alive() {  # alive PID: running and not a zombie
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

session_pids() {  # session_pids SID MARK: processes of session SID whose command line contains MARK
  local pid sid
  ps -e -o pid=,sid= | while read -r pid sid; do
    [ "$sid" = "$1" ] || continue
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2" && echo "$pid"
  done
  return 0
}

kill_session() {  # kill_session SID MARK: TERM, wait up to 5 s, then KILL
  local pids _
  mapfile -t pids < <(session_pids "$1" "$2")
  [ "${#pids[@]}" -gt 0 ] || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 50); do
    mapfile -t pids < <(session_pids "$1" "$2" | while read -r p; do alive "$p" && echo "$p"; done)
    [ "${#pids[@]}" -gt 0 ] || return 0
    sleep 0.1
  done
  kill -KILL "${pids[@]}" 2>/dev/null || true
}

# ---------------------------------------------------------------- start

make_dirs() {  # make_dirs DIR: runtime tree, writable by Debian-exim
  mkdir -p "$1"/{bin,spool,log,capture,tmp}
  chown "$EXIM_USER:" "$1"/{spool,log,capture,tmp}
  chmod 755 "$1" "$1"/{bin,spool,log,capture,tmp}
  bash "$HERE/lib/ca.sh" "$1/tls" DNS:localhost IP:127.0.0.1 IP:::1
  chgrp "$EXIM_USER" "$1/tls/server.key"
  chmod 640 "$1/tls/server.key"
  cp "$CACHED_BIN" "$1/bin/exim4"
}

check_reachable() {  # Debian-exim must be able to walk down to DIR
  local dir=$1
  runuser -u "$EXIM_USER" -- test -r "$dir/tls/server.key" && return 0
  chmod o+x "$(dirname "$dir")"   # STATE_DIR itself, e.g. from mktemp -d
  runuser -u "$EXIM_USER" -- test -r "$dir/tls/server.key" ||
    die "user $EXIM_USER cannot reach $dir; use a STATE_DIR whose parents are world-searchable (o+x)"
}

write_capture_script() {  # the pipe transport's command: stdin -> capture/<id>.eml
  cat > "$1/bin/capture.sh" <<EOF
#!/bin/sh
# Exim pipe transport: store the message as $1/capture/\$1.eml, via temp + rename.
set -eu
tmp="$1/tmp/\$1.\$\$"
cat > "\$tmp"
mv "\$tmp" "$1/capture/\$1.eml"
EOF
  chmod 755 "$1/bin/capture.sh"
}

write_config() {  # write_config DIR SUBMISSION_PORT SUBMISSIONS_PORT
  local d=$1
  cat > "$d/exim.conf" <<EOF
# Generated by tests/interop/exim.sh; private test instance, loopback only.
primary_hostname = exim.smtpkit.test
exim_path = $d/bin/exim4
local_interfaces = 127.0.0.1
daemon_smtp_ports = $2 : $3
tls_on_connect_ports = $3
daemon_startup_retries = 0
spool_directory = $d/spool
log_file_path = $d/log/%slog
pid_file_path = $d/exim.pid
log_selector = +smtp_connection +smtp_protocol_error +smtp_syntax_error \\
  +incoming_port +received_recipients +tls_cipher
keep_environment =
host_lookup =
rfc1413_query_timeout = 0s
received_header_text =
message_size_limit = 50M
smtp_accept_queue_per_connection = 0
smtp_accept_max = 100
smtp_connect_backlog = 128

tls_advertise_hosts = *
tls_certificate = $d/tls/server.pem
tls_privatekey = $d/tls/server.key
auth_advertise_hosts = \${if def:tls_in_cipher {*}{}}

acl_smtp_rcpt = acl_check_rcpt

begin acl
acl_check_rcpt:
  accept authenticated = *
  deny   message = Relaying not permitted: authentication required

begin routers
capture:
  driver = accept
  transport = capture

begin transports
capture:
  driver = pipe
  command = $d/bin/capture.sh \$message_exim_id
  user = $EXIM_USER
  use_crlf = true
  message_prefix =
  message_suffix =
  batch_max = 1000
  timeout = 30s
  return_fail_output = true

begin retry
*  *  F,1h,10s

begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = \${if and {{eq{\$auth2}{alice}}{eq{\$auth3}{correct horse}}}{yes}{no}}
  server_set_id = \$auth2

login:
  driver = plaintext
  public_name = LOGIN
  server_prompts = Username:: : Password::
  server_condition = \${if and {{eq{\$auth1}{alice}}{eq{\$auth2}{correct horse}}}{yes}{no}}
  server_set_id = \$auth1

cram_md5:
  driver = cram_md5
  public_name = CRAM-MD5
  server_secret = \${if eq{\$auth1}{alice}{correct horse}fail}
  server_set_id = \$auth1
EOF
  chmod 644 "$d/exim.conf"
}

launch() {  # launch DIR: start the daemon in the foreground of a new session
  local d=$1
  touch "$d/log/mainlog"
  chown "$EXIM_USER:" "$d/log/mainlog"
  setsid "$d/bin/exim4" -C "$d/exim.conf" -bdf </dev/null >>"$d/log/stderr" 2>&1 &
  echo $! > "$d/daemon.pid"
}

try_start() {  # try_start DIR: 0 when both ports greet
  local d=$1 ports pid
  read -r -a ports <<< "$(free_ports 2)"
  write_config "$d" "${ports[0]}" "${ports[1]}"
  launch "$d"
  pid=$(cat "$d/daemon.pid")
  if wait_smtp "$pid" "${ports[0]}" plain "$d/tls/ca.pem" &&
     wait_smtp "$pid" "${ports[1]}" tls "$d/tls/ca.pem"; then
    SUBMISSION_PORT=${ports[0]} SUBMISSIONS_PORT=${ports[1]}
    return 0
  fi
  kill_session "$pid" "$d/"
  return 1
}

is_running() {  # is_running DIR
  local pid
  pid=$(cat "$1/daemon.pid" 2>/dev/null) || return 1
  [ -n "$(session_pids "$pid" "$1/")" ]
}

do_start() {
  local state=$1 d attempt
  [ "$(id -u)" = 0 ] || die "start must run as root (files are handed to $EXIM_USER)"
  [ -x "$CACHED_BIN" ] || die "Exim not installed; run: $0 install"
  id "$EXIM_USER" >/dev/null 2>&1 || die "user $EXIM_USER missing; run: $0 install"
  mkdir -p "$state"
  state=$(cd "$state" && pwd)
  [[ $state =~ ^[A-Za-z0-9_./+-]+$ ]] || die "STATE_DIR path must not contain spaces or special characters: $state"
  d=$state/exim
  is_running "$d" && die "already running (pid $(cat "$d/daemon.pid")); stop it first"
  make_dirs "$d"
  check_reachable "$d"
  write_capture_script "$d"
  for attempt in 1 2 3; do   # a free port can be taken between probe and bind
    if try_start "$d"; then
      write_env "$state/env" EX HOST=127.0.0.1 SUBMISSION_PORT="$SUBMISSION_PORT" \
        SUBMISSIONS_PORT="$SUBMISSIONS_PORT" CA_FILE="$d/tls/ca.pem" \
        CAPTURE_DIR="$d/capture" LOG="$d/log/mainlog"
      say "running: submission $SUBMISSION_PORT (STARTTLS), submissions $SUBMISSIONS_PORT (TLS); env in $state/env"
      return 0
    fi
    say "attempt $attempt failed"
  done
  tail -n 5 "$d/log/paniclog" "$d/log/stderr" >&2 2>/dev/null || true
  die "Exim did not start; see $d/log/"
}

# ----------------------------------------------------------------- stop

do_stop() {
  local state=$1 d pid
  [ -d "$state" ] || return 0
  d=$(cd "$state" && pwd)/exim
  pid=$(cat "$d/daemon.pid" 2>/dev/null) || return 0
  kill_session "$pid" "$d/"
  rm -f "$d/daemon.pid"
}

case "${1:-}" in
  install) do_install ;;
  start) do_start "${2:?usage: $0 start STATE_DIR}" ;;
  stop) do_stop "${2:?usage: $0 stop STATE_DIR}" ;;
  *) echo "usage: $0 install | start STATE_DIR | stop STATE_DIR" >&2; exit 2 ;;
esac
