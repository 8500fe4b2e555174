"""Test program: every kind of failure reaches Python as the exception for its WIT case, and a
failed write stores nothing. tests/languages.rs runs it with the grants
``cache:input=rwc cache:readonly=r cache:missing=r queue:input-queue=rwc`` and compares its
output line by line.
"""

import easycaching
from wit_world import exports


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
        attempt("cache len", lambda: len(cache))
        attempt("queue len", lambda: len(queue))
        attempt("increment twice", lambda: (cache.increment("n"), cache.increment("n", 41)))
        attempt("increment a string", lambda: store(cache, "s", "x") or cache.increment("s"))
        attempt("the string is left as it was", lambda: cache["s"])
        attempt("increment by a float", lambda: cache.increment("n", 1.5))
        attempt("increment by 2**63", lambda: cache.increment("n", 2**63))
        attempt("increment read-only", lambda: readonly.increment("k"))
