#!/bin/bash
# test_cli.sh SMTPKIT — checks `smtpkit explain` as a command: exit codes,
# the SPEC §4 JSON shape, stdin input, and that every example in
# `smtpkit explain --help` works as shown.
set -u
BIN=${1:?usage: test_cli.sh path/to/smtpkit}
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

smtpkit() { "$BIN" "$@"; }

# --help: exit 0, and each input form has an example that finds a cause.
help=$("$BIN" explain --help) || fail "--help exits $?"
for form in Python Java Node.js .NET PHPMailer PEAR Ruby Go curl msmtp \
            swaks Postfix Exim socket stdin; do
  grep -q -- "$form" <<<"$help" || fail "--help has no example for $form"
done
n=0
while IFS= read -r line; do
  case $line in *"< error.log"*) continue ;; esac
  n=$((n + 1))
  out=$(eval "$line" 2>&1)
  rc=$?
  [ $rc -eq 0 ] || fail "help example exits $rc: $line"$'\n'"$out"
done < <(grep -E '^    (smtpkit explain|printf)' <<<"$help")
[ $n -ge 14 ] || fail "only $n runnable examples in --help"

# Exit codes: 0 cause found, 1 nothing found or unknown, 64 bad usage.
"$BIN" explain '535 5.7.8 Authentication credentials invalid' >/dev/null
[ $? -eq 0 ] || fail "known reply does not exit 0"
"$BIN" explain 'hello world' >/dev/null
[ $? -eq 1 ] || fail "text without a reply does not exit 1"
"$BIN" explain '550 5.7.1 computer says no' >/dev/null
[ $? -eq 1 ] || fail "unknown reply does not exit 1"
err=$("$BIN" explain --bogus 2>&1 >/dev/null)
[ $? -eq 64 ] || fail "bad option does not exit 64"
grep -q -- "--help" <<<"$err" || fail "bad option does not point to --help"
"$BIN" explain --provider nosuch x >/dev/null 2>&1
[ $? -eq 64 ] || fail "unknown --provider does not exit 64"
"$BIN" explain --json >/dev/null 2>&1 </dev/null
[ $? -eq 1 ] || fail "empty stdin does not exit 1"

# stdin keeps line breaks.
printf '534-5.7.14 <https://accounts.google.com/signin/continue?x>\n534-5.7.14 Please log in via your web browser and then try again.\n534 5.7.14 https://support.google.com/mail/answer/78754 x - gsmtp\n' |
  "$BIN" explain --json | grep -q '"cause":"web_login_required"' ||
  fail "stdin multi-line reply"

# JSON shape (SPEC §4): these members, these types.
check_json() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
doc = json.loads(sys.argv[1])
want = {"version": int, "cause": str, "transient": bool, "summary": str,
        "fix": list, "references": list}
for k, t in want.items():
    assert isinstance(doc.get(k), t), (k, doc.get(k))
for k in ("code", "enhanced", "provider"):
    assert k in doc, k
assert doc["version"] == 1
exp = sys.argv[2].split(",")
assert doc["cause"] == exp[0], doc["cause"]
assert str(doc["code"]) == exp[1], doc["code"]
assert str(doc["enhanced"]) == exp[2], doc["enhanced"]
assert str(doc["provider"]) == exp[3], doc["provider"]
assert all(isinstance(s, str) and s for s in doc["fix"] + doc["references"])
EOF
}
if command -v python3 >/dev/null; then
  j=$("$BIN" explain --json "smtplib.SMTPAuthenticationError: (534, b'5.7.9 Application-specific password required. Learn more at\n5.7.9 https://support.google.com/mail/?p=InvalidSecondFactor x - gsmtp')")
  check_json "$j" "app_password_required,534,5.7.9,google" || fail "json: $j"
  j=$("$BIN" explain --json 'hello world')
  check_json "$j" "unknown,None,None,None" || fail "json without reply: $j"
  j=$("$BIN" explain --json --provider netease '535 Error: authentication failed')
  check_json "$j" "app_password_required,535,None,netease" || fail "json --provider: $j"
fi

[ $fails -eq 0 ] && echo "explain cli: all checks pass"
exit $((fails > 0))
