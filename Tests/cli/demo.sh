#!/usr/bin/env bash
# `parley demo` on the command line: a short run with the shipped rules exits 0 and prints a live
# summary and a final one whose counts add up (offered = answered + abandoned + failed + cut off),
# with calls answered by the simulated agents; bad options are refused. Every run is bounded by
# `timeout`. Last line: `N passed, N failed`.
set -u
cd "$(dirname "$0")/../.."
PARLEY=${PARLEY:-.build/debug/parley}
pass=0; fail=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL $*"; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# below the kernel's ephemeral range (32768-60999), so no other test's socket can be one of ours
port=$(( 29000 + (RANDOM % 370) * 10 ))

timeout -k 5 40 "$PARLEY" demo --duration 3 --rate 3 --agents 3 --talk 0.5-1 --base-port "$port" >"$tmp/out" 2>"$tmp/err"; rc=$?
if [ $rc -eq 0 ]; then ok; else bad "parley demo --duration 3: exit $rc ($(tail -n 3 "$tmp/err" | tr '\n' ' ' | cut -c1-300))"; fi
if grep -q '^live ' "$tmp/out"; then ok; else bad "no live summary line"; fi
final=$(grep '^final ' "$tmp/out")
if [ -n "$final" ]; then ok; else bad "no final summary"; fi
# offered = answered + abandoned + failed (abandoned counts the callers cut off at the end, as
# the records do; waiting 0 at the end), and some answered
read -r offered answered abandoned failed waiting < <(awk '{
  for (i = 1; i < NF; i++) { if ($i == "offered") o = $(i+1); if ($i == "answered") a = $(i+1); if ($i == "abandoned") b = $(i+1)
    if ($i == "failed") f = $(i+1); if ($i == "waiting") w = $(i+1) }
  print o + 0, a + 0, b + 0, f + 0, w + 0 }' <<<"$final")
if [ "${offered:-0}" -gt 0 ] && [ "$offered" -eq $(( answered + abandoned + failed )) ] && [ "$waiting" -eq 0 ]; then ok
else bad "final counts do not add up: $final"; fi
if [ "${answered:-0}" -gt 0 ]; then ok; else bad "no call answered: $final"; fi
# one line per agent in the final summary, each with its phone's figures
if [ "$(sed -n '/^final /,$p' "$tmp/out" | grep -c '^    agent0[1-3] .*phone ')" -eq 3 ]; then ok; else bad "the final summary does not list the 3 agents"; fi
if ! grep -q 'inconsistent' "$tmp/out"; then ok; else bad "$(grep inconsistent "$tmp/out")"; fi

# bad options: refused before anything starts
timeout 10 "$PARLEY" demo --agents 0 >/dev/null 2>"$tmp/err"; rc=$?
if [ $rc -ne 0 ] && grep -q -- '--agents' "$tmp/err"; then ok; else bad "--agents 0: exit $rc"; fi
timeout 10 "$PARLEY" demo --talk 9-2 >/dev/null 2>"$tmp/err"; rc=$?
if [ $rc -ne 0 ] && grep -q -- '--talk' "$tmp/err"; then ok; else bad "--talk 9-2: exit $rc"; fi
timeout 20 "$PARLEY" demo --duration 1 --rules "$tmp/none" --base-port $((port + 5)) >/dev/null 2>"$tmp/err"; rc=$?
if [ $rc -ne 0 ] && grep -q 'rules' "$tmp/err"; then ok; else bad "--rules of a missing directory: exit $rc"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
