#!/bin/sh
# Delivery command of the private Postfix (pipe(8) transport "capture", run as
# nobody). Writes the message exactly as pipe(8) hands it over - LF line
# endings, smtpd's Received: header on top, nothing else added - to
#   STATE/BOX/NAME           the message
#   STATE/BOX.envelope/NAME  "MAIL FROM:<...>" and one "RCPT TO:<...>" a line
# where BOX is the Postfix next-hop ("capture" for client mail, "notices"
# for Postfix-generated DSNs) and NAME is <nanoseconds since epoch>.<queue id>
# so names sort in delivery order. Both files are written under STATE/spool
# and renamed into place (envelope first), so a reader never sees half a file.
#
#   capture STATE BOX QUEUE_ID SENDER RECIPIENT...
# Any failure exits 75 (EX_TEMPFAIL): Postfix keeps the message queued
# instead of bouncing it.
set -u
umask 022
[ $# -ge 5 ] || { echo "capture: usage: STATE BOX QUEUE_ID SENDER RCPT..." >&2; exit 75; }
state=$1 box=$2 id=$3 sender=$4
shift 4
case $box in capture|notices) ;; *) echo "capture: unknown box '$box'" >&2; exit 75 ;; esac
name=$(date +%s%N).$id
tmp=$state/spool/$name
fail() { rm -f "$tmp" "$tmp.envelope"; echo "capture: $1" >&2; exit 75; }
cat >"$tmp" || fail "cannot write $tmp"
{
  printf 'MAIL FROM:<%s>\n' "$sender"
  for rcpt in "$@"; do printf 'RCPT TO:<%s>\n' "$rcpt"; done
} >"$tmp.envelope" || fail "cannot write $tmp.envelope"
mv "$tmp.envelope" "$state/$box.envelope/$name" || fail "cannot move envelope"
mv "$tmp" "$state/$box/$name" || fail "cannot move message"
exit 0
