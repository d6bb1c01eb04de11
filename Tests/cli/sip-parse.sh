#!/usr/bin/env bash
# `parley sip parse` on the command line: every RFC 4475 message gives the exit status and output
# the message core's tests expect, malformed input prints `error: ` and exits 1, and no input
# (random bytes, empty, a directory, a missing file) crashes it. Last line: `N passed, N failed`.
set -u
cd "$(dirname "$0")/../.."
PARLEY=${PARLEY:-.build/debug/parley}
FIX=Tests/ParleySIPTests/Fixtures/rfc4475
pass=0; fail=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL $*"; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# Messages that must parse (RFC 4475 3.1.1, 3.2, 3.3, 3.4) and those that must be refused.
accept="valid/wsinv valid/intmeth valid/esc01 valid/escnull valid/esc02 valid/lwsdisp valid/longreq valid/dblreq
valid/semiuri valid/transports valid/mpart01 valid/unreason valid/noreason invalid/badbranch invalid/unkscm
invalid/novelsc invalid/unksm2 invalid/bext01 invalid/invut invalid/regaut01 invalid/bcast invalid/zeromf
invalid/cparam01 invalid/cparam02 invalid/regescrt invalid/sdp01 invalid/inv2543"
refuse="badinv01 clerr ncl scalar02 scalarlg quotbal ltgtruri lwsruri lwsstart trws escruri baddate regbadct
badaspec baddn badvers mismatch01 mismatch02 bigcode multi01 mcl01 insuf"

for f in $accept; do
  if "$PARLEY" sip parse "$FIX/$f.dat" > "$tmp/out" 2> "$tmp/err"; then
    # The canonical output parses again to the same canonical output.
    if "$PARLEY" sip parse - < "$tmp/out" > "$tmp/again" 2>/dev/null && cmp -s "$tmp/out" "$tmp/again"; then ok; else bad "$f: canonical output does not round-trip"; fi
    if "$PARLEY" sip parse --json "$FIX/$f.dat" | python3 -c 'import json,sys; json.load(sys.stdin)' 2>/dev/null; then ok; else bad "$f: --json is not JSON"; fi
  else
    bad "$f: exit $? ($(head -c 200 "$tmp/err"))"
  fi
done
for f in $refuse; do
  "$PARLEY" sip parse "$FIX/invalid/$f.dat" > "$tmp/out" 2> "$tmp/err"; rc=$?
  if [ $rc -eq 1 ] && grep -q '^error: ' "$tmp/err" && [ ! -s "$tmp/out" ]; then ok; else bad "$f: exit $rc, stderr '$(head -c 200 "$tmp/err")'"; fi
done
# The error says where: a header name or a line number.
"$PARLEY" sip parse "$FIX/invalid/mismatch01.dat" 2> "$tmp/err" >/dev/null
if grep -q 'CSeq' "$tmp/err"; then ok; else bad "mismatch01: error does not name CSeq"; fi
"$PARLEY" sip parse "$FIX/invalid/lwsstart.dat" 2> "$tmp/err" >/dev/null
if grep -q 'line 1' "$tmp/err"; then ok; else bad "lwsstart: error does not give the line"; fi

# Never a crash: random and truncated input, empty input, a directory, a missing file.
for i in $(seq 1 200); do
  head -c $((RANDOM % 2000)) /dev/urandom > "$tmp/rand"
  "$PARLEY" sip parse "$tmp/rand" >/dev/null 2>&1; rc=$?
  if [ $rc -le 1 ]; then ok; else bad "random input $i: exit $rc"; cp "$tmp/rand" "/tmp/parley-crash-$i.bin"; fi
done
for f in $FIX/valid/*.dat; do
  size=$(stat -c %s "$f")
  for cut in 1 7 $((size / 3)) $((size / 2)) $((size - 1)); do
    head -c "$cut" "$f" > "$tmp/cut"
    "$PARLEY" sip parse "$tmp/cut" >/dev/null 2>&1; rc=$?
    if [ $rc -le 1 ]; then ok; else bad "$(basename "$f") cut at $cut: exit $rc"; fi
  done
done
: > "$tmp/empty"
"$PARLEY" sip parse "$tmp/empty" >/dev/null 2>"$tmp/err"; rc=$?
if [ $rc -eq 1 ] && grep -q '^error: ' "$tmp/err"; then ok; else bad "empty input: exit $rc"; fi
"$PARLEY" sip parse "$tmp" >/dev/null 2>"$tmp/err"; rc=$?
if [ $rc -eq 1 ] && grep -q '^error: ' "$tmp/err"; then ok; else bad "directory: exit $rc"; fi
"$PARLEY" sip parse "$tmp/missing" >/dev/null 2>"$tmp/err"; rc=$?
if [ $rc -eq 1 ] && grep -q '^error: ' "$tmp/err"; then ok; else bad "missing file: exit $rc"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
