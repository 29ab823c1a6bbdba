#!/usr/bin/env bash
# Chaos run of examples/raft_kv: three nodes, several clients writing unique keys, and a
# killer that `kill -9`s a random node and restarts it with the same command, again and
# again; at the end every write a node acknowledged (HTTP 200) is read back through the
# leader. Prints the counts and exits 1 if any acknowledged key is lost or wrong.
#
#   examples/raft_kv_chaos.sh [SECONDS] [CLIENTS]      (defaults: 60 s, 4 clients)
#
# Needs curl. Builds the example in release mode first. Nodes listen on 127.0.0.1:21101-21103
# (KEKBIT_CHAOS_PORT changes the first); their directories and logs go to a temporary
# directory, kept when the run fails.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_TO_RUN=${1:-60}
CLIENTS=${2:-4}
PORT=${KEKBIT_CHAOS_PORT:-21101}
cargo build --release --features raft --example raft_kv
BIN=target/release/examples/raft_kv
WORK=$(mktemp -d /tmp/kekbit-raft-chaos.XXXXXX)
declare -A PID ADDR
for id in 1 2 3; do ADDR[$id]="127.0.0.1:$((PORT + id - 1))"; done

start() {
    local id=$1
    "$BIN" --id "$id" --dir "$WORK/node-$id" --addr "${ADDR[$id]}" --snapshot-every 500 \
        >>"$WORK/node-$id.log" 2>&1 &
    PID[$id]=$!
}

stop_all() {
    for id in 1 2 3; do kill -9 "${PID[$id]}" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop_all EXIT

for id in 1 2 3; do start "$id"; done
for _ in $(seq 100); do
    curl -sf "http://${ADDR[1]}/status" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -sf -X POST "http://${ADDR[1]}/cluster/init" -H 'content-type: application/json' \
    -d "{\"members\":{\"1\":\"${ADDR[1]}\",\"2\":\"${ADDR[2]}\",\"3\":\"${ADDR[3]}\"}}" >/dev/null
echo "cluster formed; writing with $CLIENTS clients for ${SECONDS_TO_RUN}s while killing nodes"

# A client: PUT key c<client>-<i> = v<client>-<i> until the deadline, to a random node,
# following 421 to the leader; a 200 is an acknowledgement, logged to acked-<client>.
client() {
    local c=$1 deadline=$2 i=0 target status
    target=${ADDR[$((RANDOM % 3 + 1))]}
    while (( $(date +%s) < deadline )); do
        status=$(curl -s -o "$WORK/body-$c" -w '%{http_code}' --max-time 5 \
            -X PUT --data-binary "v$c-$i" "http://$target/kv/c$c-$i" || true)
        case $status in
            200) echo "c$c-$i v$c-$i" >>"$WORK/acked-$c"; i=$((i + 1)) ;;
            421) target=$(sed -n 's/.*"leader_addr":"\([^"]*\)".*/\1/p' "$WORK/body-$c")
                 [[ -n $target ]] || { sleep 0.1; target=${ADDR[$((RANDOM % 3 + 1))]}; } ;;
            *) sleep 0.1; target=${ADDR[$((RANDOM % 3 + 1))]} ;;
        esac
    done
}

deadline=$(( $(date +%s) + SECONDS_TO_RUN ))
CLIENT_PIDS=()
for c in $(seq "$CLIENTS"); do client "$c" "$deadline" & CLIENT_PIDS+=($!); done
kills=0
while (( $(date +%s) < deadline - 3 )); do
    sleep $((RANDOM % 4 + 2))
    victim=$((RANDOM % 3 + 1))
    kill -9 "${PID[$victim]}" 2>/dev/null || true
    wait "${PID[$victim]}" 2>/dev/null || true
    kills=$((kills + 1))
    sleep "0.$((RANDOM % 9 + 1))"
    start "$victim"
done
wait "${CLIENT_PIDS[@]}"
sleep 3

# Read every acknowledged key back through the leader.
cat "$WORK"/acked-* >"$WORK/acked" 2>/dev/null || : >"$WORK/acked"
acked=$(wc -l <"$WORK/acked")
lost=0 wrong=0 target=${ADDR[1]}
while read -r key value; do
    for _ in $(seq 50); do
        status=$(curl -s -o "$WORK/read" -w '%{http_code}' --max-time 5 "http://$target/kv/$key" || true)
        case $status in
            200|404) break ;;
            421) target=$(sed -n 's/.*"leader_addr":"\([^"]*\)".*/\1/p' "$WORK/read")
                 [[ -n $target ]] || { sleep 0.2; target=${ADDR[$((RANDOM % 3 + 1))]}; } ;;
            *) sleep 0.2; target=${ADDR[$((RANDOM % 3 + 1))]} ;;
        esac
    done
    if [[ $status == 404 ]]; then
        lost=$((lost + 1)); echo "lost: $key" >&2
    elif [[ $status != 200 ]]; then
        lost=$((lost + 1)); echo "unreadable ($status): $key" >&2
    elif [[ $(cat "$WORK/read") != "$value" ]]; then
        wrong=$((wrong + 1)); echo "wrong: $key = $(cat "$WORK/read"), acknowledged $value" >&2
    fi
done <"$WORK/acked"

echo "raft_kv chaos: ${SECONDS_TO_RUN}s, $CLIENTS clients, $kills kill -9 and restarts; $acked writes acknowledged, $lost lost, $wrong wrong"
if (( lost > 0 || wrong > 0 || acked == 0 )); then
    echo "evidence kept in $WORK" >&2
    exit 1
fi
stop_all
trap - EXIT
rm -rf "$WORK"
