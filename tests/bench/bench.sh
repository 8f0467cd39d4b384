#!/usr/bin/env bash
# tally vs DuckDB, one command. See tests/bench/README.md.
#
#   tests/bench/bench.sh [--quick] [--huge] [--huge-duckdb] [--keep] [--repeat N]
#                        [--devices N] [--seed S] [--no-build] [--no-history]
#
# Builds tally (cargo build --release --locked), installs DuckDB from PyPI into a
# venv under target/bench, generates the workloads under target/bench/data (or
# reuses them), times `tally run` end to end and tests/bench/duckdb_v1.py on the
# same files in the same run, checks that both produced the same measurement
# table, prints a markdown table and appends it to tests/bench/history.md.
set -euo pipefail

DUCKDB_VERSION=2.0.1
QUICK=0 HUGE=0 HUGE_DUCKDB=0 KEEP=0 BUILD=1 HISTORY=1
REPEAT=3 SEED=1 DEVICES=
HUGE_DEVICES=${HUGE_DEVICES:-100000} HUGE_DAYS=${HUGE_DAYS:-8}

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --huge) HUGE=1 ;;
    --huge-duckdb) HUGE=1; HUGE_DUCKDB=1 ;;
    --keep) KEEP=1 ;;
    --repeat) REPEAT=$2; shift ;;
    --devices) DEVICES=$2; shift ;;
    --seed) SEED=$2; shift ;;
    --no-build) BUILD=0 ;;
    --no-history) HISTORY=0 ;;
    -h|--help) usage 0 ;;
    *) echo "bench.sh: unknown argument $1" >&2; usage 2 >&2 ;;
  esac
  shift
done
case "$REPEAT" in ''|*[!0-9]*|0) echo "bench.sh: --repeat wants a positive integer" >&2; exit 2 ;; esac

export PYTHONDONTWRITEBYTECODE=1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BENCH=${BENCH_DIR:-$ROOT/target/bench}
TALLY=${TALLY:-$ROOT/target/release/tally}
HERE=$ROOT/tests/bench
NPROC=$(nproc)
if [ -z "$DEVICES" ]; then
  if [ "$QUICK" = 1 ]; then DEVICES=5000; else DEVICES=100000; fi
fi

say() { printf 'bench: %s\n' "$*" >&2; }
mkdir -p "$BENCH/data" "$BENCH/out"
RUN=$BENCH/out/run.$$
mkdir -p "$RUN"
RESULTS=$RUN/results.tsv
: > "$RESULTS"
CREATED=()   # data directories made by this run (removed at the end without --keep)
cleanup() {
  if [ "$KEEP" = 0 ]; then
    for d in "${CREATED[@]+"${CREATED[@]}"}"; do rm -rf "$d" "$d.gen"; done
    rm -rf "$RUN"
  fi
}
trap cleanup EXIT

command -v python3 >/dev/null && python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "bench.sh: needs python3 3.11 or later" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench.sh: needs GNU time as /usr/bin/time (apt-get install time)" >&2; exit 1; }

# ---------------------------------------------------------------- build
if [ "$BUILD" = 1 ]; then
  say "cargo build --release --locked"
  cargo build --release --locked
fi
[ -x "$TALLY" ] || { echo "bench.sh: no $TALLY (build it, or set TALLY=)" >&2; exit 1; }

# ---------------------------------------------------------------- DuckDB
VENV=$BENCH/venv
PY=$VENV/bin/python
if ! "$PY" -c "import duckdb, sys; sys.exit(duckdb.__version__ != '$DUCKDB_VERSION')" 2>/dev/null; then
  say "installing duckdb==$DUCKDB_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$PY" -m pip install --quiet --disable-pip-version-check "duckdb==$DUCKDB_VERSION"
fi

# ---------------------------------------------------------------- workloads
# gen DIR DEVICES DAYS FORMAT: the epoch in DIR, made once and reused while its
# recipe (DIR.gen) is unchanged. `tally gen` when the binary has it; otherwise
# tests/tools/gen_epoch.py (CSV) and tests/bench/to_parquet.py.
HAVE_GEN=0
"$TALLY" gen --help >/dev/null 2>&1 && HAVE_GEN=1
GENERATOR=$([ "$HAVE_GEN" = 1 ] && echo "tally gen" || echo "gen_epoch.py")
gen() {
  local dir=$1 devices=$2 days=$3 format=$4 recipe
  if [ "$HAVE_GEN" = 1 ]; then
    recipe="tally gen --devices $devices --days $days --seed $SEED --format $format ($("$TALLY" --version))"
  elif [ "$format" = csv ]; then
    recipe="gen_epoch.py --devices $devices --hours $((days * 24)) --seed $SEED --rejects 20"
  else
    recipe="to_parquet.py of ${dir%-parquet}-csv"
  fi
  if [ -d "$dir" ] && [ "$(cat "$dir.gen" 2>/dev/null)" = "$recipe" ]; then
    say "reusing $dir"
    return
  fi
  rm -rf "$dir" "$dir.partial" "$dir.gen"
  CREATED+=("$dir")
  if [ "$HAVE_GEN" = 1 ]; then
    say "generating $dir: $recipe"
    "$TALLY" gen --devices "$devices" --days "$days" --seed "$SEED" --format "$format" --out "$dir.partial"
  elif [ "$format" = csv ]; then
    say "generating $dir: $recipe (no \`tally gen\` in this binary: the Python generator is slow)"
    python3 tests/tools/gen_epoch.py --out "$dir.partial" --devices "$devices" \
      --hours $((days * 24)) --seed "$SEED" --rejects 20 2>&1 | tail -1 >&2
  else
    gen "${dir%-parquet}-csv" "$devices" "$days" csv
    say "generating $dir: $recipe"
    "$PY" "$HERE/to_parquet.py" "${dir%-parquet}-csv" "$dir.partial" --threads "$NPROC"
  fi
  mv "$dir.partial" "$dir"
  echo "$recipe" > "$dir.gen"
}

if [ "$HUGE" = 1 ] && [ "$HAVE_GEN" = 0 ]; then
  say "--huge needs \`tally gen\` (the Python generator would take hours): skipped"
  HUGE=0
fi
MODE=$([ "$QUICK" = 1 ] && echo quick || echo full)
[ "$HUGE" = 1 ] && MODE="$MODE+huge"
WORKLOADS=()   # name|dir|format|run duckdb (1/0)|repeats
WORKLOADS+=("sample|$ROOT/tests/epochs/sample|csv|1|$REPEAT")
prefix=$([ "$HAVE_GEN" = 1 ] && echo gen || echo py)
for fmt in csv parquet; do
  dir=$BENCH/data/$prefix-d${DEVICES}x1-s$SEED-$fmt
  gen "$dir" "$DEVICES" 1 "$fmt"
  WORKLOADS+=("${DEVICES} devices x 1 day|$dir|$fmt|1|$REPEAT")
done
if [ "$HUGE" = 1 ]; then
  dir=$BENCH/data/$prefix-d${HUGE_DEVICES}x${HUGE_DAYS}-s$SEED-parquet
  gen "$dir" "$HUGE_DEVICES" "$HUGE_DAYS" parquet
  WORKLOADS+=("${HUGE_DEVICES} devices x ${HUGE_DAYS} days|$dir|parquet|$HUGE_DUCKDB|1")
fi

# ---------------------------------------------------------------- runs
# timed CMD...: runs CMD under /usr/bin/time and prints "wall user sys max_rss_kb";
# CMD's stderr is kept in $RUN/stderr.txt
timed() {
  local tf=$RUN/time.txt rc=0
  /usr/bin/time -o "$tf" -f '%e %U %S %M' "$@" 2>"$RUN/stderr.txt" >/dev/null || rc=$?
  if [ "$rc" != 0 ]; then
    say "FAILED (exit $rc): $*"; tail -5 "$RUN/stderr.txt" >&2
    return 1
  fi
  tail -1 "$tf"
}

for w in "${WORKLOADS[@]}"; do
  IFS='|' read -r name dir fmt with_duck reps <<<"$w"
  out=$RUN/$(basename "$dir")
  mkdir -p "$out"
  say "workload: $name ($fmt, $dir)"
  cat "$dir"/* > /dev/null   # same warm page cache for both engines
  rows_hb=- rows_all=-
  rm -rf "$out/tally" "$out/duckdb.csv"
  for ((r = 1; r <= reps; r++)); do
    if t=$(timed "$TALLY" run "$dir" --out "$out/tally" --force --quiet --emit-measurements); then
      if [ "$rows_hb" = - ]; then
        read -r rows_hb rows_all < <("$PY" - "$out/tally/manifest.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
rows = {i["file"].split(".")[0]: i.get("rows", 0) for i in m["inputs"]}
print(rows.get("heartbeats", 0), sum(rows.values()))
EOF
)
      fi
      printf '%s\t%s\t%s\ttally\t%s\t%s\t-\t%s\t%s\n' "$name" "$fmt" "$dir" "$r" "${t// /$'\t'}" "$rows_hb" "$rows_all" >> "$RESULTS"
      say "  tally  #$r: $t (wall user sys KB)"
    else
      printf '%s\t%s\t%s\ttally\t%s\tFAIL\n' "$name" "$fmt" "$dir" "$r" >> "$RESULTS"
    fi
    [ "$with_duck" = 1 ] || continue
    if t=$(timed "$PY" "$HERE/duckdb_v1.py" "$dir" "$out/duckdb.csv" --threads "$NPROC" --temp-dir "$out/duckdb.tmp"); then
      q=$(sed -n 's/.*query_seconds=\([0-9.]*\).*/\1/p' "$RUN/stderr.txt")
      printf '%s\t%s\t%s\tduckdb\t%s\t%s\t%s\t%s\t%s\n' "$name" "$fmt" "$dir" "$r" "${t// /$'\t'}" "${q:--}" "$rows_hb" "$rows_all" >> "$RESULTS"
      say "  duckdb #$r: $t (wall user sys KB), query ${q}s"
    else
      printf '%s\t%s\t%s\tduckdb\t%s\tFAIL\n' "$name" "$fmt" "$dir" "$r" >> "$RESULTS"
    fi
  done
  if [ "$with_duck" = 1 ]; then
    if [ -f "$out/tally/measurements.csv" ] && [ -f "$out/duckdb.csv" ] \
       && cmp -s "$out/tally/measurements.csv" "$out/duckdb.csv"; then
      match=yes
    elif [ -f "$out/tally/measurements.csv" ] && [ -f "$out/duckdb.csv" ]; then
      match=NO
      say "  measurements differ (< tally, > DuckDB):"
      diff "$out/tally/measurements.csv" "$out/duckdb.csv" 2>&1 | head -10 >&2 || true
    else
      match="not compared (a run failed)"
    fi
    printf '%s\t%s\tmatch\t%s\n' "$name" "$fmt" "$match" >> "$RESULTS"
  fi
done

# ---------------------------------------------------------------- report
if commit=$(git rev-parse --short HEAD 2>/dev/null); then
  git diff --quiet HEAD -- 2>/dev/null || commit="$commit+dirty"   # tracked files edited
else
  commit=unknown
fi
model=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
header="$(date -u +%F), commit $commit, $MODE, $GENERATOR data (seed $SEED), median of $REPEAT; machine: $NPROC cores, ${model:-unknown CPU}, $mem RAM, Linux $(uname -r); $("$TALLY" --version), duckdb $DUCKDB_VERSION"
table=$("$PY" "$HERE/report.py" "$RESULTS" "$header" "$DEVICES")
printf '\n%s\n' "$table"
if [ "$HISTORY" = 1 ]; then
  hist=$HERE/history.md
  [ -f "$hist" ] || printf '# Benchmark history\n\nAppended by `tests/bench/bench.sh`; see README.md there.\n' > "$hist"
  printf '\n%s\n' "$table" >> "$hist"
  say "appended to tests/bench/history.md"
fi
[ "$KEEP" = 1 ] && say "kept: data in $BENCH/data, outputs in $RUN"
exit 0
