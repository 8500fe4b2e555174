"""The original Python easycaching 0.108 (PyPI), measured through its documented API: start-up
(`EasyCacheManager.create` and `create_cache`), then `set` and `get` on the same keys and values
as easycaching's benchmark (each set stores a new value, as there). Prints one line of JSON. Run by `make bench-original` in a scratch
directory (the library writes its files and database there) as

    python bench.py OPERATIONS KEYS

The library starts its own server (gunicorn on 127.0.0.1:8191) and answers every call through
it; `close()` stops it.
"""

import asyncio
import json
import sys
import time

async def main(operations: int, keys: int) -> None:
    start = time.perf_counter()
    from easycaching import EasyCacheManager

    manager = await EasyCacheManager.create("bench")
    cache = await manager.create_cache("bench")
    startup_s = time.perf_counter() - start
    try:
        names = [f"key:{i:09d}" for i in range(keys)]
        start = time.perf_counter()
        for i in range(operations):
            await cache.set(names[i % keys], {"name": "Ada", "visits": 100_000_000 + i})
        sets_per_sec = operations / (time.perf_counter() - start)
        start = time.perf_counter()
        for i in range(operations):
            await cache.get(names[i % keys])
        get_us = (time.perf_counter() - start) / operations * 1e6
    finally:
        await manager.close()
    print(json.dumps({"startup_s": startup_s, "sets_per_sec": sets_per_sec, "get_us": get_us}))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
