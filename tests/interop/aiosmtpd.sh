#!/usr/bin/env bash
# aiosmtpd (Debian's python3-aiosmtpd) as a real SMTP server for smtpkit's
# SASL interop tests.
#
#   tests/interop/aiosmtpd.sh install           apt-get install python3-aiosmtpd if missing
#   tests/interop/aiosmtpd.sh start STATE_DIR   run aiosmtpd_server.py on 127.0.0.1
#   tests/interop/aiosmtpd.sh stop STATE_DIR    stop it (idempotent)
#
# Why: aiosmtpd is the common Python SMTP server; it is strict about TLS.
# On the submission port it requires STARTTLS before anything but EHLO/HELO/
# NOOP/RSET/QUIT ("530 Must issue a STARTTLS command first") and advertises
# AUTH (PLAIN, LOGIN) only after STARTTLS. A second port speaks implicit TLS.
# See aiosmtpd_server.py for details.
#
# After start, STATE_DIR/env defines AIO_HOST, AIO_SUBMISSION_PORT (STARTTLS),
# AIO_SUBMISSIONS_PORT (implicit TLS), AIO_CA_FILE, AIO_CAPTURE_DIR, AIO_LOG.
# Users: alice / "correct horse".
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3   # Debian's python, where python3-aiosmtpd lives
WAIT_SECS=20

die() { echo "aiosmtpd.sh: $*" >&2; exit 1; }
say() { echo "aiosmtpd.sh: $*" >&2; }

# ---------------------------------------------------------------- install

do_install() {
  dpkg -s python3-aiosmtpd >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || die "python3-aiosmtpd missing and not root: apt-get install python3-aiosmtpd"
  say "installing python3-aiosmtpd"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends python3-aiosmtpd >/dev/null 2>&1 ||
    { apt-get -q update >/dev/null
      apt-get install -y -q --no-install-recommends python3-aiosmtpd >/dev/null; }
}

# ------------------------------------------------------------- helpers

alive() {  # alive PID: running and not a zombie
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

wait_file() {  # wait_file PID FILE: wait until FILE exists while PID lives
  local _
  for _ in $(seq $((WAIT_SECS * 10))); do
    [ -s "$2" ] && return 0
    alive "$1" || return 1
    sleep 0.1
  done
  return 1
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

launch() {  # launch DIR: the server in a new session, logging to DIR/server.log
  local d=$1
  rm -f "$d/ports"
  setsid "$PY" -u "$HERE/aiosmtpd_server.py" --host 127.0.0.1 \
    --cert "$d/tls/server.pem" --key "$d/tls/server.key" \
    --capture-dir "$d/capture" --tmp-dir "$d/tmp" --ports-file "$d/ports" \
    </dev/null >>"$d/server.log" 2>&1 &
  echo $! > "$d/server.pid"
}

read_port() {  # read_port FILE KEY
  sed -n "s/^$2=\\([0-9][0-9]*\\)\$/\\1/p" "$1"
}

do_start() {
  local state=$1 d pid sub subs
  "$PY" -c 'import aiosmtpd' 2>/dev/null || die "python3-aiosmtpd not installed; run: $0 install"
  mkdir -p "$state"
  state=$(cd "$state" && pwd)
  d=$state/aiosmtpd
  if pid=$(cat "$d/server.pid" 2>/dev/null) && [ -n "$(session_pids "$pid" "$d/")" ]; then
    die "already running (pid $pid); stop it first"
  fi
  mkdir -p "$d/capture" "$d/tmp"
  bash "$HERE/lib/ca.sh" "$d/tls" DNS:localhost IP:127.0.0.1 IP:::1
  launch "$d"
  pid=$(cat "$d/server.pid")
  wait_file "$pid" "$d/ports" || { tail -n 5 "$d/server.log" >&2; die "server did not start; see $d/server.log"; }
  sub=$(read_port "$d/ports" SUBMISSION_PORT)
  subs=$(read_port "$d/ports" SUBMISSIONS_PORT)
  if ! wait_smtp "$pid" "$sub" plain "$d/tls/ca.pem" || ! wait_smtp "$pid" "$subs" tls "$d/tls/ca.pem"; then
    kill_session "$pid" "$d/"
    tail -n 5 "$d/server.log" >&2
    die "server does not answer; see $d/server.log"
  fi
  write_env "$state/env" AIO HOST=127.0.0.1 SUBMISSION_PORT="$sub" SUBMISSIONS_PORT="$subs" \
    CA_FILE="$d/tls/ca.pem" CAPTURE_DIR="$d/capture" LOG="$d/server.log"
  say "running: submission $sub (STARTTLS), submissions $subs (TLS); env in $state/env"
}

# ----------------------------------------------------------------- stop

do_stop() {
  local state=$1 d pid
  [ -d "$state" ] || return 0
  d=$(cd "$state" && pwd)/aiosmtpd
  pid=$(cat "$d/server.pid" 2>/dev/null) || return 0
  kill_session "$pid" "$d/"
  rm -f "$d/server.pid"
}

case "${1:-}" in
  install) do_install ;;
  start) do_start "${2:?usage: $0 start STATE_DIR}" ;;
  stop) do_stop "${2:?usage: $0 stop STATE_DIR}" ;;
  *) echo "usage: $0 install | start STATE_DIR | stop STATE_DIR" >&2; exit 2 ;;
esac
