# lab_lib.sh — start and stop `smtpkit lab` for the tests in tests/lab/.
# Sourced by the test scripts; every wait is bounded.
#   lab_start BIN SCENARIO DIR [LAB-OPTION...]  sets LAB_PID, LAB_PORT,
#                                               LAB_TLS_PORT, LAB_CA
#   lab_stop                                    SIGTERM, then checks the
#                                               lab exited 0 within 10 s

LAB_PID=

lab_start() {
  local bin=$1 scenario=$2 dir=$3
  shift 3
  "$bin" lab --scenario "$scenario" --listen 127.0.0.1:0 \
    --tls-listen 127.0.0.1:0 --ca-out "$dir/ca.pem" --idle-timeout 30 "$@" \
    >"$dir/lab.out" 2>"$dir/lab.err" &
  LAB_PID=$!
  local _
  for _ in $(seq 100); do
    grep -q '^ca=' "$dir/lab.out" 2>/dev/null && break
    kill -0 "$LAB_PID" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q '^ca=' "$dir/lab.out" 2>/dev/null; then
    echo "lab did not start:" >&2
    cat "$dir/lab.out" "$dir/lab.err" >&2
    return 1
  fi
  local line
  line=$(grep '^listening ' "$dir/lab.out")
  LAB_PORT=$(sed -n 's/.* plain=[^ ]*:\([0-9][0-9]*\).*/\1/p' <<<"$line")
  LAB_TLS_PORT=$(sed -n 's/.* tls=[^ ]*:\([0-9][0-9]*\).*/\1/p' <<<"$line")
  LAB_CA=$(sed -n 's/^ca=//p' "$dir/lab.out")
  [ -n "$LAB_PORT" ] && [ -n "$LAB_TLS_PORT" ] && [ -s "$LAB_CA" ] || {
    echo "bad lab start lines:" >&2
    cat "$dir/lab.out" >&2
    return 1
  }
}

# Stops the lab the way a user does; fails if it crashed before or does not
# stop cleanly.
lab_stop() {
  [ -n "$LAB_PID" ] || return 0
  local pid=$LAB_PID _ rc
  LAB_PID=
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid"
    echo "the lab died during the test (exit $?)" >&2
    return 1
  fi
  kill -TERM "$pid"
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "the lab did not stop within 10 s of SIGTERM" >&2
    kill -KILL "$pid"
    wait "$pid"
    return 1
  fi
  wait "$pid"
  rc=$?
  [ "$rc" = 0 ] || { echo "the lab exited $rc after SIGTERM" >&2; return 1; }
}
