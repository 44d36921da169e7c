#!/usr/bin/env bash
# bench/run.sh [SMTPKIT] — smtpkit side by side with its peers, in one run,
# on loopback only; writes bench/results.md (machine, date, a table of
# absolute figures and ratios, the targets of issue 8 met or not).
#
#   A  5,000 x 2 KB messages on one connection, no TLS, to Postfix's
#      smtp-sink: smtpkit --batch vs smtp-source -d -s 1 vs Python smtplib
#   B  the same over STARTTLS + AUTH PLAIN to `smtpkit lab --scenario ok`:
#      smtpkit --batch vs smtplib
#   C  300 messages, one process per message (the sendmail pattern),
#      STARTTLS + AUTH PLAIN to the lab: smtpkit vs msmtp vs curl vs swaks
#   D  one message with a 50 MB attachment over STARTTLS + AUTH (to
#      bench/tls_sink.py: the lab's SIZE limit is 34 MB): wall time and peak
#      RSS of smtpkit (--attach, and the pre-encoded message on stdin) vs
#      curl and msmtp (pre-encoded)
#   E  smtpkit doctor against a host with two silent ports: wall time
#
# A and B take the best of BENCH_REPS rounds (default 5), D of
# BENCH_D_REPS (default 3; msmtp, 40 times slower there, runs once): every
# round runs every client once in turn, so a busy moment on a shared
# machine hits them alike. Every loop is bounded and every
# command runs under `timeout`.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
SMTPKIT=$(realpath "${1:-$root/build/smtpkit}")
REPS=${BENCH_REPS:-5}
D_REPS=${BENCH_D_REPS:-3}
A_N=5000
C_N=300
OUT=$here/results.md

[ -x "$SMTPKIT" ] || { echo "bench: no smtpkit at $SMTPKIT (make build)" >&2; exit 1; }
bash "$root/scripts/deps.sh" bench || exit 1

work=$(mktemp -d /tmp/smtpkit-bench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
export XDG_STATE_HOME=$work/state # the lock-out guard's memory
mkdir -p "$XDG_STATE_HOME"
printf 'correct horse\n' >"$work/pw"
log=$work/errors.log
FROM=bench@example.test
TO=sink@example.test

say() { echo "bench: $*" >&2; }
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() { # wait_port HOST PORT: up to 10 s
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
# secs CMD...: wall seconds of one run (stdout dropped); "" when it failed.
# A shell function (loop) bounds each of its commands itself.
secs() {
  local t0=$EPOCHREALTIME rc
  if [ "$(type -t "$1")" = function ]; then "$@" >/dev/null 2>"$work/last.err"; else
    timeout 300 "$@" >/dev/null 2>"$work/last.err"; fi
  rc=$?
  local t1=$EPOCHREALTIME
  if [ $rc -ne 0 ]; then
    { echo "$* -> exit $rc"; head -5 "$work/last.err"; } >>"$log"
    echo ""
    return
  fi
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}
# min A B: the smaller time ("" stays "": a failed run fails the client)
min() {
  if [ -z "$1" ] || [ -z "$2" ]; then echo ""; return; fi
  awk -v a="$1" -v b="$2" 'BEGIN { print (a < b ? a : b) }'
}
# rounds NAME=CMD-FUNCTION...: REPS rounds, each running every client once
# in turn (so a busy moment on a shared machine hits all of them alike);
# sets each NAME to its best wall time.
rounds() {
  local pair name fn t
  for pair in "$@"; do printf -v "${pair%%=*}" '%s' "x"; done
  for _ in $(seq "$REPS"); do
    for pair in "$@"; do
      name=${pair%%=*} fn=${pair#*=}
      t=$(secs "$fn")
      if [ "${!name}" = x ]; then printf -v "$name" '%s' "$t"; else
        printf -v "$name" '%s' "$(min "${!name}" "$t")"; fi
    done
  done
}
rate() { [ -n "$2" ] && awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }' || echo "failed"; }
ratio() { # ratio A B: A / B, "n/a" if either is missing
  case "$1$2" in *failed* | *n/a*) echo "n/a"; return ;; esac
  [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }' || echo "n/a"
}
meets() { # meets VALUE OP TARGET
  case "$1" in n/a | failed | "") echo "no (not measured)"; return ;; esac
  awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN { ok = op == ">=" ? v >= t : v <= t; print ok ? "**yes**" : "**no**" }'
}

# ---------------------------------------------------------------- data
say "generating messages"
python3 "$here/gen.py" maildir "$work/a" "$A_N" 2200
python3 "$here/gen.py" one "$work/one.eml" 2200
python3 "$here/gen.py" attachment "$work/big.bin" "$work/big.eml" 50
bash "$root/tests/interop/lib/ca.sh" "$work/certs" DNS:localhost IP:127.0.0.1 >/dev/null 2>&1

# ---------------------------------------------------------------- servers
SINK=$(free_port)
sink_user=()
[ "$(id -u)" = 0 ] && sink_user=(-u nobody)
/usr/sbin/smtp-sink "${sink_user[@]}" -4 "127.0.0.1:$SINK" 1000 2>>"$log" &
pids+=($!)
"$SMTPKIT" lab --scenario ok --listen 127.0.0.1:0 --tls-listen '' \
  --ca-out "$work/lab-ca.pem" >"$work/lab.out" 2>"$work/lab.err" &
pids+=($!)
python3 "$here/tls_sink.py" "$work/certs/server.pem" "$work/certs/server.key" \
  >"$work/sink.out" 2>>"$log" &
pids+=($!)
for _ in $(seq 100); do
  grep -q '^listening' "$work/lab.out" 2>/dev/null && grep -q port= "$work/sink.out" && break
  sleep 0.1
done
LAB=$(sed -n 's/.*plain=[^ ]*:\([0-9]*\).*/\1/p' "$work/lab.out")
LAB_CA=$work/lab-ca.pem
TLS_SINK=$(sed -n 's/^port=//p' "$work/sink.out")
wait_port 127.0.0.1 "$SINK" && [ -n "$LAB" ] && [ -n "$TLS_SINK" ] ||
  { say "a server did not start"; cat "$log" >&2; exit 1; }

AUTH=(-u alice --password-file "$work/pw" --auth PLAIN)

# ---------------------------------------------------------------- A
say "A: $A_N x 2 KB, one connection, no TLS (smtp-sink)"
run_a_kit() {
  timeout 300 "$SMTPKIT" send -s "127.0.0.1:$SINK" --tls none \
    --batch "$work/a" -f "$FROM" --to "$TO" --json
}
run_a_src() {
  timeout 300 /usr/sbin/smtp-source -d -s 1 -m "$A_N" -l 2048 -f "$FROM" \
    -t "$TO" "127.0.0.1:$SINK"
}
run_a_py() { timeout 300 python3 "$here/smtplib_batch.py" 127.0.0.1 "$SINK" "$work/a"; }
rounds a_kit=run_a_kit a_src=run_a_src a_py=run_a_py
A_KIT=$(rate $A_N "$a_kit") A_SRC=$(rate $A_N "$a_src") A_PY=$(rate $A_N "$a_py")

# ---------------------------------------------------------------- B
say "B: $A_N x 2 KB, one connection, STARTTLS + AUTH PLAIN (lab)"
run_b_kit() {
  timeout 300 "$SMTPKIT" send -s "127.0.0.1:$LAB" --ca-file "$LAB_CA" \
    "${AUTH[@]}" --batch "$work/a" -f "$FROM" --to "$TO" --json
}
run_b_py() {
  timeout 300 python3 "$here/smtplib_batch.py" 127.0.0.1 "$LAB" "$work/a" \
    "$LAB_CA" alice "$work/pw"
}
rounds b_kit=run_b_kit b_py=run_b_py
B_KIT=$(rate $A_N "$b_kit") B_PY=$(rate $A_N "$b_py")

# ---------------------------------------------------------------- C
say "C: $C_N messages, one process each, STARTTLS + AUTH PLAIN (lab)"
loop() { # loop CMD...: runs CMD C_N times with one.eml on stdin
  for i in $(seq "$C_N"); do
    timeout 30 "$@" <"$work/one.eml" >/dev/null 2>>"$log" || return 1
  done
}
c_kit=$(secs loop "$SMTPKIT" send -s "127.0.0.1:$LAB" --ca-file "$LAB_CA" \
  "${AUTH[@]}" -f "$FROM" --to "$TO")
c_curl=$(secs loop curl -sS --url "smtp://127.0.0.1:$LAB" --ssl-reqd \
  --cacert "$LAB_CA" --user "alice:correct horse" --login-options AUTH=PLAIN \
  --mail-from "$FROM" --mail-rcpt "$TO" --upload-file -)
c_msmtp=$(secs loop msmtp -C /dev/null --host=127.0.0.1 --port="$LAB" --tls=on \
  --tls-starttls=on --tls-trust-file="$LAB_CA" --auth=plain --user=alice \
  --passwordeval="cat $work/pw" --from="$FROM" -- "$TO")
c_swaks=$(secs loop swaks --server "127.0.0.1:$LAB" --tls --auth PLAIN \
  --auth-user alice --auth-password "correct horse" --from "$FROM" --to "$TO" \
  --data - --silent 2)
C_KIT=$(rate $C_N "$c_kit") C_CURL=$(rate $C_N "$c_curl")
C_MSMTP=$(rate $C_N "$c_msmtp") C_SWAKS=$(rate $C_N "$c_swaks")

# ---------------------------------------------------------------- D
say "D: one message with a 50 MB attachment, STARTTLS + AUTH PLAIN"
# timed CMD...: "WALL_S MAX_RSS_KB" from /usr/bin/time, the best wall
# time and the largest peak RSS of D_REPS runs, or "failed failed"
timed() {
  local f=$work/time.out best="" rss=0 w k
  for _ in $(seq "$D_REPS"); do
    if ! timeout 300 /usr/bin/time -f "%e %M" -o "$f" "$@" >/dev/null 2>>"$log"; then
      echo "$* -> failed" >>"$log"
      echo "failed failed"
      return
    fi
    read -r w k <"$f"
    if [ -z "$best" ] || awk -v t="$w" -v b="$best" 'BEGIN { exit !(t < b) }'; then best=$w; fi
    [ "$k" -gt "$rss" ] && rss=$k
  done
  echo "$best $rss"
}
timed_in() { local in=$1; shift; timed sh -c '"$@" < "$0"' "$in" "$@"; }
read -r d_kit_s d_kit_kb < <(timed "$SMTPKIT" send -s "127.0.0.1:$TLS_SINK" \
  --ca-file "$work/certs/ca.pem" "${AUTH[@]}" -f "$FROM" --to "$TO" \
  --subject "big attachment" --body "attached" --attach "$work/big.bin")
read -r d_kit2_s d_kit2_kb < <(timed_in "$work/big.eml" "$SMTPKIT" send \
  -s "127.0.0.1:$TLS_SINK" --ca-file "$work/certs/ca.pem" "${AUTH[@]}" \
  -f "$FROM" --to "$TO")
read -r d_curl_s d_curl_kb < <(timed curl -sS --url "smtp://127.0.0.1:$TLS_SINK" \
  --ssl-reqd --cacert "$work/certs/ca.pem" --user "alice:correct horse" \
  --login-options AUTH=PLAIN --mail-from "$FROM" --mail-rcpt "$TO" \
  --upload-file "$work/big.eml")
read -r d_msmtp_s d_msmtp_kb < <(D_REPS=1 timed_in "$work/big.eml" msmtp -C /dev/null \
  --host=127.0.0.1 --port="$TLS_SINK" --tls=on --tls-starttls=on \
  --tls-trust-file="$work/certs/ca.pem" --auth=plain --user=alice \
  --passwordeval="cat $work/pw" --from="$FROM" -- "$TO")
mb() { [ "$1" = failed ] && echo failed || awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# ---------------------------------------------------------------- E
E_TIMEOUT=3
e_note=""
if ! "$SMTPKIT" doctor --help >/dev/null 2>&1; then
  e_s="" e_note="E: skipped (doctor not built)"
elif [ "$(id -u)" != 0 ]; then
  e_s="" e_note="E: skipped (binding ports 587 and 465 needs root)"
else
  say "E: doctor against a host with two silent ports"
  python3 "$here/silent.py" 127.0.0.2 587 465 >"$work/silent.out" 2>>"$log" &
  pids+=($!)
  for _ in $(seq 50); do grep -q ready "$work/silent.out" && break; sleep 0.1; done
  t0=$EPOCHREALTIME
  timeout 60 "$SMTPKIT" doctor 127.0.0.2 --no-auth --timeout "$E_TIMEOUT" \
    >"$work/doctor.out" 2>&1
  e_rc=$?
  e_s=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
  e_note="doctor exit $e_rc: $(grep -m1 -i 'cause\|diagnos' "$work/doctor.out" | cut -c1-100)"
fi

# ---------------------------------------------------------------- report
r_a_src=$(ratio "$A_KIT" "$A_SRC") r_a_py=$(ratio "$A_KIT" "$A_PY")
r_b_py=$(ratio "$B_KIT" "$B_PY")
r_c_curl=$(ratio "$C_KIT" "$C_CURL") r_c_msmtp=$(ratio "$C_KIT" "$C_MSMTP")
r_c_swaks=$(ratio "$C_KIT" "$C_SWAKS")
r_d_curl=$(ratio "$d_kit_s" "$d_curl_s") r_d_curl2=$(ratio "$d_kit2_s" "$d_curl_s")
d_kit_mb=$(mb "$d_kit_kb") d_kit2_mb=$(mb "$d_kit2_kb")
d_worst_mb=$(awk -v a="$d_kit_mb" -v b="$d_kit2_mb" 'BEGIN { print (a > b ? a : b) }')
d_worst_r=$(awk -v a="$r_d_curl" -v b="$r_d_curl2" 'BEGIN { print (a > b ? a : b) }')
e_limit=$((E_TIMEOUT + 2))

{
  echo "# smtpkit benchmark"
  echo
  echo "Generated by \`make bench\` (bench/run.sh) — do not edit by hand."
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $(nproc) CPU, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), Linux $(uname -r)"
  echo "- smtpkit $("$SMTPKIT" --version | awk '{print $2}') ($SMTPKIT); $(curl --version | head -1 | cut -d' ' -f1-2); $(msmtp --version | head -1); swaks $(swaks --version 2>&1 | head -1 | awk '{print $3}'); $(python3 --version); Postfix $(/usr/sbin/postconf -d mail_version 2>/dev/null | awk '{print $3}')"
  echo "- loopback only; A and B: the best of $REPS rounds, each running every client once in turn; D: the best of $D_REPS runs per client (msmtp: 1; peak RSS: the largest); C: one loop of $C_N runs per client"
  echo
  echo "| case | client | figure | smtpkit ratio | target | met |"
  echo "|---|---|---|---|---|---|"
  echo "| A: $A_N x 2 KB, 1 connection, no TLS (smtp-sink) | smtpkit --batch | $A_KIT msg/s | | | |"
  echo "| | smtp-source -d -s 1 | $A_SRC msg/s | ${r_a_src}x | >= 1.0x | $(meets "$r_a_src" '>=' 1.0) |"
  echo "| | Python smtplib, 1 connection | $A_PY msg/s | ${r_a_py}x | >= 10x | $(meets "$r_a_py" '>=' 10) |"
  echo "| B: same, STARTTLS + AUTH PLAIN (lab) | smtpkit --batch | $B_KIT msg/s | | | |"
  echo "| | Python smtplib, 1 connection | $B_PY msg/s | ${r_b_py}x | >= 5x | $(meets "$r_b_py" '>=' 5) |"
  echo "| C: $C_N processes, 1 message each, STARTTLS + AUTH PLAIN (lab) | smtpkit send | $C_KIT msg/s | | | |"
  echo "| | curl | $C_CURL msg/s | ${r_c_curl}x | >= 1.0x | $(meets "$r_c_curl" '>=' 1.0) |"
  echo "| | msmtp | $C_MSMTP msg/s | ${r_c_msmtp}x | >= 3x | $(meets "$r_c_msmtp" '>=' 3) |"
  echo "| | swaks (no certificate check) | $C_SWAKS msg/s | ${r_c_swaks}x | | |"
  echo "| D: 50 MB attachment, STARTTLS + AUTH PLAIN (tls_sink.py) | smtpkit --attach (MIME built, streamed) | ${d_kit_s} s, ${d_kit_mb} MB peak RSS | ${r_d_curl}x curl time | RSS <= 16 MB | $(meets "$d_kit_mb" '<=' 16) |"
  echo "| | smtpkit, pre-encoded message on stdin | ${d_kit2_s} s, ${d_kit2_mb} MB peak RSS | ${r_d_curl2}x curl time | time <= 1.2x curl | $(meets "$d_worst_r" '<=' 1.2) |"
  echo "| | curl, pre-encoded | ${d_curl_s} s, $(mb "$d_curl_kb") MB peak RSS | | | |"
  echo "| | msmtp, pre-encoded | ${d_msmtp_s} s, $(mb "$d_msmtp_kb") MB peak RSS | | | |"
  if [ -n "$e_s" ]; then
    echo "| E: doctor, 2 silent ports, --timeout $E_TIMEOUT | smtpkit doctor | ${e_s} s | | <= ${e_limit} s | $(meets "$e_s" '<=' "$e_limit") |"
  else
    echo "| E | $e_note | | | | |"
  fi
  echo
  echo "Ratios are smtpkit / peer for rates, smtpkit / curl for D's time."
  echo "D's RSS target is checked against the larger of smtpkit's two runs."
  [ -n "$e_note" ] && echo && echo "E: $e_note"
  if [ -s "$log" ]; then
    echo
    echo "Errors seen during the run (first lines):"
    echo
    echo '```'
    head -n 15 "$log"
    echo '```'
  fi
} >"$OUT"
cat "$OUT"
