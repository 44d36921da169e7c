#!/usr/bin/env bash
# scenario.sh SMTPKIT NAME CAUSE EXIT TOOL RECOMMENDED [OPTION...]
#
# Starts `smtpkit lab --scenario NAME` on free loopback ports and checks it
# the way SPEC §5 does: `smtpkit doctor` (or send) against the plain port
# with the lab's credentials and CA plus OPTIONs must give CAUSE and EXIT.
# For doctor also: `recommended` is RECOMMENDED (a TLS mode, "-" for none,
# "any" for no check), every probe has a SPEC §4 shape, and the password
# never appears in the output. @token: an OAuth2 token the lab refuses.
set -u
SMTPKIT=$1 name=$2 want_cause=$3 want_exit=$4 tool=$5 want_rec=$6
shift 6
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/doctor_lib.sh"
. "$here/../lab/lab_lib.sh"

lab_start "$SMTPKIT" "$name" "$WORK" || { not_ok "lab $name starts"; finish; exit; }
CLEANUP_PIDS+=("$LAB_PID")
export LAB_PASSWORD='correct horse' LAB_TOKEN=expired-token
auth=(--password-env LAB_PASSWORD)
body=(--body "A message from the smtpkit doctor tests.")
opts=()
for o in "$@"; do
  case $o in
  @token) auth=(--oauth2-token-env LAB_TOKEN) ;;
  @big)
    head -c 20480 /dev/zero | tr '\0' 'x' | fold -w 76 >"$WORK/big.txt"
    body=(--body-file "$WORK/big.txt")
    ;;
  *) opts+=("$o") ;;
  esac
done

if [ "$tool" = send ]; then
  t0=$(date +%s%N)
  timeout 60 "$SMTPKIT" send --json -s 127.0.0.1 -p "$LAB_PORT" \
    --ca-file "$LAB_CA" -u alice "${auth[@]}" -f alice@example.test \
    --to bob@example.test --subject "doctor test $name" "${body[@]}" \
    ${opts[@]+"${opts[@]}"} >"$WORK/out" 2>"$WORK/err" </dev/null
  RC=$?
  OUT=$(cat "$WORK/out") ERR=$(cat "$WORK/err")
  expect "send, $name" cause "$want_cause"
  expect_rc "send, $name" "$want_exit"
else
  doctor 127.0.0.1 --port "$LAB_PORT" --ca-file "$LAB_CA" -u alice \
    "${auth[@]}" ${opts[@]+"${opts[@]}"}
  expect "doctor, $name" diagnosis.cause "$want_cause"
  expect_rc "doctor, $name" "$want_exit"
  expect "doctor, $name: version" version 1
  expect "doctor, $name: probed port" probes.0.port "$LAB_PORT"
  case $want_rec in
  any) ;;
  -) expect "doctor, $name: nothing verified, nothing recommended" recommended null ;;
  *)
    expect "doctor, $name: verified alternative" recommended.tls "$want_rec"
    expect "doctor, $name: verified alternative" recommended.port "$LAB_PORT"
    ;;
  esac
  # SPEC §4: every documented field is there.
  shape=$(printf '%s' "$OUT" | python3 -c '
import json, sys
d = json.load(sys.stdin)
need = {"target": ["input", "host", "provider", "source"],
        "auth": ["attempted", "port", "mechanism", "ok", "reply", "attempts"],
        "diagnosis": ["cause", "transient", "summary", "fix", "evidence"]}
miss = [f"{k}.{f}" for k, fs in need.items() for f in fs if f not in d.get(k, {})]
for i, p in enumerate(d.get("probes", [])):
    for f in ["port", "mode", "reachable", "elapsed_ms", "greeting", "tls",
              "auth_before_tls", "auth_after_tls", "extensions", "cause"]:
        if f not in p: miss.append(f"probes.{i}.{f}")
    for f in ["ok", "version", "verified", "error", "subject", "not_after"]:
        if f not in p.get("tls", {}): miss.append(f"probes.{i}.tls.{f}")
for f in ["warnings", "recommended", "elapsed_ms", "probes"]:
    if f not in d: miss.append(f)
if d["diagnosis"]["cause"] != "ok" and not d["diagnosis"]["evidence"]:
    miss.append("diagnosis.evidence (empty)")
print(" ".join(miss) or "complete")
' 2>&1)
  if [ "$shape" = complete ]; then ok "doctor, $name: SPEC §4 shape"; else
    not_ok "doctor, $name: SPEC §4 shape: missing $shape"; fi
  no_secret "correct horse" "expired-token"
  # The human report says the same.
  XDG_STATE_HOME=$WORK/state2 timeout 60 "$SMTPKIT" doctor 127.0.0.1 \
    --port "$LAB_PORT" --ca-file "$LAB_CA" \
    -u alice "${auth[@]}" ${opts[@]+"${opts[@]}"} >"$WORK/human" 2>&1 </dev/null
  if grep -q "Diagnosis: $want_cause" "$WORK/human"; then
    ok "doctor, $name: human report names $want_cause"
  else
    not_ok "doctor, $name: human report"; head -60 "$WORK/human"
  fi
fi
lab_stop || not_ok "lab $name stops cleanly"
CLEANUP_PIDS=()
finish
