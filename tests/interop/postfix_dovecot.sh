#!/usr/bin/env bash
# Private Postfix 3.7 + Dovecot (SASL only) instance on loopback high ports,
# for smtpkit's interop tests: a real submission server to test STARTTLS,
# implicit TLS, plaintext-AUTH refusal and every SASL mechanism against,
# with every accepted message captured to a file. The system Postfix and
# Dovecot are never touched: all configuration, queues, sockets, pid files
# and logs live under STATE_DIR (with a STATE_DIR path longer than 70 bytes,
# the socket directories go to /tmp/smtpkit-pfd.XXXXXX, see make_run_dir).
#
#   postfix_dovecot.sh install            apt-get what is missing (root)
#   postfix_dovecot.sh start STATE_DIR    build config, start, wait until ready
#   postfix_dovecot.sh stop STATE_DIR     stop everything; idempotent
#
# After start, STATE_DIR/env (KEY=VALUE lines, no quoting needed) holds:
#   PF_HOST=127.0.0.1
#   PF_SUBMISSION_PORT   STARTTLS offered; AUTH advertised/accepted only after
#                        STARTTLS; unauthenticated relay refused
#   PF_SUBMISSIONS_PORT  implicit TLS; AUTH after the handshake
#   PF_PLAIN_PORT        no TLS at all; AUTH advertised in plaintext
#   PF_CA_FILE           CA that signed the server certificate, which names
#                        DNS:localhost only: connect to "localhost" to verify
#                        it; 127.0.0.1 gives a certificate name mismatch
#   PF_CAPTURE_DIR       one file per accepted message (see below)
#   PF_LOG               Postfix and Dovecot log (one file)
#
# Capture: a pipe(8) transport runs postfix_dovecot/capture.sh for every
# message, with all recipients in one delivery, so one accepted message is one
# file in PF_CAPTURE_DIR. The file is the message as received after SMTP
# un-dot-stuffing, with LF line endings (every CRLF -> LF), 8-bit bytes
# intact, and exactly one addition: Postfix's own Received: header (three
# lines, folded with a TAB) at the top. No header is added, dropped or
# rewritten (no Date/Message-ID/To added; Bcc, Return-Path and Content-Length
# kept - message_drop_headers is empty), no MIME conversion. One Postfix
# quirk: a bare CR (not followed by LF) arrives as a space. The envelope is
# in PF_CAPTURE_DIR.envelope/<same name>: "MAIL FROM:<..>" then one
# "RCPT TO:<..>" per recipient, in Postfix's (not the client's) order. File
# names are <ns since epoch>.<queue id> and sort in delivery order; files
# are renamed into place complete, so a poller never sees half a file.
# Postfix-generated notices (e.g. the DSN for NOTIFY=SUCCESS) go to
# STATE_DIR/notices, never to PF_CAPTURE_DIR.
#
# Users (Dovecot passwd-file; mechanisms PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1
# SCRAM-SHA-256 are all advertised):
#   alice             "correct horse"          plaintext: every mechanism works
#   bob@example.test  "p@ss:word with spaces"  plaintext ({PLAIN.b64}, because
#                                              ':' separates passwd-file fields)
#   hashed            "hashed secret"          SHA512-CRYPT: PLAIN/LOGIN only
#   ünïcode           "pässwörd"               plaintext, UTF-8
# A failed login is a 535 within ~0.5 s: auth_failure_delay = 0 (Dovecot
# flushes failures on a 0.5 s timer) and Dovecot's auth penalty is off. For
# slow failures / "454 4.7.0 Connection lost to authentication server", start
# with PF_AUTH_PENALTY=1 (Dovecot defaults: 2 s delay, penalty on; measured:
# 2 s, then 6 s per failure).
#
# Log: Postfix writes through postlogd (maillog_file), Dovecot through
# log_path, into the same file. Postfix logs asynchronously, so poll for a
# line rather than reading once. start makes one EHLO probe per port and then
# appends a line "smtpkit-harness: ready"; test traffic comes after it.
# smtpd_client_port_logging is on, so "connect from unknown[127.0.0.1]:PORT"
# ties a log line to a client's local port.
#
# Requirements: root (Postfix's master must start as root), and STATE_DIR
# reachable by the users nobody (pipe delivery) and dovecot (passwd-file):
# start makes STATE_DIR itself mode 755 but leaves its parents alone.
# STATE_DIR may only contain [A-Za-z0-9._/+-] (it ends up in Postfix and
# Dovecot config files unquoted).
#
# System files: none are modified by start/stop. `postfix -c DIR` run as root
# does not need alternate_config_directories in /etc/postfix/main.cf.
# `install` may (only when a package is missing) preseed debconf, create a
# temporary /usr/sbin/policy-rc.d (if none exists) so the package scripts do
# not start the system services, and on systemd machines disable the system
# postfix/dovecot services it has just installed.
#
# Ports: four free ports (three SMTP, one Dovecot auth) are picked from
# 20000-32767, below Linux's ephemeral range, under a lock so that concurrent
# starts in different STATE_DIRs never pick the same ones.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/harness.sh
. "$HERE/lib/harness.sh"
TEMPLATES=$HERE/postfix_dovecot
CA_SH=$HERE/lib/ca.sh
PORT_LOCK=${TMPDIR:-/tmp}/smtpkit-interop-ports.lock
READY_TIMEOUT=20        # seconds start waits for the servers to answer
STOP_TIMEOUT=10         # seconds stop waits for each master to exit
PACKAGES=(postfix dovecot-core openssl iproute2 procps util-linux)

log() { echo "postfix_dovecot.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n 's/^#   \(postfix_dovecot.sh \)/\1/p' "$0" >&2; exit 2; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root (Postfix's master starts as root)"; }

# ---------------------------------------------------------------- install

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

do_install() {
  need_root
  local missing=() p
  for p in "${PACKAGES[@]}"; do pkg_installed "$p" || missing+=("$p"); done
  if [ ${#missing[@]} -eq 0 ]; then log "all packages present"; return 0; fi
  log "installing: ${missing[*]}"
  # "No configuration": the system Postfix gets no main.cf and so never runs.
  if [[ " ${missing[*]} " == *" postfix "* ]]; then
    echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
  fi
  local policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then        # refuse service starts during the install
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
    trap 'rm -f "'"$policy"'"' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  if [ -d /run/systemd/system ]; then  # keep the new system services off at boot
    for p in "${missing[@]}"; do
      case $p in
        postfix) systemctl disable --now postfix.service >/dev/null 2>&1 || true ;;
        dovecot-core) systemctl disable --now dovecot.service >/dev/null 2>&1 || true ;;
      esac
    done
  fi
}

# ---------------------------------------------------------------- helpers

# state_path DIR: absolute path of DIR (created), after checking its name.
state_path() {
  local dir=${1:?STATE_DIR missing}
  [[ $dir =~ ^[A-Za-z0-9._/+-]+$ ]] || die "STATE_DIR '$dir' may only contain [A-Za-z0-9._/+-]"
  mkdir -p "$dir"
  (cd "$dir" && pwd -P)
}

# render TEMPLATE OUT: copy TEMPLATE, replacing the @NAME@ placeholders.
render() {
  sed -e "s|@STATE@|$STATE|g" \
      -e "s|@SUBMISSION_PORT@|$SUBMISSION_PORT|g" \
      -e "s|@SUBMISSIONS_PORT@|$SUBMISSIONS_PORT|g" \
      -e "s|@PLAIN_PORT@|$PLAIN_PORT|g" \
      -e "s|@AUTH_PORT@|$AUTH_PORT|g" \
      -e "s|@RUN@|$RUN|g" \
      -e "s|@AUTH_FAILURE_DELAY@|$AUTH_FAILURE_DELAY|g" \
      -e "s|@PENALTY_MODE@|$PENALTY_MODE|g" \
      "$1" >"$2"
  if grep -q '@[A-Z_]*@' "$2"; then die "unfilled placeholder in $2"; fi
}

# pick_ports: set SUBMISSION_PORT SUBMISSIONS_PORT PLAIN_PORT AUTH_PORT to
# distinct ports nobody listens on (caller holds PORT_LOCK).
pick_ports() {
  local picked=() p
  for _ in $(seq 1 400); do
    [ ${#picked[@]} -eq 4 ] && break
    p=$((20000 + RANDOM % 12768))
    [[ " ${picked[*]} " == *" $p "* ]] && continue
    port_listening "$p" && continue
    picked+=("$p")
  done
  [ ${#picked[@]} -eq 4 ] || die "could not find 4 free ports in 20000-32767"
  SUBMISSION_PORT=${picked[0]} SUBMISSIONS_PORT=${picked[1]}
  PLAIN_PORT=${picked[2]} AUTH_PORT=${picked[3]}
}

# ---------------------------------------------------------------- start

# Unix socket paths may not exceed 107 bytes. The Postfix command connects to
# $queue_directory/public/postlog and Dovecot makes sockets of up to 23-byte
# names in its base_dir, so with a STATE_DIR longer than 70 bytes both
# directories go to a short /tmp/smtpkit-pfd.XXXXXX instead, linked from
# STATE_DIR/run and removed by stop. Sets RUN (STATE_DIR or that directory).
make_run_dir() {
  RUN=$STATE
  [ ${#STATE} -gt 70 ] || return 0
  RUN=$(mktemp -d /tmp/smtpkit-pfd.XXXXXX)
  chmod 755 "$RUN"
  ln -s "$RUN" "$STATE/run"
}

# remove_run_dir: remove the short directory of make_run_dir, if any.
remove_run_dir() {
  local target
  [ -L "$STATE/run" ] || return 0
  target=$(readlink "$STATE/run")
  case $target in /tmp/smtpkit-pfd.??????) rm -rf "$target" ;; esac
  rm -f "$STATE/run"
}

make_dirs() {
  local d
  # start from scratch, but only ever remove what this script creates
  remove_run_dir
  for d in tls postfix postfix-queue postfix-data dovecot dovecot-run dovecot-state \
           bin spool capture capture.envelope notices notices.envelope; do
    rm -rf "${STATE:?}/$d"
  done
  rm -f "$STATE/env" "$STATE/mail.log" "$STATE/harness.pids" "$STATE/start.out"
  chmod 755 "$STATE"
  make_run_dir
  mkdir -m 755 "$STATE/postfix" "$RUN/postfix-queue" "$STATE/dovecot" "$STATE/bin" \
    "$RUN/dovecot-run"
  mkdir -m 700 "$STATE/postfix-data" "$STATE/dovecot-state"
  chown postfix: "$STATE/postfix-data"
  for d in spool capture capture.envelope notices notices.envelope; do
    mkdir -m 755 "$STATE/$d"
    chown nobody: "$STATE/$d"
  done
  install -m 644 /dev/null "$STATE/mail.log"
}

make_tls() {
  "$CA_SH" "$STATE/tls" >/dev/null || die "ca.sh failed"   # DNS:localhost only
  chmod 600 "$STATE/tls/server.key" "$STATE/tls/ca.key"
}

# Dovecot passwd-file; readable by the auth process (user dovecot).
make_users() {
  local hash b64
  hash=$(openssl passwd -6 'hashed secret')
  b64=$(printf '%s' 'p@ss:word with spaces' | base64)
  {
    printf '%s\n' 'alice:{PLAIN}correct horse'
    printf '%s\n' "bob@example.test:{PLAIN.b64}$b64"
    printf '%s\n' "hashed:{SHA512-CRYPT}$hash"
    printf '%s\n' 'ünïcode:{PLAIN}pässwörd'
  } >"$STATE/dovecot/users"
  chown root:dovecot "$STATE/dovecot/users"
  chmod 640 "$STATE/dovecot/users"
}

make_config() {
  render "$TEMPLATES/main.cf.in" "$STATE/postfix/main.cf"
  render "$TEMPLATES/master.cf.in" "$STATE/postfix/master.cf"
  render "$TEMPLATES/dovecot.conf.in" "$STATE/dovecot/dovecot.conf"
  install -m 755 "$TEMPLATES/capture.sh" "$STATE/bin/capture"
}

check_access() {
  local hint="make its parent directories searchable by others (chmod o+x), e.g. not inside a 0700 mktemp dir"
  if ! can_access nobody -w "$STATE/spool" || ! can_access nobody -x "$STATE/bin/capture"; then
    die "user nobody cannot reach $STATE (pipe delivery would fail): $hint"
  fi
  can_access dovecot -r "$STATE/dovecot/users" ||
    die "user dovecot cannot read $STATE/dovecot/users: $hint"
}

# start_servers: start both masters. Their output goes to a file, not a
# pipe (the daemonized masters keep their stderr open), and they must not
# inherit the port lock.
start_servers() {
  local out=$STATE/start.out
  dovecot -c "$STATE/dovecot/dovecot.conf" >"$out" 2>&1 </dev/null {lockfd}>&- ||
    die "dovecot failed to start: $(cat "$out")"
  postfix -c "$STATE/postfix" start >>"$out" 2>&1 </dev/null {lockfd}>&- ||
    die "postfix failed to start: $(cat "$out")"
}

# save_pids: remember both masters (stop also finds them without this).
save_pids() {
  {
    echo "postfix $(head -n1 "$RUN/postfix-queue/pid/master.pid" | tr -d ' ')"
    echo "dovecot $(head -n1 "$RUN/dovecot-run/master.pid")"
  } >"$STATE/harness.pids"
}

# read_reply_line FD: read one line into $line, waiting at most 3 s and never
# past $DEADLINE (a value of $SECONDS).
read_reply_line() {
  local t=$((DEADLINE - SECONDS))
  [ "$t" -ge 1 ] || return 1
  [ "$t" -le 3 ] || t=3
  IFS= read -r -t "$t" -u "$1" line
}

# ehlo_reply PORT [tls]: print the server's EHLO reply lines (CR stripped).
# Reads the banner first and waits for each reply, so no pipelining is
# logged; every read is bounded (read_reply_line).
ehlo_reply() {
  local port=$1 mode=${2:-plain} rfd wfd pid='' line status=1
  if [ "$mode" = tls ]; then
    coproc PROBE { exec openssl s_client -quiet -crlf -connect "127.0.0.1:$port" \
      -servername localhost -CAfile "$STATE/tls/ca.pem" -verify_return_error 2>/dev/null; }
    rfd=${PROBE[0]} wfd=${PROBE[1]} pid=$PROBE_PID
  else
    exec {rfd}<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null || return 1
    wfd=$rfd
  fi
  if read_reply_line "$rfd" && [[ $line == 220* ]]; then
    printf 'EHLO harness-probe\r\n' 1>&"$wfd"
    for _ in $(seq 1 50); do
      read_reply_line "$rfd" || break
      line=${line%$'\r'}
      echo "$line"
      if [[ $line == "250 "* ]]; then status=0; break; fi
    done
    { printf 'QUIT\r\n' 1>&"$wfd"; } 2>/dev/null || true
  fi
  if [ -n "$pid" ]; then
    exec {wfd}>&- {rfd}<&- 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  else
    exec {rfd}>&-
  fi
  return $status
}

# ports_ready: every port answers as the contract says.
ports_ready() {
  local r
  r=$(ehlo_reply "$PLAIN_PORT") || return 1
  grep -q '^250-AUTH ' <<<"$r" && ! grep -q STARTTLS <<<"$r" || return 1
  r=$(ehlo_reply "$SUBMISSION_PORT") || return 1
  grep -q STARTTLS <<<"$r" && ! grep -q AUTH <<<"$r" || return 1
  r=$(ehlo_reply "$SUBMISSIONS_PORT" tls) || return 1
  grep -q '^250-AUTH ' <<<"$r"
}

# wait_ready: poll until ports_ready, for at most READY_TIMEOUT seconds.
wait_ready() {
  DEADLINE=$((SECONDS + READY_TIMEOUT))
  for _ in $(seq 1 $((READY_TIMEOUT * 4))); do
    ports_ready && return 0
    [ "$SECONDS" -lt "$DEADLINE" ] || return 1
    sleep 0.25
  done
  return 1
}

write_env() {
  cat >"$STATE/env.tmp" <<EOF
PF_HOST=127.0.0.1
PF_SUBMISSION_PORT=$SUBMISSION_PORT
PF_SUBMISSIONS_PORT=$SUBMISSIONS_PORT
PF_PLAIN_PORT=$PLAIN_PORT
PF_CA_FILE=$STATE/tls/ca.pem
PF_CAPTURE_DIR=$STATE/capture
PF_LOG=$STATE/mail.log
EOF
  mv "$STATE/env.tmp" "$STATE/env"
}

start_failed() {
  log "error: servers did not answer as expected within ${READY_TIMEOUT}s; last log lines:"
  tail -n 20 "$STATE/mail.log" >&2 || true
  exit 1
}

# on_start_exit: EXIT trap during start; a start that did not finish stops
# whatever it had started.
on_start_exit() {
  [ -n "${START_OK:-}" ] && return 0
  log "start failed; stopping what was started"
  do_stop
}

do_start() {
  need_root
  local cmd
  for cmd in postfix dovecot ss openssl setpriv flock; do
    command -v "$cmd" >/dev/null || die "$cmd not found: run '$0 install' first"
  done
  STATE=$(state_path "${1:-}")
  do_stop                               # a previous instance in this dir
  AUTH_FAILURE_DELAY=0 PENALTY_MODE=0
  if [ "${PF_AUTH_PENALTY:-0}" = 1 ]; then AUTH_FAILURE_DELAY=2s PENALTY_MODE=0600; fi
  make_dirs
  make_tls
  make_users
  exec {lockfd}>"$PORT_LOCK"
  flock -w 30 "$lockfd" || log "warning: $PORT_LOCK still locked after 30s; going on without it"
  pick_ports
  make_config
  check_access
  trap on_start_exit EXIT
  trap 'exit 1' INT TERM HUP          # so that the EXIT trap runs
  start_servers
  wait_ready || start_failed
  save_pids
  exec {lockfd}>&-
  echo "$(date '+%b %d %H:%M:%S') smtpkit-harness: ready submission=$SUBMISSION_PORT submissions=$SUBMISSIONS_PORT plain=$PLAIN_PORT dovecot-auth=$AUTH_PORT" \
    >>"$STATE/mail.log"
  write_env
  START_OK=1
  log "ready: $STATE/env"
}

# ---------------------------------------------------------------- stop

# master_pid NAME: the pid of this STATE_DIR's postfix or dovecot master, if
# it is running (checked against /proc, so a stale pid file never makes us
# signal somebody else's process).
master_pid() {
  local pid=''
  [ -f "$STATE/harness.pids" ] && pid=$(awk -v n="$1" '$1 == n { print $2 }' "$STATE/harness.pids")
  if [ -z "$pid" ]; then
    case $1 in
      postfix) pid=$(head -n1 "$(run_dir)/postfix-queue/pid/master.pid" 2>/dev/null | tr -d ' ') ;;
      dovecot) pid=$(head -n1 "$(run_dir)/dovecot-run/master.pid" 2>/dev/null) ;;
    esac
  fi
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  case $1 in     # postfix: MAIL_CONFIG in its environment; dovecot: -c FILE
    postfix) { tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep -qxF "MAIL_CONFIG=$STATE/postfix" ;;
    dovecot) { tr '\0' '\n' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qxF "$STATE/dovecot/dovecot.conf" ;;
  esac && echo "$pid"
}

# session_pids SID: live (non-zombie) processes of session SID other than
# SID itself; both masters are session leaders.
session_pids() { ps -e -o pid=,sid=,stat= | awk -v s="$1" '$2 == s && $1 != s && $3 !~ /^Z/ { print $1 }'; }

# do_stop: SIGTERM both masters (what `postfix stop` and `dovecot stop` do),
# wait for them (each takes 2-3 s), then SIGKILL whatever of their sessions
# is left. Does nothing if nothing runs.
do_stop() {
  local masters=() left=() p
  [ -d "$STATE" ] || return 0
  for p in "$(master_pid postfix)" "$(master_pid dovecot)"; do
    [ -n "$p" ] && masters+=("$p")
  done
  if [ ${#masters[@]} -gt 0 ]; then
    kill -TERM "${masters[@]}" 2>/dev/null || true
    if ! wait_gone "$STOP_TIMEOUT" "${masters[@]}"; then
      log "masters still running after ${STOP_TIMEOUT}s; killing ${masters[*]}"
      kill -KILL "${masters[@]}" 2>/dev/null || true
    fi
    for p in "${masters[@]}"; do
      mapfile -t -O "${#left[@]}" left < <(session_pids "$p")
    done
    if [ ${#left[@]} -gt 0 ] && ! wait_gone 3 "${left[@]}"; then
      log "killing leftover processes: ${left[*]}"
      kill -KILL "${left[@]}" 2>/dev/null || true
    fi
  fi
  remove_run_dir
  rm -f "$STATE/env" "$STATE/harness.pids"
}

# ---------------------------------------------------------------- main

case ${1:-} in
  install) do_install ;;
  start) [ $# -eq 2 ] || usage; do_start "$2" ;;
  stop)
    [ $# -eq 2 ] || usage
    [ -d "$2" ] || exit 0
    need_root
    STATE=$(cd "$2" && pwd -P)
    do_stop ;;
  *) usage ;;
esac
