#!/usr/bin/env bash
# Makes a throw-away test CA and a server certificate signed by it, for the
# interop servers and the lab. Nothing here is trusted outside the test run.
#
#   tests/interop/lib/ca.sh DIR [SAN ...]
#
# Writes DIR/ca.pem, DIR/ca.key, DIR/server.pem (leaf + CA chain),
# DIR/server.key. SANs default to DNS:localhost. An existing DIR/server.pem
# is kept, so several servers can share one CA.
set -euo pipefail
dir=${1:?usage: ca.sh DIR [SAN ...]}
shift
sans=${*:-DNS:localhost}
sans=${sans// /,}
mkdir -p "$dir"
cd "$dir"
[ -f server.pem ] && exit 0
umask 077
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=smtpkit test CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key \
  -out server.csr 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "$sans" > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
  -extfile server.ext -out server.crt 2>/dev/null
cat server.crt ca.pem > server.pem
chmod 644 ca.pem server.pem server.crt
chmod 640 server.key
rm -f server.csr server.ext
