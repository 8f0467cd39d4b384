#!/usr/bin/env bash
# tests/chaos/kill.sh: kill `tally run` with SIGKILL at random moments of a large
# epoch, and check that nothing is lost and nothing is half-written.
#
#   tests/chaos/kill.sh [--no-build] [--bin PATH] [--seed N] [--kills N]
#                       [--devices N] [--days D] [--threads N] [--work DIR]
#
# It builds the release binary (unless --no-build or --bin) and copies it into the
# work directory (default ${TMPDIR:-/tmp}/tally-chaos), so a concurrent build cannot
# swap it mid-run. It generates an epoch with `tally gen --devices N --days D
# --format csv` (default 30,000 devices x 1 day: 1.1 GB, 38M heartbeats, 3-6 s to
# settle here), settles it twice cleanly (with --emit-measurements, so the write
# phase is longer; --threads 1 by default, to leave a core to others): the two must
# be byte-identical, and the shorter time is the clean time. Then, --kills times (default 100), alternating:
#
#   - without --force into an absent OUT_DIR: afterwards OUT_DIR must be absent, or
#     byte-identical to the clean run (the kill came after publishing);
#   - with --force onto a previous output (the sample epoch's, so old and new
#     differ): afterwards OUT_DIR must be byte-identical to the old output or to
#     the clean run, never missing, never a mix;
#
# killing the run with `kill -9` after a delay drawn from bash's $RANDOM seeded with
# --seed (printed; the delays also follow the machine's speed, see below): half the
# kills uniformly in [0, 1.1 x clean time]; a quarter near the end, in [0.8, 1.1 x
# clean time]; a quarter a random moment (up to 1.2 x the write phase) after the
# run's staging directory appears, to land in the write phase. The clean time and
# the write phase are lowered to what any run that beat its kill shows, so that a
# busy machine during the clean runs does not leave most kills landing after the
# run ended.
#
# After each kill, OUT_DIR's parent may hold only OUT_DIR and stale staging
# directories `.out.tally-tmp-*`, none still locked (their owner is dead); and the
# stale ones a previous kill left must be gone once the next run has got going
# (it completed, made its own staging directory, or ran for a second: the cleanup
# happens at its start). Each kill is counted by the phase it landed in, seen from
# what it left. Finally a rerun must be byte-identical to the clean run (diff -r)
# and leave nothing but OUT_DIR. Exit status 1 on any violation.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=1 bin="" seed=$(( $(date +%s) % 32768 )) kills=100 devices=30000 days=1 threads=1
work="${TMPDIR:-/tmp}/tally-chaos"
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) build=0 ;;
        --bin) bin=$2; build=0; shift ;;
        --seed) seed=$2; shift ;;
        --kills) kills=$2; shift ;;
        --devices) devices=$2; shift ;;
        --days) days=$2; shift ;;
        --threads) threads=$2; shift ;;
        --work) work=$2; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "kill.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

mkdir -p "$work"
if [ "$build" = 1 ]; then
    (cd "$root" && cargo build --release --locked --quiet)
fi
[ -n "$bin" ] || bin="${CARGO_TARGET_DIR:-$root/target}/release/tally"
[ "$bin" -ef "$work/tally" ] || cp "$bin" "$work/tally"
tally="$work/tally"

echo "kill.sh --seed $seed --kills $kills --devices $devices --days $days --threads $threads --work $work"
RANDOM=$seed
rand() { # r = a uniform integer in [0, $1]; not in a subshell, which would reseed
    r=$(( (RANDOM * 32768 + RANDOM) % ($1 + 1) ))
}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
have_flock=1
command -v flock >/dev/null || { have_flock=0; echo "(no flock(1): stale directories are not checked for locks)"; }

epoch="$work/epoch-${devices}x${days}"
if [ ! -f "$epoch/epoch.toml" ]; then
    "$tally" gen --devices "$devices" --days "$days" --seed 1 --format csv --out "$epoch" --force
fi
run_args=(run "$epoch" --emit-measurements --threads "$threads")

# The previous output that --force replaces, and the clean run.
rm -rf "$work/old" "$work/clean"
(cd "$root" && "$tally" run tests/epochs/sample --out "$work/old" --quiet 2>/dev/null)
outs="$work/outs"
out="$outs/out"
rm -rf "$outs"
mkdir -p "$outs"
# Two clean runs, timed, into the same parent as the kills (same filesystem); they
# must agree byte for byte. The shorter time is the clean time (another process's
# load only slows runs down). Also when the staging directory appears, to know how
# long the write phase lasts.
clean_run() { # sets took, staged (ms)
    local begin pid
    begin=$(now_ms)
    "$tally" "${run_args[@]}" --out "$out" --quiet 2>/dev/null &
    pid=$!
    staged=""
    while kill -0 "$pid" 2>/dev/null; do
        if [ -z "$staged" ] && compgen -G "$outs/.out.tally-tmp-*" >/dev/null; then
            staged=$(( $(now_ms) - begin ))
        fi
        sleep 0.002
    done
    wait "$pid"
    took=$(( $(now_ms) - begin ))
    [ -n "$staged" ] || staged=$took
}
clean_run
mv "$out" "$work/clean"
clean_ms=$took write_ms=$(( took - staged ))
clean_run
diff -r -q "$work/clean" "$out" || { echo "kill.sh: two clean runs differ" >&2; exit 1; }
rm -rf "$out"
[ "$took" -ge "$clean_ms" ] || clean_ms=$took
[ $(( took - staged )) -le "$write_ms" ] || write_ms=$(( took - staged ))
[ "$write_ms" -ge 5 ] || write_ms=5
echo "clean run: ${clean_ms} ms, of which writing ~${write_ms} ms ($(du -sh "$work/clean" | cut -f1))"

violations=0
violation() {
    echo "VIOLATION (kill $i, seed $seed): $*"
    violations=$((violations + 1))
}
same() { [ -d "$2" ] && diff -r -q "$1" "$2" >/dev/null 2>&1; }
stale_list() { # the stale entries in $outs, one per line
    (cd "$outs" && for e in .out.tally-tmp-* .out.tally-old-*; do [ -e "$e" ] || [ -L "$e" ] && echo "$e"; done) || true
}

declare -A phases=()
left_stale=0 removed_verified=0 removed_early=0 removed_final=0
t0=$(now_ms)
for i in $(seq 1 "$kills"); do
    force=$(( i % 2 == 0 ))
    rm -rf "$out"
    if [ "$force" = 1 ]; then cp -a "$work/old" "$out"; fi
    declare -A before=()
    while read -r e; do [ -n "$e" ] && before[$e]=1; done < <(stale_list)

    rand 3
    case "$r" in
        0|1) rand $(( clean_ms * 11 / 10 )); delay=$r; how=uniform ;;
        2) rand $(( clean_ms * 3 / 10 )); delay=$(( clean_ms * 8 / 10 + r )); how=near-end ;;
        3) rand $(( write_ms * 12 / 10 )); delay=$r; how=after-staging ;;
    esac
    args=("${run_args[@]}" --out "$out" --quiet)
    [ "$force" = 1 ] && args+=(--force)
    start=$(now_ms)
    "$tally" "${args[@]}" 2>"$work/stderr" &
    pid=$!
    if [ "$how" = after-staging ]; then
        # Until a staging directory of this run appears (or the run ends).
        while kill -0 "$pid" 2>/dev/null; do
            fresh=""
            for e in "$outs"/.out.tally-tmp-*; do
                [ -e "$e" ] && [ -z "${before[${e##*/}]:-}" ] && fresh=1 && break
            done
            [ -n "$fresh" ] && break
            sleep 0.002
        done
    fi
    sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
    kill -9 "$pid" 2>/dev/null || true
    rc=0
    wait "$pid" 2>/dev/null || rc=$?  # no "Killed" job notice
    ran_ms=$(( $(now_ms) - start ))

    # What is there now.
    new_stale=() gone_missing=()
    while read -r e; do
        [ -n "$e" ] || continue
        [ -z "${before[$e]:-}" ] && new_stale+=("$e")
        if [ "$have_flock" = 1 ] && ! flock -n "$outs/$e" true 2>/dev/null; then
            violation "$e is still locked after its run was killed"
        fi
    done < <(stale_list)
    for e in "$outs"/* "$outs"/.[!.]*; do
        [ -e "$e" ] || [ -L "$e" ] || continue
        n=${e##*/}
        [[ "$n" == out || "$n" =~ ^\.out\.tally-(tmp|old)-[A-Za-z0-9-]+$ ]] || violation "stray entry $n"
    done
    state=missing
    if [ -e "$out" ] || [ -L "$out" ]; then
        if same "$work/clean" "$out"; then state=new
        elif same "$work/old" "$out"; then state=old
        else state=other; fi
    fi

    # A run that beat the kill shows how long runs take now (other processes' load
    # varies): keep the delays within it.
    if [ "$rc" = 0 ] && [ "$ran_ms" -lt "$clean_ms" ]; then clean_ms=$ran_ms; fi
    # Likewise a run that outlived a delay after its staging directory appeared
    # wrote everything within that delay.
    if [ "$rc" = 0 ] && [ "$how" = after-staging ] && [ "$delay" -lt "$write_ms" ]; then
        write_ms=$(( delay > 5 ? delay : 5 ))
    fi
    case "$rc" in
        0) [ "$state" = new ] || violation "the run succeeded but OUT_DIR is $state" ;;
        137) ;;
        *) violation "the run failed with exit code $rc: $(cat "$work/stderr")" ;;
    esac
    if [ "$force" = 1 ]; then
        [ "$state" = new ] || [ "$state" = old ] ||
            violation "with --force, OUT_DIR is $state (must be the old output or the new one)"
    else
        [ "$state" = new ] || [ "$state" = missing ] ||
            violation "without --force, OUT_DIR is $state (must be missing or the new output)"
    fi

    # Had this run got going, the stale entries of the previous kills must be gone.
    going=0
    if [ "$rc" = 0 ] || [ "${#new_stale[@]}" -gt 0 ] || [ "$state" = new ] || [ "$ran_ms" -ge 1000 ]; then
        going=1
    fi
    for e in "${!before[@]}"; do
        if [ -e "$outs/$e" ] || [ -L "$outs/$e" ]; then
            [ "$going" = 0 ] || violation "stale $e survived a run that got going (${ran_ms} ms)"
        elif [ "$going" = 1 ]; then
            removed_verified=$((removed_verified + 1))
        else
            removed_early=$((removed_early + 1))
        fi
    done

    if [ "$rc" = 0 ]; then phase="completed before the kill"
    elif [ "$state" = new ] && [ "${#new_stale[@]}" -gt 0 ]; then phase="after publishing, old output not yet removed"
    elif [ "$state" = new ]; then phase="after publishing"
    elif [ "${#new_stale[@]}" -gt 0 ]; then phase="while writing"
    else phase="before writing"; fi
    phases[$phase]=$(( ${phases[$phase]:-0} + 1 ))
    left_stale=$(( left_stale + ${#new_stale[@]} ))
    printf 'kill %3d: %-8s %-13s %5d ms -> %-44s OUT_DIR %-7s stale: %d\n' \
        "$i" "$([ "$force" = 1 ] && echo --force || echo fresh)" "$how" "$delay" "$phase" "$state" "${#new_stale[@]}"
    unset before
done
loop_ms=$(( $(now_ms) - t0 ))

# The final rerun: removes what the last kills left, and writes the same bytes.
remaining=$(stale_list | wc -l)
"$tally" "${run_args[@]}" --out "$out" --force --quiet 2>"$work/stderr" ||
    violation "the final rerun failed: $(cat "$work/stderr")"
i=final
same "$work/clean" "$out" || { diff -r "$work/clean" "$out" | head -5; violation "the rerun differs from the clean run"; }
left=$(ls -A "$outs")
[ "$left" = out ] || violation "after the rerun, $outs holds: $(echo $left)"
[ "$left" != out ] || removed_final=$remaining
[ $((removed_verified + removed_early + removed_final)) -eq "$left_stale" ] ||
    violation "$left_stale stale directories left, but $((removed_verified + removed_early + removed_final)) seen removed"

echo
echo "seed $seed: $kills kills in $((loop_ms / 1000)) s (at the end: clean time ${clean_ms} ms, write phase ~${write_ms} ms)"
for p in "before writing" "while writing" "after publishing, old output not yet removed" "after publishing" "completed before the kill"; do
    printf '  %-46s %d\n' "$p" "${phases[$p]:-0}"
done
echo "  stale staging directories left by kills: $left_stale; removed by the next run that got going: $removed_verified;"
echo "    by a run killed within its first second: $removed_early; by the final rerun: $removed_final"
echo "  final rerun byte-identical to the clean run, nothing else left: $([ "$violations" = 0 ] && echo yes || echo NO)"
if [ "$violations" -gt 0 ]; then
    echo "FAILED: $violations violation(s)"
    exit 1
fi
echo "OK"
