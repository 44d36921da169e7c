# testlib.sh — assertions for the interop tests (sourced).
#   SMTPKIT   path of the smtpkit binary under test
# Each check prints "ok - ..." or "not ok - ..."; finish prints the
# "N passed, N failed" line and sets the exit status.
PASS=0
FAIL=0
# The lock-out guard's memory lives here, not in the user's home.
XDG_STATE_HOME=$(mktemp -d /tmp/smtpkit-test-state.XXXXXX)
export XDG_STATE_HOME
trap 'rm -rf "$XDG_STATE_HOME"' EXIT
ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
not_ok() { FAIL=$((FAIL + 1)); echo "not ok - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
finish() { echo "$PASS passed, $FAIL failed"; [ "$FAIL" -eq 0 ]; }

# run ARGS...: runs smtpkit with a bounded time; sets RC, OUT, ERR.
run() {
  local o e
  o=$(mktemp) e=$(mktemp)
  timeout 120 "$SMTPKIT" "$@" >"$o" 2>"$e" </dev/null
  RC=$?
  OUT=$(cat "$o") ERR=$(cat "$e")
  rm -f "$o" "$e"
}
# run_in FILE ARGS...: the same with FILE on stdin.
run_in() {
  local in=$1 o e
  shift
  o=$(mktemp) e=$(mktemp)
  timeout 120 "$SMTPKIT" "$@" >"$o" 2>"$e" <"$in"
  RC=$?
  OUT=$(cat "$o") ERR=$(cat "$e")
  rm -f "$o" "$e"
}

# json FIELD: a top-level (or dotted) field of $OUT's JSON.
json() {
  printf '%s' "$OUT" | python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v.get(k)
print("null" if v is None else (str(v).lower() if isinstance(v, bool) else v))
' "$1" 2>/dev/null
}

expect_rc() { # DESC WANT
  if [ "$RC" = "$2" ]; then ok "$1 (exit $RC)"; else
    not_ok "$1: exit $RC, want $2"; printf '  stderr: %s\n  stdout: %s\n' "$ERR" "$OUT" | head -20; fi
}
expect_json() { # DESC FIELD WANT
  local got
  got=$(json "$2")
  if [ "$got" = "$3" ]; then ok "$1 ($2=$got)"; else
    not_ok "$1: $2=$got, want $3"; printf '  stdout: %s\n  stderr: %s\n' "$OUT" "$ERR" | head -20; fi
}

count_files() { find "$1" -maxdepth 1 -type f 2>/dev/null | wc -l; }

# Other tests share the servers (CTest runs them in parallel), so a test
# finds its own captures by content, never by "the newest file".
# count_marked DIR TEXT: files in DIR that contain TEXT.
count_marked() {
  find "$1" -maxdepth 1 -type f -exec grep -laF -- "$2" {} + 2>/dev/null | wc -l
}
# snapshot DIR FILE: remembers which files DIR holds now.
snapshot() { find "$1" -maxdepth 1 -type f | sort >"$2"; }
# wait_capture DIR SNAPSHOT TEXT: waits (≤ 15 s) for a file that is not in
# SNAPSHOT and contains TEXT; prints its name.
wait_capture() {
  local f i
  for i in $(seq 150); do
    for f in $(find "$1" -maxdepth 1 -type f | sort | comm -13 "$2" -); do
      if grep -qaF -- "$3" "$f"; then
        echo "$f"
        return 0
      fi
    done
    sleep 0.1
  done
  return 1
}

# no_secret FILE... : none of the files contains the secrets in SECRETS
# (space-separated) nor their base64 forms (plain, and as SASL PLAIN).
no_secret() {
  local s f b
  for s in "${SECRETS[@]}"; do
    for f in "$@"; do
      [ -f "$f" ] || continue
      b=$(printf '%s' "$s" | base64 -w0)
      if grep -qF -- "$s" "$f" || grep -qF -- "$b" "$f"; then
        echo "  secret found in $f"
        return 1
      fi
    done
  done
  return 0
}
