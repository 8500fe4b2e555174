"""Test program: every kind of failure reaches Python as the exception for its WIT case, and a
failed write stores nothing; ``compare_and_swap`` and ``update`` keep ``ABSENT`` apart from
JSON ``null`` and compare as JSON values. tests/languages.rs runs it with the grants
``cache:input=rwc cache:readonly=r cache:missing=r queue:input-queue=rwc`` and compares its
output line by line.
"""

import datetime
import time

import easycaching
from wit_world import exports


def leases(queue):
    """Leases, releases and acknowledgements, as a worker makes them; what each answered."""
    queue.put_many(["a", "b"])
    first = queue.lease(60)
    seen = [first.value, first.deliveries, queue.peek(), len(queue), queue.release(first)]
    again = queue.lease(datetime.timedelta(minutes=1))
    seen += [again.value, again.deliveries, queue.extend(again, 120), queue.ack(again), queue.ack(again.receipt)]
    seen.append(queue.extend(again, 120))
    return seen + [queue.get(), queue.lease(60)]


def waits(queue):
    """Gets and leases that wait for an item: what each answered (the test puts nothing
    meanwhile: an item waiting at once, then none in time)."""
    queue.put_many(["c", "d", "e", "f"])
    seen = [queue.get(timeout=0.05), queue.lease(60, timeout=datetime.timedelta(seconds=1))]
    queue.ack(seen[-1])
    seen[-1] = seen[-1].value
    seen.append(queue.get_many(10, timeout=0.05))
    queue.put_many(["g", "h"])
    seen.append([job.value for job in queue.lease_many(60, 10) if queue.ack(job)])
    nothing = [queue.get(timeout=0.01), queue.get("none", timeout=0), queue.lease(60, timeout=0.01)]
    return seen + nothing + [queue.get_many(10, timeout=0.01), queue.lease_many(60, 10, timeout=0.01)]


def attempt(label, action):
    """Runs ``action`` and prints what came of it: ``ok`` and the result, or the exception."""
    try:
        result = action()
    except easycaching.Error as error:
        assert error.message, "an error must carry the host's message"
        print(f"{label}: {type(error).__name__} {error.case}")
    except KeyError as error:
        print(f"{label}: KeyError {error}")
    except (TypeError, ValueError) as error:
        print(f"{label}: {type(error).__name__}")
    else:
        print(f"{label}: ok {result!r}")


def store(mapping, key, value):
    mapping[key] = value


def nan_refusal(cache):
    try:
        store(cache, "nan", float("nan"))
    except easycaching.InvalidJson as error:
        return "NaN" in error.message


def bad_expected_refusal(cache):
    try:
        cache.compare_and_swap_json("cas", "{nope", "1")
    except easycaching.InvalidJson as error:
        return "`expected`" in error.message


def short_ttl_expires(cache):
    cache.set("short", 1, ttl=0.05)
    deadline = time.monotonic() + 10
    while "short" in cache:
        assert time.monotonic() < deadline, "a 50 ms TTL did not expire within 10 s"
        time.sleep(0.01)
    return cache.get("short") is None and cache.ttl("short") is None


class Run(exports.Run):
    """The `wasi:cli/run` export that `easycaching run` calls."""

    def run(self) -> None:
        cache = easycaching.create_cache("input")
        queue = easycaching.create_queue("input-queue")
        # Python's json would write NaN, which is not JSON: refused, saying why.
        attempt("set NaN", lambda: store(cache, "nan", float("nan")))
        attempt("the refusal names NaN", lambda: nan_refusal(cache))
        attempt("set_many with one NaN", lambda: cache.set_many({"good": 1, "bad": float("inf")}))
        attempt("put NaN", lambda: queue.put(float("nan")))
        attempt("set huge key", lambda: store(cache, "k" * 5000, 1))
        attempt("set_json of text that is not JSON", lambda: cache.set_json("k", "{not json"))
        attempt("set_json nested 128 deep", lambda: cache.set_json("k", "[" * 128 + "]" * 128))
        attempt("set an int key", lambda: store(cache, 42, 1))
        attempt("get a lone surrogate key", lambda: cache.get("\ud800"))
        attempt("store a lone surrogate value", lambda: store(cache, "k", "\udcff"))
        attempt("get_many(-1)", lambda: queue.get_many(-1))
        # A str is one key, not a batch of its characters.
        cache.set_many({"k": 1, "e": 2, "y": 3})
        attempt("delete_many of a str", lambda: cache.delete_many("key"))
        attempt("get_many of a str", lambda: cache.get_many("key"))
        attempt("put_many of a str", lambda: queue.put_many("abc"))
        attempt("the batch's keys are still there", lambda: cache.delete_many(["k", "e", "y"]))
        attempt("entries_page of 1", lambda: len(cache.entries_page(None, 1).entries))
        closed = easycaching.open_cache("input")
        closed.close()
        attempt("use a closed cache", lambda: len(closed))
        attempt("get missing key", lambda: cache["missing"])
        attempt("get missing key with default", lambda: cache.get("missing", "default"))
        # The original easycaching's method names work as well as the mapping's operators.
        calls = (lambda: cache.set("m", 1), lambda: cache.contains("m"), lambda: cache.delete("m"))
        attempt("set, contains and delete as methods", lambda: [call() for call in calls])
        attempt("contains an int key", lambda: cache.contains(42))
        attempt("open ungranted cache", lambda: easycaching.open_cache("secret"))
        attempt("open missing cache", lambda: easycaching.open_cache("missing"))
        attempt("caches[missing]", lambda: easycaching.caches["missing"])
        attempt("caches[ungranted]", lambda: easycaching.caches["secret"])
        attempt("caches[readonly][k]", lambda: easycaching.caches["readonly"]["k"])
        attempt("caches listed", lambda: sorted(easycaching.caches))
        attempt("create bad name", lambda: easycaching.create_cache("no/slashes"))
        readonly = easycaching.open_cache("readonly")
        attempt("read read-only", lambda: readonly["k"])
        attempt("write read-only", lambda: store(readonly, "k", "changed"))
        attempt("delete from read-only", lambda: readonly.delete("k"))
        attempt("delete with a prefix from read-only", lambda: readonly.delete_with_prefix("k"))
        cache.set_many({"user:1:name": "Ada", "user:1:lang": "en", "user:10:name": "Alan"})
        attempt(
            "delete with a prefix",
            lambda: (cache.delete_with_prefix("user:1:"), list(cache.keys_with_prefix("user:"))),
        )
        attempt("delete with a bytes prefix", lambda: cache.delete_with_prefix(b"user"))
        attempt("the rest deleted", lambda: cache.delete_with_prefix("user:"))
        attempt("cache len", lambda: len(cache))
        attempt("queue len", lambda: len(queue))
        attempt("increment twice", lambda: (cache.increment("n"), cache.increment("n", 41)))
        attempt("increment a string", lambda: store(cache, "s", "x") or cache.increment("s"))
        attempt("the string is left as it was", lambda: cache["s"])
        attempt("increment by a float", lambda: cache.increment("n", 1.5))
        attempt("increment by 2**63", lambda: cache.increment("n", 2**63))
        attempt("increment read-only", lambda: readonly.increment("k"))
        ABSENT = easycaching.ABSENT
        swap = cache.compare_and_swap
        attempt(
            "swap in where absent, twice",
            lambda: (swap("cas", ABSENT, {"a": 1, "b": [1, 2]}), swap("cas", ABSENT, 2)),
        )
        # Python writes 1.0 and puts "b" first: still the value stored.
        attempt("swap expecting it as Python writes it", lambda: swap("cas", {"b": [1, 2], "a": 1.0}, {"a": 2}))
        attempt("swap on a mismatch", lambda: (swap("cas", {"a": 1}, 3), cache["cas"]))
        attempt("swap in JSON null", lambda: (swap("cas", {"a": 2}, None), cache["cas"], "cas" in cache))
        attempt("swap away", lambda: (swap("cas", None, ABSENT), "cas" in cache))
        attempt("swap bad JSON", lambda: cache.compare_and_swap_json("cas", "{nope", "1"))
        attempt("the refusal names expected", lambda: bad_expected_refusal(cache))
        attempt("swap NaN", lambda: swap("cas", ABSENT, float("nan")))
        attempt("the bad swaps stored nothing", lambda: "cas" in cache)
        add_one = lambda n: n + 1  # noqa: E731
        attempt("update twice", lambda: (cache.update("c", add_one, default=0), cache.update("c", add_one, 0)))
        attempt("update to ABSENT", lambda: (cache.update("c", lambda n: ABSENT), "c" in cache))
        attempt("swap read-only", lambda: readonly.compare_and_swap("k", "v", "w"))
        attempt("update read-only", lambda: readonly.update("k", lambda v: v + "w"))
        ttl = cache.ttl
        attempt("set with a ttl of an hour", lambda: (cache.set("t", 1, ttl=3600), 0 < ttl("t") <= 3600))
        five_minutes = datetime.timedelta(minutes=5)
        attempt("set with a timedelta ttl", lambda: (cache.set("t", 2, ttl=five_minutes), 0 < ttl("t") <= 300))
        attempt("increment keeps the ttl", lambda: (cache.increment("t"), ttl("t") is not None))
        attempt("set without a ttl clears it", lambda: (cache.set("t", 1), ttl("t")))
        attempt(
            "expire, then remove the ttl",
            lambda: (cache.expire("t", 60), ttl("t") is not None, cache.expire("t", None), ttl("t")),
        )
        attempt("expire an absent key", lambda: cache.expire("absent", 60))
        attempt("set with a ttl of 0", lambda: cache.set("z", 1, ttl=0))
        attempt("set with a negative ttl", lambda: cache.set("z", 1, ttl=-1))
        attempt("set with a ttl of 200 years", lambda: cache.set("z", 1, ttl=200 * 365 * 86400))
        attempt("set with a str ttl", lambda: cache.set("z", 1, ttl="1h"))
        attempt("a short ttl expires", lambda: short_ttl_expires(cache))
        attempt("the bad ttls stored nothing", lambda: ("z" in cache, cache.delete("t")))
        attempt("set with a ttl read-only", lambda: readonly.set("k", "w", ttl=60))
        attempt(
            "set_many with a ttl",
            lambda: (cache.set_many({"m1": 1, "m2": 2}, ttl=60), [0 < ttl(k) <= 60 for k in ("m1", "m2")]),
        )
        attempt("set_many with a ttl of 0", lambda: cache.set_many({"m3": 3}, ttl=0))
        attempt("the bad batch stored nothing", lambda: ("m3" in cache, cache.delete_many(["m1", "m2"])))
        attempt("leases", lambda: leases(queue))
        attempt("waits", lambda: waits(queue))
        attempt("get with a negative timeout", lambda: queue.get(timeout=-1))
        attempt("get_many with a negative timeout", lambda: queue.get_many(10, timeout=-1))
        attempt("lease with a str timeout", lambda: queue.lease(60, timeout="1m"))
        attempt("lease for 0 s", lambda: queue.lease(0))
        attempt("lease for a str", lambda: queue.lease("1m"))
        attempt("ack of text that is not a receipt", lambda: queue.ack("nope"))
        attempt("ack of a number", lambda: queue.ack(1))
        attempt("extend by 0 s", lambda: queue.extend("1.0000000000000001", 0))
