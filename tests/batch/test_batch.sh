#!/usr/bin/env bash
# Batch sending (`smtpkit send --batch`) against real servers on loopback:
#   - 200 messages through aiosmtpd (STARTTLS + AUTH PLAIN), all captured
#     exactly once, on one connection and then on three;
#   - a server that refuses some recipients and some messages: the rest go
#     on (RSET), each refusal is reported, exit code of the first one;
#   - the lab's recipient-rejected scenario: every message reported;
#   - a server that says 421 (at MAIL, at the end of data) after N
#     messages: reconnect and resume, nothing lost, nothing twice;
#   - a server that drops the connection after an end of data: that
#     message is delivery_unknown and is not sent again;
#   - an mbox, with >From lines unquoted on the way.
#   test_batch.sh STATE_DIR SMTPKIT   (STATE_DIR: the aiosmtpd fixture's)
set -u
STATE=$1
SMTPKIT=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../interop/lib/testlib.sh"
work=$(mktemp -d /tmp/smtpkit-batch.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work" "$XDG_STATE_HOME"' EXIT
printf 'correct horse\n' >"$work/pw"

# make_maildir DIR COUNT [PREFIX]: COUNT messages with unique Message-IDs
make_maildir() {
  python3 - "$1" "$2" "${3:-m}" <<'EOF'
import os, sys
d, n, p = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for sub in ("new", "cur", "tmp"):
    os.makedirs(os.path.join(d, sub), exist_ok=True)
for i in range(n):
    sub = "cur" if i % 5 == 0 else "new"
    name = "%d.M%dP1.batch.test%s" % (1700000000 + i, i, ":2,S" if sub == "cur" else "")
    with open(os.path.join(d, sub, name), "w") as f:
        f.write("From: alice@example.test\nTo: bob@example.test\n"
                "Subject: batch %d\nMessage-ID: <%s-%d@batch.test>\n\n"
                "message %d\n.a line with a leading dot\n" % (i, p, i, i))
EOF
}

# count_json_ok: lines of $OUT with "ok":true
count_ok() { printf '%s\n' "$OUT" | grep -c '"ok":true'; }
count_lines() { printf '%s\n' "$OUT" | grep -c '"version":1'; }

# ---- 200 messages through aiosmtpd ----
. "$STATE/env"
cap=$AIO_CAPTURE_DIR
make_maildir "$work/md200" 200 aio
for conns in 1 3; do
  before=$(count_marked "$cap" "Message-ID: <aio-")
  run send -s "localhost:$AIO_SUBMISSION_PORT" --ca-file "$AIO_CA_FILE" \
    -u alice --password-file "$work/pw" --auth PLAIN --batch "$work/md200" \
    --connections $conns --json --timeout 20
  expect_rc "aiosmtpd: 200 messages, $conns connection(s)" 0
  check "aiosmtpd ($conns): 200 JSON lines, all ok" \
    test "$(count_lines)" = 200 -a "$(count_ok)" = 200
  for i in $(seq 100); do
    [ "$(count_marked "$cap" "Message-ID: <aio-")" -ge $((before + 200)) ] && break
    sleep 0.1
  done
  check "aiosmtpd ($conns): 200 captured" \
    test "$(count_marked "$cap" "Message-ID: <aio-")" -eq $((before + 200))
  dup=$(cat "$cap"/* | grep -a -i '^Message-ID: <aio-' | sort | uniq -d | wc -l)
  got=$(cat "$cap"/* | grep -a -i '^Message-ID: <aio-' | sort -u | wc -l)
  check "aiosmtpd ($conns): every message once" test "$dup" = 0 -a "$got" = 200
  check "aiosmtpd ($conns): the JSON names each message's file" \
    eval 'printf "%s\n" "$OUT" | grep -q "\"message\":\"$work/md200/cur/1700000000.M0P1.batch.test:2,S\""'
  grep -laF -- "Message-ID: <aio-" "$cap"/* | xargs -r rm -f
done

# ---- a scripted server (tests/batch/server.py) ----
# serve MODE N: starts it; sets PORT and CAP
serve() {
  CAP=$work/cap-$1-$2
  rm -rf "$CAP"
  mkdir -p "$CAP"
  python3 "$here/server.py" "$1" "$2" "$CAP" >"$work/port" &
  SERVER=$!
  PORT=""
  for _ in $(seq 50); do
    PORT=$(sed -n 's/^port=//p' "$work/port")
    [ -n "$PORT" ] && break
    sleep 0.1
  done
}
stop() { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; }
accepted() { find "$CAP" -name 'accepted-*' | wc -l; }
seen() { wc -l <"$CAP/seen" 2>/dev/null || echo 0; }
seen_unique() { sort -u "$CAP/seen" 2>/dev/null | wc -l; }

# 50 .eml files: every 10th has a refused recipient (bad...), every 10th
# (another one) a subject the server refuses at the end of data.
mkdir -p "$work/emls"
python3 - "$work/emls" <<'EOF'
import sys
for i in range(50):
    to = ("bad%d@y.test, " % i if i % 10 == 3 else "") + "bob%d@y.test" % i
    subj = "reject me %d" % i if i % 10 == 7 else "hello %d" % i
    with open("%s/msg%d.eml" % (sys.argv[1], i), "w") as f:
        f.write("From: a@x.test\nTo: %s\nBcc: hidden@y.test\nSubject: %s\n"
                "Message-ID: <e%d@x.test>\n\nbody %d\n.leading dot\n"
                % (to, subj, i, i))
EOF

serve reject 0
run send -s "127.0.0.1:$PORT" --tls none --batch "$work/emls" --json --timeout 10
stop
expect_rc "refusals: exit code of the first (a refused recipient)" 67
check "refusals: 50 results" test "$(count_lines)" = 50
check "refusals: 40 fully ok" test "$(count_ok)" = 40
check "refusals: 45 accepted by the server (5 with one recipient refused)" \
  test "$(accepted)" = 45
check "refusals: 5 messages refused at the end of data" \
  test "$(printf '%s\n' "$OUT" | grep -c '"cause":"message_rejected"')" = 5
check "refusals: the refused recipient is named" \
  eval 'printf "%s\n" "$OUT" | grep -q "\"rejected\":\[{\"address\":\"bad3@y.test\""'
check "refusals: a leading dot arrives as it was (dot-stuffed on the wire)" \
  eval 'grep -q "^\.leading dot" "$CAP"/accepted-000001.eml'
check "refusals: Bcc removed from what was sent" \
  eval '! grep -qi "^Bcc:" "$CAP"/accepted-*'

run send -s "127.0.0.1:1" --tls none --batch "$work/emls" -f a@x.test \
  --to b@y.test --json --timeout 5
expect_rc "nothing listening: every message reported" 69
check "nothing listening: 50 results, all connection_refused" \
  test "$(printf '%s\n' "$OUT" | grep -c '"cause":"connection_refused"')" = 50

# ---- 421 and dropped connections ----
for mode in 421-mail 421-dot; do
  serve "$mode" 7
  run send -s "127.0.0.1:$PORT" --tls none --batch "$work/emls" \
    -f a@x.test --to b@y.test --json --timeout 10
  stop
  expect_rc "$mode after 7: reconnect and resume" 0
  check "$mode: all 50 ok" test "$(count_ok)" = 50
  check "$mode: all 50 accepted, each once" \
    test "$(accepted)" = 50 -a "$(accepted)" = "$(seen_unique)"
  check "$mode: some were retried on a new connection" \
    eval 'printf "%s\n" "$OUT" | grep -q "\"attempts\":2"'
done

serve drop-dot 7
run send -s "127.0.0.1:$PORT" --tls none --batch "$work/emls" \
  -f a@x.test --to b@y.test --json --timeout 10
stop
expect_rc "drop after end of data: delivery unknown is temporary" 75
n_unknown=$(printf '%s\n' "$OUT" | grep -c '"cause":"delivery_unknown"')
check "drop: 6 messages delivery_unknown, 44 sent" \
  test "$n_unknown" = 6 -a "$(count_ok)" = 44
check "drop: no message was sent twice" test "$(seen)" = "$(seen_unique)" \
  -a "$(seen)" = 50

# ---- the lab: every recipient refused ----
"$SMTPKIT" lab --scenario recipient-rejected --listen 127.0.0.1:0 \
  --tls-listen '' >"$work/lab.out" 2>"$work/lab.err" &
LAB=$!
for _ in $(seq 50); do
  grep -q '^listening' "$work/lab.out" 2>/dev/null && break
  sleep 0.1
done
labport=$(sed -n 's/.*plain=[^ ]*:\([0-9]*\).*/\1/p' "$work/lab.out")
labca=$(sed -n 's/^ca=//p' "$work/lab.out")
make_maildir "$work/md20" 20 lab
run send -s "localhost:$labport" --ca-file "$labca" -u alice \
  --password-file "$work/pw" --auth PLAIN --batch "$work/md20" --json \
  --timeout 10
kill "$LAB" 2>/dev/null
wait "$LAB" 2>/dev/null
expect_rc "lab recipient-rejected: exit 67" 67
check "lab recipient-rejected: 20 results, each recipient_rejected" \
  test "$(printf '%s\n' "$OUT" | grep -c '"cause":"recipient_rejected"')" = 20
check "lab recipient-rejected: one connection (RSET between messages)" \
  eval '! printf "%s\n" "$OUT" | grep -q "\"connection\":1"'

# ---- an mbox ----
printf 'From a@x.test Thu Jan  1 00:00:00 2025\nFrom: a@x.test\nTo: b@y.test\nMessage-ID: <mb1@x.test>\nSubject: one\n\n>From the first line\n>>From the second\n\nFrom a@x.test Thu Jan  1 00:00:01 2025\nFrom: a@x.test\nTo: c@y.test\nMessage-ID: <mb2@x.test>\nSubject: two\n\nbye\n\n' >"$work/box.mbox"
serve reject 0
run send -s "127.0.0.1:$PORT" --tls none --batch "$work/box.mbox" --json
stop
expect_rc "mbox: both messages sent" 0
check "mbox: 2 accepted" test "$(accepted)" = 2
check "mbox: >From unquoted (mboxrd)" \
  eval 'grep -q "^From the first line" "$CAP"/accepted-* && grep -q "^>From the second" "$CAP"/accepted-*'
check "mbox: named box.mbox#2" \
  eval 'printf "%s\n" "$OUT" | grep -q "box.mbox#2"'

finish
