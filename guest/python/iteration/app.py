"""Test program: ``async for item in cache`` as the original easycaching had it, in a coroutine
driven by ``easycaching.run_async``, and the listing of a prefix. tests/languages.rs seeds the cache ``pages`` with more
entries than one page holds, runs it with the grant ``cache:pages=r`` and compares its output
line by line.
"""

import asyncio
import json

import easycaching
from wit_world import exports


def show(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Wait:
    """Something that truly waits: it hands its event loop itself, as an asyncio future does."""

    def __await__(self):
        return (yield self)


async def main():
    pages = easycaching.open_cache("pages")
    # Each entry as a one-entry dict, in key order, across pages.
    async for item in pages:
        if type(item) is not dict or len(item) != 1:
            print(f"not a one-entry dict: {item!r}")
        print(show(item))
    # Leaving the loop early leaves nothing behind.
    async for item in pages:
        print(f"first again: {show(item)}")
        break
    # A coroutine that yields to the loop and asks nothing of it is resumed.
    await asyncio.sleep(0)
    print("sleep(0): ok")
    # What would truly wait raises at its await, inside the coroutine.
    try:
        await Wait()
    except RuntimeError as error:
        print(f"a real wait: RuntimeError {'no event loop' in str(error)}")
    return len(pages)


class Run(exports.Run):
    """The `wasi:cli/run` export that `easycaching run` calls."""

    @easycaching.command
    def run(self) -> None:
        print(f"run_async returned {easycaching.run_async(main())}")
        # The entries and keys of a prefix, across pages too.
        pages = easycaching.open_cache("pages")
        prefixed = list(pages.items_with_prefix("k0"))
        print(f"prefix k0: {len(prefixed)}, {prefixed[0][0]} to {prefixed[-1][0]}")
        print(f"prefix k059: {list(pages.keys_with_prefix('k059'))}")
        page = pages.entries_page(limit=30, prefix="k05")
        print(f"a page of k05: {len(page.entries)}, next {page.next}")
        print(f"prefix x: {list(pages.items_with_prefix('x'))}")
        try:
            easycaching.run_async(main)
        except TypeError:
            print("run_async of a function: TypeError")
