#!/usr/bin/env bash
# Runs kekbit's fuzz targets with cargo-fuzz on the nightly toolchain and prints, for each,
# the executions, the corpus size and any crash (the reproducer and the panic message).
#
#   fuzz/run.sh                          # every target, 60 s each
#   FUZZ_SECONDS=600 fuzz/run.sh record_frame
#   KEKBIT_FUZZ_CODEC_LIMIT=documented fuzz/run.sh snapshot_decoder   # mask the known finding
#
# Needs `cargo install cargo-fuzz` and `rustup toolchain install nightly`. The seed corpora
# (valid files made by kekbit) are written by the `seed` binary the first time. Scratch files
# go to a fresh directory under /dev/shm (or /tmp), removed afterwards. Logs: fuzz/logs/.
# Exit status: 0 when no target crashed, 1 otherwise.
set -uo pipefail

cd "$(dirname "$0")/.."
FUZZ=fuzz
SECONDS_EACH="${FUZZ_SECONDS:-60}"
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(segment_header record_frame snapshot_decoder)
fi

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz (and rustup toolchain install nightly)" >&2
    exit 2
fi

mkdir -p "$FUZZ/logs"
for t in "${TARGETS[@]}"; do
    if [ -z "$(ls -A "$FUZZ/corpus/$t" 2>/dev/null)" ]; then
        echo "writing seed corpora"
        cargo +nightly run --quiet --release --manifest-path "$FUZZ/Cargo.toml" --bin seed -- \
            "$FUZZ/corpus" || exit 2
        break
    fi
done

echo "building the fuzz targets"
cargo +nightly fuzz build || exit 2

scratch_root=/dev/shm
[ -d "$scratch_root" ] && [ -w "$scratch_root" ] || scratch_root=/tmp

summary=()
crashed=0
for t in "${TARGETS[@]}"; do
    log="$FUZZ/logs/$t.log"
    artifacts="$FUZZ/artifacts/$t"
    mkdir -p "$artifacts"
    before=$(ls "$artifacts" | sort)
    corpus_before=$(ls "$FUZZ/corpus/$t" | wc -l)
    scratch=$(mktemp -d "$scratch_root/kekbit-fuzz-$t.XXXXXX")
    echo "fuzzing $t for ${SECONDS_EACH}s (log: $log)"
    start=$(date +%s)
    TMPDIR="$scratch" cargo +nightly fuzz run "$t" -- \
        -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=25 \
        -print_final_stats=1 >"$log" 2>&1
    status=$?
    elapsed=$(( $(date +%s) - start ))
    rm -rf "$scratch"

    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    if [ -z "$execs" ]; then
        # A crash ends libFuzzer before its final statistics: take the last status line.
        execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
    fi
    corpus_after=$(ls "$FUZZ/corpus/$t" | wc -l)
    corpus_bytes=$(( ($(cat "$FUZZ/corpus/$t"/* | wc -c) + 1023) / 1024 ))
    new_artifacts=$(comm -13 <(echo "$before") <(ls "$artifacts" | sort) | grep -v '^$' || true)
    line="$t: ${execs:-0} executions in ${elapsed}s, corpus $corpus_before -> $corpus_after inputs (${corpus_bytes} KiB)"
    if [ "$status" -ne 0 ] || [ -n "$new_artifacts" ]; then
        crashed=1
        message=$(grep -A1 'panicked at' "$log" | head -2 | tr '\n' ' ')
        [ -n "$message" ] || message=$(grep -m1 'ERROR: libFuzzer' "$log")
        line="$line; CRASH (exit $status): $message"
        for a in $new_artifacts; do
            line="$line
    reproducer: $artifacts/$a
    rerun: cargo +nightly fuzz run $t $artifacts/$a"
        done
    else
        line="$line; no crash"
    fi
    summary+=("$line")
done

echo
echo "summary"
for line in "${summary[@]}"; do
    echo "  $line"
done
exit $crashed
