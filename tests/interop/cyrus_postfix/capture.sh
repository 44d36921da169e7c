#!/bin/sh
# Delivery command of the private Postfix + Cyrus SASL instance (pipe(8)
# transport "capture", run as nobody).
#
#   capture STATE BOX QUEUE_ID SENDER RECIPIENT...
#
# BOX is the next-hop: "capture" for client mail, "notices" for the DSNs
# Postfix generates. Writes, named <ns since epoch>.<queue id>:
#   STATE/BOX/NAME           the message as pipe(8) hands it over (LF line
#                            ends, smtpd's Received: header on top)
#   STATE/BOX.envelope/NAME  "MAIL FROM:<...>", then "RCPT TO:<...>" a line
# Both are written under STATE/spool first and renamed into place, envelope
# first, so a reader never sees half a file. Any failure exits 75
# (EX_TEMPFAIL): Postfix keeps the message queued rather than bouncing it.
set -u
umask 022
if [ $# -lt 5 ]; then
  echo "capture: usage: STATE BOX QUEUE_ID SENDER RECIPIENT..." >&2
  exit 75
fi
state=$1 box=$2 qid=$3 sender=$4
shift 4
case $box in
  capture | notices) ;;
  *) echo "capture: unknown box '$box'" >&2; exit 75 ;;
esac
name=$(date +%s%N).$qid
part=$state/spool/$name
bail() { rm -f "$part" "$part.envelope"; echo "capture: $1" >&2; exit 75; }
cat >"$part" || bail "cannot write $part"
{
  printf 'MAIL FROM:<%s>\n' "$sender"
  for r in "$@"; do printf 'RCPT TO:<%s>\n' "$r"; done
} >"$part.envelope" || bail "cannot write $part.envelope"
mv "$part.envelope" "$state/$box.envelope/$name" || bail "cannot place the envelope"
mv "$part" "$state/$box/$name" || bail "cannot place the message"
exit 0
