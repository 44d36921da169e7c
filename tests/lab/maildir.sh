#!/usr/bin/env bash
# maildir.sh SMTPKIT — `smtpkit lab --maildir` stores what `smtpkit send`
# submitted byte for byte: CRLF line ends, dot-stuffing undone, 8-bit text
# kept; tmp/ is empty afterwards. AUTH PLAIN keeps this test about storage
# (scenarios.tsv covers the mechanism choice).
set -u
bin=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lab_lib.sh"
dir=$(mktemp -d "${TMPDIR:-/tmp}/smtpkit-lab-test.XXXXXX")
cleanup() {
  [ -n "$LAB_PID" ] && kill -KILL "$LAB_PID" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
lab_start "$bin" ok "$dir" --maildir "$dir/Maildir" || exit 1

printf '%s\n' 'From: alice@example.test' 'To: bob@example.test' \
  'Subject: =?UTF-8?Q?caf=C3=A9?=' 'Content-Type: text/plain; charset=UTF-8' \
  'Content-Transfer-Encoding: 8bit' '' 'Café, naïve, Grüße.' \
  '.a line that starts with a dot' '..two dots' '.' 'the line above is a dot' \
  >"$dir/msg.txt"
sed 's/$/\r/' "$dir/msg.txt" >"$dir/expected.txt"

fail=0
for i in 1 2; do
  XDG_STATE_HOME="$dir/state" LAB_PASSWORD='correct horse' \
    timeout 60 "$bin" send -s 127.0.0.1 -p "$LAB_PORT" --ca-file "$LAB_CA" \
    -u alice --password-env LAB_PASSWORD --auth PLAIN \
    -f alice@example.test --to bob@example.test <"$dir/msg.txt" \
    >"$dir/send.out" 2>&1 || { echo "FAIL: send $i:"; cat "$dir/send.out"; fail=1; }
done
lab_stop || fail=1
n=$(ls "$dir/Maildir/new" | wc -l)
[ "$n" = 2 ] || { echo "FAIL: $n messages in new/, want 2"; fail=1; }
[ -z "$(ls "$dir/Maildir/tmp")" ] || { echo "FAIL: tmp/ not empty"; fail=1; }
for f in "$dir"/Maildir/new/*; do
  cmp "$f" "$dir/expected.txt" ||
    { echo "FAIL: stored message differs:"; od -c "$f" | head -20; fail=1; }
done
[ $fail = 0 ] && echo "ok: 2 messages stored byte for byte"
exit $fail
