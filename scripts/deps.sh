#!/usr/bin/env bash
# Installs what smtpkit needs on Debian 12, only when something is missing.
#
#   scripts/deps.sh build   compiler, CMake, OpenSSL 3, GNU SASL, cmocka
#   scripts/deps.sh test    build + the real servers the interop tests start
#                           (Postfix + Dovecot, Exim, nodemailer's
#                           smtp-server, aiosmtpd, Postfix + Cyrus SASL)
#   scripts/deps.sh fuzz    build + clang and libFuzzer
#   scripts/deps.sh bench   build + the peers bench/run.sh compares with
#                           (msmtp, swaks, curl, Python, Postfix's
#                           smtp-sink/smtp-source) and GNU time
set -euo pipefail

build_pkgs=(gcc make cmake pkg-config clang-format git libssl-dev libgsasl-dev libcmocka-dev
            openssl ca-certificates libc-ares-dev)
test_pkgs=(python3 python3-aiosmtpd valgrind dnsmasq-base)
fuzz_pkgs=(clang libclang-rt-14-dev)
bench_pkgs=(msmtp swaks libnet-ssleay-perl curl python3 postfix time)

missing=()
want() {
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
      missing+=("$p")
  done
}

sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

what=${1:-build}
want "${build_pkgs[@]}"
if [ "$what" = test ]; then
  want "${test_pkgs[@]}"
  # Node.js may come from elsewhere (nodesource, nvm): then Debian's
  # packages would conflict with it, and are not needed.
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    want nodejs npm
  fi
fi
[ "$what" = fuzz ] && want "${fuzz_pkgs[@]}"
[ "$what" = bench ] && want "${bench_pkgs[@]}"
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  sudo_ apt-get update -qq
  # Postfix for its smtp-sink/smtp-source only: no system mail setup.
  [ "$what" = bench ] && echo "postfix postfix/main_mailer_type select No configuration" |
    sudo_ debconf-set-selections
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "$what" = test ]; then
  here=$(cd "$(dirname "$0")/.." && pwd)
  for s in postfix_dovecot exim nodemailer aiosmtpd cyrus_postfix; do
    bash "$here/tests/interop/$s.sh" install
  done
fi
