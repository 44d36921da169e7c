#!/usr/bin/env bash
# No secret in any output: every authentication path (each mechanism,
# success and failure, transcript on, JSON on, -vv on) through send and
# doctor against the lab; every byte printed and every file written is
# searched for the password, the token, and their base64 forms (alone and
# inside the SASL PLAIN and XOAUTH2 messages).
#   test_secrets.sh SMTPKIT
set -u
SMTPKIT=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../interop/lib/testlib.sh"
work=$(mktemp -d /tmp/smtpkit-secrets.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work" "$XDG_STATE_HOME"' EXIT
PW='S3cret pass:wörd'
TOKEN='ya29.secret-token-value'
printf '%s\n' "$PW" >"$work/pw"
printf 'Wrong%s\n' "$PW" >"$work/bad"
printf '%s\n' "$TOKEN" >"$work/tok"
printf 'expired-%s\n' "$TOKEN" >"$work/badtok"
SECRETS=("$PW" "Wrong$PW" "$TOKEN" "expired-$TOKEN"
  "$(printf '\0alice\0%s' "$PW" | base64 -w0)"
  "$(printf 'user=alice\001auth=Bearer %s\001\001' "$TOKEN" | base64 -w0)")

"$SMTPKIT" lab --scenario ok --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 \
  --password "$PW" --token "$TOKEN" \
  --mechanisms "SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN LOGIN CRAM-MD5 XOAUTH2 OAUTHBEARER" \
  >"$work/lab" 2>/dev/null &
for _ in $(seq 50); do grep -q '^ca=' "$work/lab" && break; sleep 0.1; done
port=$(sed -n 's/^listening plain=[^ ]*:\([0-9]*\) .*/\1/p' "$work/lab")
ca=$(sed -n 's/^ca=//p' "$work/lab")
out="$work/out"
mkdir -p "$out"
n=0
record() { n=$((n + 1)); printf '%s' "$OUT" >"$out/stdout-$n"; printf '%s' "$ERR" >"$out/stderr-$n"; }

for mech in SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN LOGIN CRAM-MD5; do
  for f in pw bad; do
    run send -s "localhost:$port" --ca-file "$ca" -u alice --password-file "$work/$f" \
      --auth $mech --force-auth -f a@x.test --to b@x.test --subject s --body b \
      --json -vv --transcript "$out/tr-$mech-$f"
    record
    [ $f = pw ] && expect_rc "send $mech" 0 || expect_rc "send $mech, wrong password" 77
  done
done
for mech in XOAUTH2 OAUTHBEARER; do
  for f in tok badtok; do
    run send -s "localhost:$port" --ca-file "$ca" -u alice --oauth2-token-file "$work/$f" \
      --auth $mech --force-auth -f a@x.test --to b@x.test --subject s --body b \
      --json -vv --transcript "$out/tr-$mech-$f"
    record
    [ $f = tok ] && expect_rc "send $mech" 0 || expect_rc "send $mech, bad token" 77
  done
done
for f in pw bad; do
  run doctor "localhost:$port" --ca-file "$ca" -u alice --password-file "$work/$f" \
    --force-auth --json -vv --transcript "$out/tr-doctor-$f"
  record
  run doctor "localhost:$port" --ca-file "$ca" -u alice --password-file "$work/$f" \
    --force-auth --try-all-mechanisms -vv
  record
done
PW_ENV="$PW" run send -s "localhost:$port" --ca-file "$ca" -u alice \
  --password-env PW_ENV -f a@x.test --to b@x.test --subject s --body b -vv
record
run send -s "localhost:$port" --ca-file "$ca" -u alice \
  --password-cmd "cat '$work/pw'" -f a@x.test --to b@x.test --subject s --body b -vv
record

check "no secret in stdout, stderr, transcripts ($n runs)" no_secret "$out"/*
check "no secret in the lock-out guard's files" no_secret $(find "$XDG_STATE_HOME" -type f)
finish
