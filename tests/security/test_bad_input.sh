#!/usr/bin/env bash
# Bad input gets a clear error and the SPEC §2 exit code before any
# connection: CR, LF or NUL-like control bytes in addresses, the subject,
# the EHLO name and the user name (65); unreadable files (66); unknown or
# malformed options (64). A listener counts connections: it must see none.
#   test_bad_input.sh SMTPKIT
set -u
SMTPKIT=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../interop/lib/testlib.sh"
work=$(mktemp -d /tmp/smtpkit-badinput.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work" "$XDG_STATE_HOME"' EXIT
python3 -c '
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
print(s.getsockname()[1], flush=True)
s.settimeout(120)
while True:
    c, _ = s.accept()
    open(sys.argv[1], "a").write("connection\n")
    c.close()
' "$work/seen" >"$work/port" &
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")
printf 'pw\n' >"$work/pw"
base=(send -s "127.0.0.1:$port" --tls none)

bad() { # DESC WANT ARGS...
  local d=$1 w=$2
  shift 2
  run "$@"
  expect_rc "$d" "$w"
  check "$d: says why on stderr" test -n "$ERR"
}
bad "CR/LF in --from" 65 "${base[@]}" -f $'a@x.test\r\nRCPT TO:<evil@x.test>' --to b@x.test --subject s --body b
bad "LF in --to" 65 "${base[@]}" -f a@x.test --to $'b@x.test\nDATA' --subject s --body b
bad "CR in a positional recipient" 65 "${base[@]}" -f a@x.test $'b@x.test\r' --subject s --body b
bad "LF in --subject" 65 "${base[@]}" -f a@x.test --to b@x.test --subject $'hi\nBcc: victim@x.test' --body b
bad "CR/LF in --helo" 65 "${base[@]}" --helo $'x.test\r\nMAIL FROM:<e@x>' -f a@x.test --to b@x.test --subject s --body b
bad "LF in the user name" 65 "${base[@]}" -u $'alice\nAUTH' --password-file "$work/pw" --allow-plaintext-auth -f a@x.test --to b@x.test --subject s --body b
bad "control byte in --from" 65 "${base[@]}" -f $'a\001@x.test' --to b@x.test --subject s --body b
bad "address with spaces" 65 "${base[@]}" -f 'a b@x.test' --to b@x.test --subject s --body b
bad "missing --body-file" 66 "${base[@]}" -f a@x.test --to b@x.test --subject s --body-file "$work/none"
bad "missing --attach" 66 "${base[@]}" -f a@x.test --to b@x.test --subject s --body b --attach "$work/none.pdf"
bad "missing --password-file" 66 "${base[@]}" -u alice --password-file "$work/none" -f a@x.test --to b@x.test --subject s --body b
bad "missing --ca-file" 66 send -s "127.0.0.1:$port" --ca-file "$work/none.pem" -f a@x.test --to b@x.test --subject s --body b
bad "unknown option" 64 send --no-such-option
check "unknown option: points to --help" eval 'printf "%s" "$ERR" | grep -q -- "--help"'
bad "unknown command" 64 frobnicate
bad "bad --tls value" 64 "${base[@]}" --tls sometimes -f a@x.test --to b@x.test
bad "bad --port" 64 send -s 127.0.0.1 -p 99999 -f a@x.test --to b@x.test
bad "bad --timeout" 64 send -s 127.0.0.1 --timeout -3 -f a@x.test --to b@x.test
bad "password on the command line" 64 send -s 127.0.0.1 --password secret -f a@x.test --to b@x.test
bad "no recipients" 64 "${base[@]}" -f a@x.test --subject s --body b
bad "no server" 64 send -f a@x.test --to b@x.test --subject s --body b
bad "explain: unknown option" 64 explain --bogus
bad "doctor: CR/LF in --helo" 65 doctor "127.0.0.1:$port" --helo $'a\r\nb' --no-auth
bad "doctor: missing --ca-file" 66 doctor "127.0.0.1:$port" --ca-file "$work/none" --no-auth
bad "lab: unknown scenario" 64 lab --scenario no-such-thing
sleep 0.3
check "the server saw no connection at all" test ! -s "$work/seen"
finish
