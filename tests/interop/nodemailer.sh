#!/usr/bin/env bash
# nodemailer's smtp-server (npm) as a real SMTP server for smtpkit's SASL
# interop tests.
#
#   tests/interop/nodemailer.sh install           npm ci in tests/interop/nodemailer
#   tests/interop/nodemailer.sh start STATE_DIR   run nodemailer/server.js on 127.0.0.1
#   tests/interop/nodemailer.sh stop STATE_DIR    stop it (idempotent)
#
# Why: smtp-server is what many Node.js projects use as an SMTP endpoint, it
# implements PLAIN, LOGIN, CRAM-MD5 and XOAUTH2, and its onAuth hook lets us
# answer a bad OAuth2 token exactly the way Gmail does (334 challenge with a
# base64 JSON 401 status, then 535 5.7.8 after the client's empty reply).
#
# Behaviour worth knowing: smtp-server advertises AUTH before STARTTLS and
# answers AUTH there with "538 5.7.0 Error: Must issue a STARTTLS command
# first" (its default; kept). Enhanced status codes are switched on so that
# failures carry 5.7.8 like Gmail's. MAIL needs a successful AUTH (530).
#
# After start, STATE_DIR/env defines NM_HOST, NM_SUBMISSION_PORT (STARTTLS),
# NM_SUBMISSIONS_PORT (implicit TLS), NM_CA_FILE, NM_CAPTURE_DIR, NM_LOG
# (auth attempts with mechanism and user name, redacted protocol trace).
# Users: alice / "correct horse"; XOAUTH2 alice with token "good-token".
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
APP=$HERE/nodemailer
PY=/usr/bin/python3
WAIT_SECS=20

die() { echo "nodemailer.sh: $*" >&2; exit 1; }
say() { echo "nodemailer.sh: $*" >&2; }

# ---------------------------------------------------------------- install

do_install() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    [ "$(id -u)" = 0 ] || die "node/npm missing and not root: apt-get install nodejs npm"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -q update >/dev/null
    apt-get install -y -q --no-install-recommends nodejs npm >/dev/null
  fi
  [ -f "$APP/node_modules/smtp-server/package.json" ] && return 0
  say "installing smtp-server (npm ci) in $APP"
  (cd "$APP" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
}

# ------------------------------------------------------------- helpers

wait_file() {  # wait_file PID FILE: wait until FILE exists while PID lives
  local _
  for _ in $(seq $((WAIT_SECS * 10))); do
    [ -s "$2" ] && return 0
    alive "$1" || return 1
    sleep 0.1
  done
  return 1
}

alive() {  # alive PID: running and not a zombie
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
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

launch() {  # launch DIR: node server.js in a new session, output to the log
  local d=$1
  rm -f "$d/ports"
  # shellcheck disable=SC2094  # server.js appends to the same log file, on purpose
  setsid node "$APP/server.js" --host 127.0.0.1 \
    --cert "$d/tls/server.pem" --key "$d/tls/server.key" \
    --capture-dir "$d/capture" --tmp-dir "$d/tmp" \
    --log "$d/server.log" --ports-file "$d/ports" \
    </dev/null >>"$d/server.log" 2>&1 &
  echo $! > "$d/server.pid"
}

read_port() {  # read_port FILE KEY
  sed -n "s/^$2=\\([0-9][0-9]*\\)\$/\\1/p" "$1"
}

do_start() {
  local state=$1 d pid sub subs
  [ -f "$APP/node_modules/smtp-server/package.json" ] || die "smtp-server not installed; run: $0 install"
  mkdir -p "$state"
  state=$(cd "$state" && pwd)
  d=$state/nodemailer
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
  write_env "$state/env" NM HOST=127.0.0.1 SUBMISSION_PORT="$sub" SUBMISSIONS_PORT="$subs" \
    CA_FILE="$d/tls/ca.pem" CAPTURE_DIR="$d/capture" LOG="$d/server.log"
  say "running: submission $sub (STARTTLS), submissions $subs (TLS); env in $state/env"
}

# ----------------------------------------------------------------- stop

do_stop() {
  local state=$1 d pid
  [ -d "$state" ] || return 0
  d=$(cd "$state" && pwd)/nodemailer
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
