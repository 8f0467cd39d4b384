#!/usr/bin/env bash
# Cross-checks tally against the independent Python oracle on any epoch:
#   [ORACLE_FLAGS="--rules-version v2"] tests/oracle/check.sh EPOCH_DIR [extra tally run flags, e.g. --rules rules/v2.toml]
# Compares every device's online_slots, points, eligible, reasons and every account's
# points and token_units. Needs python3 (standard library only) and a built tally.
set -euo pipefail
cd "$(dirname "$0")/../.."
epoch=$1; shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tally=${TALLY:-target/release/tally}
[ -x "$tally" ] || tally=target/debug/tally
"$tally" run "$epoch" --out "$work/tally" "$@"
python3 tests/oracle/oracle.py "$epoch" "$work/oracle" ${ORACLE_FLAGS:-}
python3 tests/oracle/compare.py "$work/tally" "$work/oracle"
