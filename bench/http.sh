#!/usr/bin/env bash
# Measures `easycaching serve` with the web example (guest/rust/http-cache): GET of a stored key
# (an LRU hit) and POST (a durable write), at 1 and 50 connections, with wrk on loopback; then
# the same against the floor, a native axum server answering the same JSON from memory
# (bench/http-floor). With --wasmtime, also `wasmtime serve` (wasmtime-cli 48 on PATH, e.g.
# `cargo install wasmtime-cli --version '~48.0.8' --locked`, ~11 minutes) and easycaching serve
# on the same cache-less handler path (http-test-handler's /counter).
#
#   bench/http.sh [--duration 10s] [--rounds N] [--workers N] [--reuse N] [--wasmtime]
#
# --reuse N passes --requests-per-instance N (default 1: a fresh instance per request).
# Every server is started first and stays up; then each measurement runs once a round, in
# turns, for --rounds rounds (default 3), so load from elsewhere on the machine falls on every
# server alike. Prints one line per run: req/s and latency percentiles as wrk measures them
# (the http stage of easycaching-bench keeps the median of each).
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10s
rounds=3
workers=$(nproc)
reuse=1
with_wasmtime=false
while (($#)); do
    case $1 in
        --duration) duration=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --workers) workers=$2; shift 2 ;;
        --reuse) reuse=$2; shift 2 ;;
        --wasmtime) with_wasmtime=true; shift ;;
        -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench/http.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

command -v wrk > /dev/null || { echo "bench/http.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }
if $with_wasmtime && ! command -v wasmtime > /dev/null; then
    echo "bench/http.sh: --wasmtime needs wasmtime on PATH (cargo install wasmtime-cli --version '~48.0.8' --locked)" >&2
    exit 1
fi

scratch=$(mktemp -d)
if ! { make --no-print-directory host guest-rust && cargo build --release -p http-floor; } > "$scratch/build.log" 2>&1; then
    cat "$scratch/build.log" >&2
    rm -rf "$scratch"
    exit 1
fi
easycaching=target/release/easycaching
guests=target/guests

declare -A pids urls
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
    rm -rf "$scratch"
}
trap cleanup EXIT

# Every POST stores under one of 1000 keys, so the cache stays the same size however long it runs,
# and each key gets another value every time round. The requests are made once, up front: wrk
# shares the cores with the server, and every request formatted in Lua is CPU the server lacks
# (GET figures use wrk's one static request).
cat > "$scratch/post.lua" << 'EOF'
local requests = {}
local n = 0
init = function(args)
    for i = 0, 9999 do
        requests[i] = wrk.format("POST", "/cache?key=k" .. (i % 1000) .. "&value=v" .. i)
    end
end
request = function()
    n = n + 1
    return requests[n % 10000]
end
EOF

# start NAME COMMAND...: starts a server that prints its http:// address (easycaching on stdout,
# wasmtime on stderr); keeps its pid in ${pids[NAME]} and its address in ${urls[NAME]}.
start() {
    local name=$1 log="$scratch/$1.log" url
    shift
    "$@" > "$log" 2> "$scratch/$name.err" &
    pids[$name]=$!
    for _ in $(seq 600); do
        url=$(cat "$log" "$scratch/$name.err" | grep -o 'http://[0-9.:]*[0-9]' | head -1 || true)
        if [[ -n $url ]]; then
            urls[$name]=$url
            return 0
        fi
        sleep 0.1
    done
    echo "bench/http.sh: $name did not start:" >&2
    cat "$scratch/$name.err" >&2
    exit 1
}

# measure LABEL CONNECTIONS URL [wrk args...]: one wrk run, one line of results.
measure() {
    local label=$1 connections=$2 target=$3
    shift 3
    local threads=$((connections < 2 ? 1 : 2))
    local out
    out=$(wrk -t"$threads" -c"$connections" -d"$duration" --latency "$@" "$target")
    local rps p50 p90 p99
    rps=$(awk '/^Requests\/sec/ {print $2}' <<< "$out")
    p50=$(awk '$1 == "50%" {print $2}' <<< "$out")
    p90=$(awk '$1 == "90%" {print $2}' <<< "$out")
    p99=$(awk '$1 == "99%" {print $2}' <<< "$out")
    printf '%-44s %4s conns %10s req/s   p50 %-9s p90 %-9s p99 %s\n' "$label" "$connections" "$rps" "$p50" "$p90" "$p99"
}

echo "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); wrk for $duration per run, $rounds rounds"

start serve "$easycaching" --db "$scratch/web.db" serve "$guests/http_cache.wasm" --listen 127.0.0.1:0 \
    --workers "$workers" --requests-per-instance "$reuse" --allow 'cache:web=rwc'
curl -sf -X POST "${urls[serve]}/cache?key=hit&value=stored" > /dev/null
start floor target/release/http-floor 127.0.0.1:0 "$workers"
curl -sf -X POST "${urls[floor]}/cache?key=hit&value=stored" > /dev/null
if $with_wasmtime; then
    # The same cache-less path on both servers. wasmtime has no easycaching interfaces, so the
    # handler's (unused on this path) cache imports are defined as traps.
    start wasmtime wasmtime serve -Scli -Wunknown-imports-trap --addr 127.0.0.1:0 "$guests/http_test_handler.wasm"
    start counter "$easycaching" --db "$scratch/counter.db" serve "$guests/http_test_handler.wasm" \
        --listen 127.0.0.1:0 --workers "$workers" --requests-per-instance "$reuse"
fi

serve="easycaching serve (workers $workers, reuse $reuse)"
floor="floor: axum, in memory (workers $workers)"
for _ in $(seq "$rounds"); do
    for connections in 1 50; do
        measure "$serve GET hit" "$connections" "${urls[serve]}/cache?key=hit"
        measure "$floor GET" "$connections" "${urls[floor]}/cache?key=hit"
        if $with_wasmtime; then
            measure "wasmtime serve, cache-less /counter" "$connections" "${urls[wasmtime]}/counter"
            measure "$serve, cache-less /counter" "$connections" "${urls[counter]}/counter"
        fi
        measure "$serve POST" "$connections" "${urls[serve]}" -s "$scratch/post.lua"
        measure "$floor POST" "$connections" "${urls[floor]}" -s "$scratch/post.lua"
    done
done

kill -TERM "${pids[serve]}"
wait "${pids[serve]}" || true
unset 'pids[serve]'
echo "  server's own count: $(tail -1 "$scratch/serve.log")"
