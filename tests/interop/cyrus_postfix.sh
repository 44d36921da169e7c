#!/usr/bin/env bash
# Private Postfix 3.7 whose SASL is Cyrus SASL (libsasl2, in-process, with
# the sasldb auxprop plugin), on loopback high ports, for smtpkit's interop
# tests: a second, independent SASL server implementation behind Postfix
# (postfix_dovecot.sh is the Dovecot one), with every accepted message
# captured to a file. The system Postfix is never touched: configuration,
# queue, SASL config, sasldb, pid files and the log live under STATE_DIR
# (with a STATE_DIR longer than 70 bytes the queue goes to
# /tmp/smtpkit-cyp.XXXXXX, see make_run_dir). It runs beside a
# postfix_dovecot.sh instance: own config directory, queue and ports.
#
#   cyrus_postfix.sh install            apt-get what is missing (root)
#   cyrus_postfix.sh start STATE_DIR    build config, start, wait until ready
#   cyrus_postfix.sh stop STATE_DIR     stop everything; idempotent
#
# After start, STATE_DIR/env (KEY=VALUE lines, no quoting needed) holds:
#   CY_HOST=127.0.0.1
#   CY_SUBMISSION_PORT   STARTTLS offered; AUTH advertised/accepted only after
#                        STARTTLS; unauthenticated relay refused
#   CY_SUBMISSIONS_PORT  implicit TLS; AUTH after the handshake
#   CY_CA_FILE           CA that signed the server certificate, which names
#                        DNS:localhost only: connect to "localhost" to verify
#   CY_CAPTURE_DIR       one file per accepted message (see below)
#   CY_LOG               Postfix log, libsasl2's messages included
#
# SASL: smtpd_sasl_type = cyrus. libsasl2 reads
# STATE_DIR/postfix/sasl/smtpd.conf ($config_directory/sasl, the only place
# Debian's Postfix looks: its patch 07_sasl_config.diff overrides
# cyrus_sasl_config_path, which main.cf sets to the same directory anyway;
# Postfix's own chroot is off everywhere), which says pwcheck_method auxprop,
# auxprop_plugin sasldb, sasldb_path STATE_DIR/sasldb2 and this mech_list:
#   PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256
# (advertised in that order; Debian 12's libsasl2-modules also have
# SCRAM-SHA-224/384/512, NTLM and ANONYMOUS, which are left out).
# Realm: Cyrus keys sasldb entries by user@realm. Postfix hands
# smtpd_sasl_local_domain (here "smtpkit.test") to sasl_server_new as the
# user realm, and Cyrus appends it to a login name without "@"; the user is
# stored with `saslpasswd2 -u smtpkit.test`. So "alice" and
# "alice@smtpkit.test" are the same user (Postfix logs
# sasl_username=alice@smtpkit.test), and DIGEST-MD5 offers realm="smtpkit.test".
# Users (clear text in sasldb2, so every mechanism works):
#   alice    "correct horse"
# A failed login is "535 5.7.8 Error: authentication failed: authentication
# failure", at once (no delay); libsasl2's own reason ("Password
# verification failed", "StoredKey mismatch", ...) is only in the log.
#
# Capture: a pipe(8) transport runs cyrus_postfix/capture.sh for every
# message, with all recipients in one delivery, so one accepted message is
# one file in CY_CAPTURE_DIR: the message after SMTP un-dot-stuffing, LF
# line ends, plus Postfix's Received: header on top; nothing else changed.
# The envelope is in CY_CAPTURE_DIR.envelope/<same name>. Names are
# <ns since epoch>.<queue id>; files are renamed into place complete.
# Postfix-generated notices go to STATE_DIR/notices.
#
# Log: Postfix writes through postlogd (maillog_file); libsasl2 logs through
# Postfix (log_level 3 in smtpd.conf). start appends a line
# "smtpkit-harness: ready" after its probes; test traffic comes after it.
#
# Requirements: root (Postfix's master starts as root), and STATE_DIR
# reachable by the users nobody (pipe delivery) and postfix (smtpd reads
# the SASL config and sasldb2): start makes STATE_DIR mode 755 but leaves its
# parents alone. STATE_DIR may only contain [A-Za-z0-9._/+-].
#
# System files: none are modified by start/stop. `install` may (only when a
# package is missing) preseed debconf, create a temporary
# /usr/sbin/policy-rc.d (if none exists) so the package scripts start no
# service, and on systemd machines disable the postfix and saslauthd
# services it has just installed (saslauthd is not used here).
#
# Ports: two free ports from 20000-32767, picked under the same lock file
# as postfix_dovecot.sh (/tmp/smtpkit-interop-ports.lock), held until the
# ports listen, so concurrent starts of either script never collide.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/harness.sh
. "$HERE/lib/harness.sh"
TEMPLATES=$HERE/cyrus_postfix
CA_SH=$HERE/lib/ca.sh
PORT_LOCK=${TMPDIR:-/tmp}/smtpkit-interop-ports.lock
PY=/usr/bin/python3
READY_TIMEOUT=20        # seconds start waits for the server to answer
STOP_TIMEOUT=10         # seconds stop waits for the master to exit
REALM=smtpkit.test
MECHS="PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256"
PACKAGES=(postfix sasl2-bin libsasl2-modules libsasl2-modules-db openssl
          python3 iproute2 procps util-linux)

log() { echo "cyrus_postfix.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n 's/^#   \(cyrus_postfix.sh \)/\1/p' "$0" >&2; exit 2; }

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
  if [ -d /run/systemd/system ]; then  # keep new system services off at boot
    for p in "${missing[@]}"; do
      case $p in
        postfix) systemctl disable --now postfix.service >/dev/null 2>&1 || true ;;
        sasl2-bin) systemctl disable --now saslauthd.service >/dev/null 2>&1 || true ;;
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
      -e "s|@RUN@|$RUN|g" \
      -e "s|@SUBMISSION_PORT@|$SUBMISSION_PORT|g" \
      -e "s|@SUBMISSIONS_PORT@|$SUBMISSIONS_PORT|g" \
      -e "s|@REALM@|$REALM|g" \
      -e "s|@MECHS@|$MECHS|g" \
      "$1" >"$2"
  if grep -q '@[A-Z_]*@' "$2"; then die "unfilled placeholder in $2"; fi
}

# pick_ports: set SUBMISSION_PORT SUBMISSIONS_PORT to distinct ports nobody
# listens on (caller holds PORT_LOCK).
pick_ports() {
  local picked=() p
  for _ in $(seq 1 200); do
    [ ${#picked[@]} -eq 2 ] && break
    p=$((20000 + RANDOM % 12768))
    [[ " ${picked[*]} " == *" $p "* ]] && continue
    port_listening "$p" && continue
    picked+=("$p")
  done
  [ ${#picked[@]} -eq 2 ] || die "could not find 2 free ports in 20000-32767"
  SUBMISSION_PORT=${picked[0]} SUBMISSIONS_PORT=${picked[1]}
}

# ---------------------------------------------------------------- start

# Unix socket paths may not exceed 107 bytes, and the postfix command
# connects to $queue_directory/public/postlog: with a STATE_DIR longer than
# 70 bytes the queue goes to a short /tmp/smtpkit-cyp.XXXXXX instead, linked
# from STATE_DIR/run and removed by stop. Sets RUN.
make_run_dir() {
  RUN=$STATE
  [ ${#STATE} -gt 70 ] || return 0
  RUN=$(mktemp -d /tmp/smtpkit-cyp.XXXXXX)
  chmod 755 "$RUN"
  ln -s "$RUN" "$STATE/run"
}

# remove_run_dir: remove the short directory of make_run_dir, if any.
remove_run_dir() {
  local target
  [ -L "$STATE/run" ] || return 0
  target=$(readlink "$STATE/run")
  case $target in /tmp/smtpkit-cyp.??????) rm -rf "$target" ;; esac
  rm -f "$STATE/run"
}

make_dirs() {
  local d
  # start from scratch, but only ever remove what this script creates
  remove_run_dir
  for d in tls postfix postfix-queue postfix-data bin spool capture \
           capture.envelope notices notices.envelope; do
    rm -rf "${STATE:?}/$d"
  done
  rm -f "$STATE/env" "$STATE/mail.log" "$STATE/harness.pids" "$STATE/start.out" \
    "$STATE"/sasldb2 "$STATE"/sasldb2-lock
  chmod 755 "$STATE"
  make_run_dir
  mkdir -m 755 "$STATE/postfix" "$RUN/postfix-queue" "$STATE/bin"
  mkdir -m 700 "$STATE/postfix-data"
  chown postfix: "$STATE/postfix-data"
  mkdir -m 750 "$STATE/postfix/sasl"
  chown root:postfix "$STATE/postfix/sasl"
  for d in spool capture capture.envelope notices notices.envelope; do
    mkdir -m 755 "$STATE/$d"
    chown nobody: "$STATE/$d"
  done
  install -m 644 /dev/null "$STATE/mail.log"
}

make_tls() {
  "$CA_SH" "$STATE/tls" >/dev/null || die "ca.sh failed"   # DNS:localhost only
  chmod 600 "$STATE/tls/server.key" "$STATE/tls/ca.key"   # smtpd reads it as root
}

# make_users: the sasldb (user@realm -> clear password), readable by smtpd
# (user postfix). saslpasswd2 -p reads the password from stdin.
make_users() {
  local db=$STATE/sasldb2
  printf '%s' 'correct horse' | saslpasswd2 -p -c -f "$db" -u "$REALM" alice ||
    die "saslpasswd2 failed"
  sasldblistusers2 -f "$db" | grep -q "^alice@$REALM:" ||
    die "alice@$REALM is not in $db"
  # the database (Berkeley DB on Debian 12) and, were it LMDB, its lock file
  chown root:postfix "$db"
  chmod 640 "$db"
  if [ -e "$db-lock" ]; then chown root:postfix "$db-lock"; chmod 660 "$db-lock"; fi
}

make_config() {
  render "$TEMPLATES/main.cf.in" "$STATE/postfix/main.cf"
  render "$TEMPLATES/master.cf.in" "$STATE/postfix/master.cf"
  render "$TEMPLATES/smtpd.conf.in" "$STATE/postfix/sasl/smtpd.conf"
  chown root:postfix "$STATE/postfix/sasl/smtpd.conf"
  chmod 640 "$STATE/postfix/sasl/smtpd.conf"
  install -m 755 "$TEMPLATES/capture.sh" "$STATE/bin/capture"
}

check_access() {
  local hint="make its parent directories searchable by others (chmod o+x), e.g. not inside a 0700 mktemp dir"
  if ! can_access nobody -w "$STATE/spool" || ! can_access nobody -x "$STATE/bin/capture"; then
    die "user nobody cannot reach $STATE (pipe delivery would fail): $hint"
  fi
  if ! can_access postfix -r "$STATE/sasldb2" ||
     ! can_access postfix -r "$STATE/postfix/sasl/smtpd.conf"; then
    die "user postfix cannot read $STATE/sasldb2 or $STATE/postfix/sasl/smtpd.conf: $hint"
  fi
}

# start_server: start the master. Its output goes to a file, not a pipe (the
# daemonized master keeps its stderr open); it must not inherit the lock.
start_server() {
  local out=$STATE/start.out
  postfix -c "$STATE/postfix" start >"$out" 2>&1 </dev/null {lockfd}>&- ||
    die "postfix failed to start: $(cat "$out")"
}

save_pids() {
  echo "postfix $(head -n1 "$RUN/postfix-queue/pid/master.pid" | tr -d ' ')" >"$STATE/harness.pids"
}

# probe: one EHLO round per port, no AUTH attempt. Succeeds when the
# submission port offers STARTTLS and no AUTH in the clear, then exactly
# MECHS after STARTTLS, and the submissions port offers MECHS after its TLS
# handshake. Every socket operation is bounded (3 s).
probe() {
  "$PY" - "$SUBMISSION_PORT" "$SUBMISSIONS_PORT" "$STATE/tls/ca.pem" "$MECHS" <<'EOF'
import smtplib, ssl, sys
sub, subs, ca, mechs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
want = set(mechs.split())
ctx = ssl.create_default_context(cafile=ca)

def auth_set(s):
    code, _ = s.ehlo("harness-probe")
    if code != 250:
        raise SystemExit(f"EHLO {code}")
    return set(s.esmtp_features.get("auth", "").split())

try:
    with smtplib.SMTP("localhost", sub, timeout=3) as s:
        if auth_set(s):
            raise SystemExit("submission: AUTH offered before STARTTLS")
        if not s.has_extn("starttls"):
            raise SystemExit("submission: no STARTTLS")
        s.starttls(context=ctx)
        got = auth_set(s)
        if got != want:
            raise SystemExit(f"submission after STARTTLS: AUTH {sorted(got)}, want {sorted(want)}")
    with smtplib.SMTP_SSL("localhost", subs, timeout=3, context=ctx) as s:
        got = auth_set(s)
        if got != want:
            raise SystemExit(f"submissions: AUTH {sorted(got)}, want {sorted(want)}")
except (OSError, smtplib.SMTPException) as e:
    raise SystemExit(f"{type(e).__name__}: {e}")
EOF
}

# wait_ready: poll until probe succeeds, for at most READY_TIMEOUT seconds.
wait_ready() {
  local deadline=$((SECONDS + READY_TIMEOUT)) why=''
  for _ in $(seq 1 $((READY_TIMEOUT * 4))); do
    why=$(probe 2>&1) && return 0
    [ "$SECONDS" -lt "$deadline" ] || break
    pid_alive "$(head -n1 "$RUN/postfix-queue/pid/master.pid" 2>/dev/null | tr -d ' ')" ||
      { why="master exited; $why"; break; }
    sleep 0.25
  done
  log "last probe: $why"
  return 1
}

write_env() {
  cat >"$STATE/env.tmp" <<EOF
CY_HOST=127.0.0.1
CY_SUBMISSION_PORT=$SUBMISSION_PORT
CY_SUBMISSIONS_PORT=$SUBMISSIONS_PORT
CY_CA_FILE=$STATE/tls/ca.pem
CY_CAPTURE_DIR=$STATE/capture
CY_LOG=$STATE/mail.log
EOF
  mv "$STATE/env.tmp" "$STATE/env"
}

start_failed() {
  log "error: server did not answer as expected within ${READY_TIMEOUT}s; last log lines:"
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
  for cmd in postfix saslpasswd2 sasldblistusers2 ss openssl setpriv flock "$PY"; do
    command -v "$cmd" >/dev/null || die "$cmd not found: run '$0 install' first"
  done
  STATE=$(state_path "${1:-}")
  do_stop                               # a previous instance in this dir
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
  start_server
  wait_ready || start_failed
  save_pids
  exec {lockfd}>&-
  echo "$(date '+%b %d %H:%M:%S') smtpkit-harness: ready submission=$SUBMISSION_PORT submissions=$SUBMISSIONS_PORT" \
    >>"$STATE/mail.log"
  write_env
  START_OK=1
  log "ready: $STATE/env"
}

# ---------------------------------------------------------------- stop

# master_pid: the pid of this STATE_DIR's Postfix master, if it runs
# (checked against its environment, so a stale pid file never makes us
# signal somebody else's process - e.g. a postfix_dovecot.sh master).
master_pid() {
  local pid=''
  [ -f "$STATE/harness.pids" ] && pid=$(awk '$1 == "postfix" { print $2 }' "$STATE/harness.pids")
  [ -n "$pid" ] || pid=$(head -n1 "$(run_dir)/postfix-queue/pid/master.pid" 2>/dev/null | tr -d ' ')
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  { tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep -qxF "MAIL_CONFIG=$STATE/postfix" &&
    echo "$pid"
  return 0
}

# session_pids SID: live (non-zombie) processes of session SID other than
# SID itself; the master is a session leader.
session_pids() { ps -e -o pid=,sid=,stat= | awk -v s="$1" '$2 == s && $1 != s && $3 !~ /^Z/ { print $1 }'; }

# do_stop: SIGTERM the master (what `postfix stop` does), wait, then SIGKILL
# whatever of its session is left. Does nothing if nothing runs.
do_stop() {
  local master left=()
  [ -d "$STATE" ] || return 0
  master=$(master_pid)
  if [ -n "$master" ]; then
    kill -TERM "$master" 2>/dev/null || true
    if ! wait_gone "$STOP_TIMEOUT" "$master"; then
      log "master still running after ${STOP_TIMEOUT}s; killing $master"
      kill -KILL "$master" 2>/dev/null || true
    fi
    mapfile -t left < <(session_pids "$master")
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
