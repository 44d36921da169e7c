# doctor_lib.sh — helpers for the doctor tests (sourced).
#   SMTPKIT must name the smtpkit binary. Every wait is bounded.
# Each check prints "ok - ..." or "not ok - ..."; finish prints the
# "N passed, N failed" line and sets the exit status.
PASS=0
FAIL=0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/smtpkit-doctor-test.XXXXXX")
# The lock-out guard's memory lives here, not in the user's home.
export XDG_STATE_HOME=$WORK/state
CLEANUP_PIDS=()
cleanup() {
  local p
  for p in ${CLEANUP_PIDS[@]+"${CLEANUP_PIDS[@]}"}; do
    kill -TERM "$p" 2>/dev/null
  done
  for p in ${CLEANUP_PIDS[@]+"${CLEANUP_PIDS[@]}"}; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
not_ok() { FAIL=$((FAIL + 1)); echo "not ok - $*"; }
finish() { echo "$PASS passed, $FAIL failed"; [ "$FAIL" -eq 0 ]; }

# doctor ARGS...: runs `smtpkit doctor --json` (≤ 60 s); sets RC, OUT, ERR
# and MS (wall time in ms).
doctor() {
  local t0=$(date +%s%N)
  timeout 60 "$SMTPKIT" doctor --json "$@" >"$WORK/out" 2>"$WORK/err" </dev/null
  RC=$?
  MS=$(( ($(date +%s%N) - t0) / 1000000 ))
  OUT=$(cat "$WORK/out")
  ERR=$(cat "$WORK/err")
}

# json PATH: a field of $OUT ("diagnosis.cause", "probes.0.mode"); null
# for a missing one, true/false for booleans.
json() {
  printf '%s' "$OUT" | python3 -c '
import json, sys
try:
    v = json.load(sys.stdin)
    for k in sys.argv[1].split("."):
        v = v[int(k)] if isinstance(v, list) else v.get(k)
except Exception:
    v = "(no JSON)"
print("null" if v is None else (str(v).lower() if isinstance(v, bool) else v))
' "$1"
}

show() { printf '  stdout: %s\n  stderr: %s\n' "$OUT" "$ERR" | head -c 4000; echo; }

expect() { # DESC PATH WANT
  local got
  got=$(json "$2")
  if [ "$got" = "$3" ]; then ok "$1: $2=$got"; else
    not_ok "$1: $2=$got, want $3"; show; fi
}
expect_rc() { # DESC WANT
  if [ "$RC" = "$2" ]; then ok "$1: exit $RC"; else
    not_ok "$1: exit $RC, want $2"; show; fi
}
expect_le_ms() { # DESC MAX_MS
  if [ "$MS" -le "$2" ]; then ok "$1: ${MS} ms (limit $2 ms)"; else
    not_ok "$1: ${MS} ms, limit $2 ms"; fi
}
# no_secret SECRET...: none of them, nor their base64, in stdout/stderr.
no_secret() {
  local s b
  for s in "$@"; do
    b=$(printf '%s' "$s" | base64 -w0)
    if grep -qF -- "$s" "$WORK/out" "$WORK/err" ||
       grep -qF -- "$b" "$WORK/out" "$WORK/err"; then
      not_ok "a secret appears in the output"; return
    fi
  done
  ok "no secret in the output"
}

# A TCP port nothing listens on right now (bound, then released).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
