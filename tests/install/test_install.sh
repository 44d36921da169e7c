#!/usr/bin/env bash
# cmake --install puts the binary, both libraries, the header, the manual
# and smtpkit.pc under any prefix, and a program builds against the
# installed library with pkg-config alone. The shared library exports only
# smtpkit_* names.
#   test_install.sh BUILD_DIR
set -u
BUILD=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../interop/lib/testlib.sh"
prefix=$(mktemp -d /tmp/smtpkit-install.XXXXXX)
trap 'rm -rf "$prefix" "$XDG_STATE_HOME"' EXIT
check "cmake --install to a fresh prefix" eval 'cmake --install "$BUILD" --prefix "$prefix" >/dev/null'
for f in bin/smtpkit include/smtpkit.h lib/libsmtpkit.a share/man/man1/smtpkit.1; do
  check "installed $f" test -f "$prefix/$f"
done
pc=$(find "$prefix" -name smtpkit.pc | head -1)
check "installed smtpkit.pc" test -n "$pc"
so=$(find "$prefix" -name 'libsmtpkit.so*' -type f | head -1)
cat >"$prefix/t.c" <<'C'
#include <smtpkit.h>
#include <stdio.h>
#include <string.h>
int main(void) {
  smtpkit_settings s;
  smtpkit_settings_init(&s);
  return strcmp(smtpkit_cause_name(SMTPKIT_CAUSE_app_password_required),
                "app_password_required") != 0 || s.tls != SMTPKIT_TLS_AUTO;
}
C
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$pc")
check "a program builds with pkg-config --cflags --libs smtpkit" \
  eval 'cc "$prefix/t.c" $(pkg-config --cflags --libs smtpkit) -o "$prefix/t"'
check "and runs against the installed shared library" \
  env LD_LIBRARY_PATH="$(dirname "$so")" "$prefix/t"
check "the shared library exports only smtpkit_* names" \
  eval '! nm -D --defined-only "$so" | awk "{print \$3}" | grep -v "^smtpkit_" | grep -q .'
finish
