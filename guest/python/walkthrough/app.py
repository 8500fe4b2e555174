"""The example plugin in Python: the original easycaching's documented usage, step by step, on the
caches and queues its host grants it. It prints exactly what the Rust walkthrough prints.

Build and run it from guest/python (see README.md there)::

    .venv/bin/componentize-py -d ../../wit -w easycaching:cache/plugin \\
        componentize -p . -p walkthrough app -o walkthrough.wasm
    easycaching run walkthrough.wasm --db easycaching.db \\
        --allow 'cache:test=rwc' --allow 'cache:walkthrough=rwc' --allow 'queue:jobs=rwc'
"""

import json

import easycaching
from wit_world import exports


def show(value):
    """A value as the Rust walkthrough prints it: compact JSON, ``null`` for nothing."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def step(call, result):
    print(f"{call:<40} -> {result}")


# async def, as the original's code was: its calls were coroutines, ours return at once, and
# easycaching.run_async (below) runs it, as asyncio.run did.
async def walk_through():
    print("== the easycaching walkthrough ==")

    # cache = await EasyCacheManager.create(...); test = await cache.create_cache('test')
    test = easycaching.create_cache("test")
    step('create_cache("test")', f"cache {show(test.name)}")

    test["foo"] = "bar"
    step('test.set("foo", "bar")', "ok")
    step('test.get("foo")', show(test.get("foo")))
    step('test.contains("foo")', show("foo" in test))
    step('test.delete("foo")', show(test.delete("foo")))
    step('test.get("foo")', show(test.get("foo")))
    step("test.clear()", f"removed {test.clear()}")

    test["a"] = 1
    test["b"] = [1, 2]
    test["c"] = {"nested": True}
    step("test.set a, b, c", f"{len(test)} entries")

    # Each entry as a one-entry dict {key: value}, as the original gave them.
    print("async for item in test:")
    async for item in test:
        print(f"    {show(item)}")

    # manager.cache['test']['b']
    step('manager.cache["test"]["b"]', show(easycaching.caches["test"]["b"]))

    jobs = easycaching.create_queue("jobs")
    jobs.put("first")
    jobs.put({"second": 2})
    step('jobs.put("first"), jobs.put({...})', f"{len(jobs)} waiting")
    step("jobs.get()", show(jobs.get()))
    step("jobs.get()", show(jobs.get()))
    step("jobs.get()", show(jobs.get()))

    # Something that outlives the run: how many times this database has seen the walkthrough.
    stats = easycaching.create_cache("walkthrough")
    runs = stats.increment("runs")  # one write no other comes between: runs at once all count
    print(
        f"this database has now seen {runs} walkthrough run(s); run it again and the count goes on"
    )


class Run(exports.Run):
    """The `wasi:cli/run` export that `easycaching run` calls."""

    @easycaching.command
    def run(self) -> None:
        easycaching.run_async(walk_through())
