"""Measuring plugin: the cost of one cache read from Python, through the SDK and through the raw
binding, in rounds so that a cost growing with the number of calls shows. Prints microseconds per
operation for each round. Needs ``cache:bench=rwc``. Its argument is the number of calls per
round (2000); with 0 it returns at once, for timing start-up alone::

    .venv/bin/componentize-py -d ../../wit -w easycaching:cache/plugin \\
        componentize -p . -p bench app -o bench.wasm
    easycaching run bench.wasm --db bench.db --allow 'cache:bench=rwc' -- 2000
"""

import json
import sys
import time

import easycaching
from wit_world import exports
from wit_world.imports import manager

ROUNDS = 5


def measure(label, calls, operation):
    """Runs ``operation`` ``calls`` times a round and prints µs per call for each round."""
    per_call = []
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        for _ in range(calls):
            operation()
        per_call.append(f"{(time.perf_counter_ns() - start) / 1000 / calls:.2f}")
    print(f"{label:<24} µs/op, {ROUNDS} rounds of {calls}: {' '.join(per_call)}")


class Run(exports.Run):
    """The `wasi:cli/run` export that `easycaching run` calls."""

    def run(self) -> None:
        calls = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
        if calls == 0:
            return
        cache = easycaching.create_cache("bench")
        cache["hit"] = {"user": "ada", "visits": 3}
        raw = manager.create_cache("bench")
        measure("get hit (SDK)", calls, lambda: cache["hit"])
        measure("get hit (raw binding)", calls, lambda: raw.get("hit"))
        measure("get miss (SDK)", calls, lambda: cache.get("miss"))
        measure("json.loads, no call", calls, lambda: json.loads('{"user":"ada","visits":3}'))
