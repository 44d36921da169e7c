#!/usr/bin/env bash
# One style everywhere: every C file is as clang-format (.clang-format)
# would write it.
#   check_format.sh SOURCE_DIR
set -u
cd "$1"
bad=0
for f in $(git ls-files '*.c' '*.h' 2>/dev/null || find src cli include tests -name '*.[ch]'); do
  if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
    echo "not formatted: $f (run: clang-format -i $f)"
    bad=$((bad + 1))
  fi
done
echo "$bad files need formatting"
[ "$bad" -eq 0 ]
