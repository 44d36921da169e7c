# harness.sh — helpers shared by the Postfix-based interop harnesses
# (postfix_dovecot.sh, cyrus_postfix.sh). Sourced; run_dir needs STATE.

port_listening() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }

# can_access USER TEST PATH: whether USER passes `test TEST PATH`.
can_access() { setpriv --reuid="$1" --regid="$(id -g "$1")" --init-groups test "$2" "$3"; }

# pid_alive PID: PID exists and is not a zombie.
pid_alive() {
  local stat
  stat=$(ps -o stat= -p "${1:-0}" 2>/dev/null) || return 1
  [[ $stat != Z* ]]
}

# wait_gone SECONDS PID...: wait (bounded) until none of PID is alive.
wait_gone() {
  local secs=$1 p alive
  shift
  for _ in $(seq 1 $((secs * 10))); do
    alive=
    for p in "$@"; do pid_alive "$p" && alive=1; done
    [ -z "$alive" ] && return 0
    sleep 0.1
  done
  return 1
}

# run_dir: RUN of an existing STATE_DIR.
run_dir() {
  if [ -L "$STATE/run" ]; then readlink "$STATE/run"; else echo "$STATE"; fi
}
