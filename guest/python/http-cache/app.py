"""The web example in Python: the original easycaching's FastAPI endpoints, as a ``wasi:http``
handler that ``easycaching serve`` runs on as many workers as you like, all sharing one cache.

It answers exactly what the Rust version (guest/rust/http-cache/src/lib.rs, the contract) answers:
the same paths, status codes and bodies, byte for byte. The original
(``uvicorn basic:app --workers 5``)::

    @app.get('/cache')
    async def view_cache(key: str):
        return {key: await app.cache[key]}

    @app.post('/cache')
    async def set_cache(key: str, value: str):
        return await app.cache.set(key, {'json': value})

Here, in the cache ``web`` (grant it with ``--allow 'cache:web=rwc'``):

==================================  ============================================================
request                             answer
==================================  ============================================================
``GET /cache?key=K``                ``200 {"K": value}``, ``{"K": null}`` when nothing is stored
``POST /cache?key=K&value=V``       stores ``{"json": "V"}`` under K; ``200 null``
``DELETE /cache?key=K``             ``200 {"deleted": true}``, or ``false`` when nothing was there
``GET /cache[?cursor=C][&limit=N]`` ``200 {"entries": [{"K": value}, ...], "next": C or null}``:
                                    one page in key order, N entries (default 100, at most 1000);
                                    pass ``next`` back as ``cursor`` for the next page
==================================  ============================================================

Query values are URL-decoded (``+`` is a space). A missing ``key`` (or ``value`` on POST) answers
``422 {"detail": ...}``, another path ``404``, another method ``405``, as FastAPI does; a cache
error answers ``403`` (access denied), ``413`` (key or value too large) or ``500``, with the WIT
error case and message in ``detail``. Every body is JSON.

Build it from guest/python (``make guest-python`` does, into target/guests/python-http-cache.wasm)
and serve it::

    .venv/bin/componentize-py -d ../../wit -w easycaching:cache/http-handler \\
        componentize -p . -p http-cache app -o http-cache.wasm
    easycaching serve http-cache.wasm --db web.db --workers 5 --allow 'cache:web=rwc'
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple

import easycaching
from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports.wasi_http_types import (
    Fields,
    IncomingRequest,
    Method_Delete,
    Method_Get,
    Method_Post,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

# The cache every endpoint works on.
CACHE = "web"
# Entries in a page of the listing unless `limit` says otherwise.
DEFAULT_PAGE = 100
# The most entries in a page of the listing (the host's own page limit).
MAX_PAGE = 1000
# The most bytes one `blocking-write-and-flush` call may write.
WRITE_CHUNK = 4096

# A `limit` as Rust's `u32` parser reads it: ASCII digits, an optional leading `+`.
WHOLE_NUMBER = re.compile(r"\+?[0-9]+")
HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


class IncomingHandler(exports.IncomingHandler):
    """The ``wasi:http/incoming-handler`` export that ``easycaching serve`` calls per request."""

    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        respond(response_out, answer(request))


class Answer(NamedTuple):
    """A status code and a JSON body."""

    status: int
    body: str

    @classmethod
    def ok(cls, body: str) -> Answer:
        return cls(200, body)

    @classmethod
    def detail(cls, status: int, message: str) -> Answer:
        """An error in FastAPI's shape: ``{"detail": message}``."""
        return cls(status, to_json({"detail": message}))

    @classmethod
    def from_error(cls, error: easycaching.Error) -> Answer:
        status = {"access-denied": 403, "too-large": 413}.get(error.case, 500)
        return cls.detail(status, f"{error.case}: {error.message}")


def to_json(value: object) -> str:
    """Compact JSON with non-ASCII kept as is: the same text Rust's ``serde_json`` writes."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def answer(request: IncomingRequest) -> Answer:
    path, _, query = (request.path_with_query() or "").partition("?")
    if path != "/cache":
        return Answer.detail(404, "Not Found")
    params = parse_query(query)
    if params is None:
        return Answer.detail(400, "the query string is not valid URL-encoded UTF-8")
    method = request.method()
    key = params.get("key")
    try:
        if isinstance(method, Method_Get):
            return list_page(params) if key is None else view(key)
        if isinstance(method, Method_Post):
            value = params.get("value")
            if key is None or value is None:
                return Answer.detail(422, "POST /cache needs the query parameters key and value")
            return store(key, value)
        if isinstance(method, Method_Delete):
            if key is None:
                return Answer.detail(422, "DELETE /cache needs the query parameter key")
            return delete(key)
        return Answer.detail(405, "Method Not Allowed")
    except easycaching.Error as error:
        return Answer.from_error(error)


def view(key: str) -> Answer:
    """``GET /cache?key=K``: ``{K: value}``, with ``null`` when nothing is stored."""
    with easycaching.create_cache(CACHE) as cache:
        value = cache.get_json(key)
    # The host hands back the JSON text it checked when it was stored, so it goes into the answer
    # as it is, without being parsed again.
    return Answer.ok(f"{{{to_json(key)}:{'null' if value is None else value}}}")


def store(key: str, value: str) -> Answer:
    """``POST /cache?key=K&value=V``: stores ``{"json": V}``; answers ``null``, as the original's
    ``cache.set`` returns nothing."""
    with easycaching.create_cache(CACHE) as cache:
        cache[key] = {"json": value}
    return Answer.ok("null")


def delete(key: str) -> Answer:
    """``DELETE /cache?key=K``: ``{"deleted": whether something was there}``."""
    with easycaching.create_cache(CACHE) as cache:
        deleted = cache.delete(key)
    return Answer.ok(to_json({"deleted": deleted}))


def list_page(params: dict[str, str]) -> Answer:
    """``GET /cache[?cursor=C][&limit=N]``: one page of entries as ``{key: value}`` objects."""
    limit_text = params.get("limit")
    if limit_text is None:
        limit = DEFAULT_PAGE
    elif WHOLE_NUMBER.fullmatch(limit_text) and 1 <= int(limit_text) <= MAX_PAGE:
        limit = int(limit_text)
    else:
        return Answer.detail(422, f"limit must be a whole number from 1 to {MAX_PAGE}")
    with easycaching.create_cache(CACHE) as cache:
        page = cache.entries_page(params.get("cursor"), limit)
    entries = ",".join(f"{{{to_json(entry.key)}:{entry.value}}}" for entry in page.entries)
    return Answer.ok(f'{{"entries":[{entries}],"next":{to_json(page.next)}}}')


def parse_query(query: str) -> dict[str, str] | None:
    """The decoded query parameters; when a name is given more than once the last one counts, as
    in Starlette. ``None`` when a name or value does not decode to UTF-8."""
    params = {}
    for pair in query.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        name, value = url_decode(name), url_decode(value)
        if name is None or value is None:
            return None
        params[name] = value
    return params


def url_decode(text: str) -> str | None:
    """Decodes ``application/x-www-form-urlencoded`` text: ``+`` is a space, ``%XX`` a byte.
    ``None`` when a ``%`` is not followed by two hex digits or the bytes are not UTF-8 (where
    ``urllib.parse.unquote_plus`` would keep the text or replace the bytes)."""
    first, *rest = text.replace("+", " ").encode().split(b"%")
    decoded = bytearray(first)
    for part in rest:
        if len(part) < 2 or not HEX_DIGITS.issuperset(part[:2]):
            return None
        decoded.append(int(part[:2], 16))
        decoded += part[2:]
    try:
        return decoded.decode()
    except UnicodeDecodeError:
        return None


def respond(response_out: ResponseOutparam, answer: Answer) -> None:
    """Sends ``answer`` as a JSON response."""
    body = answer.body.encode()
    headers = Fields.from_list(
        [("content-type", b"application/json"), ("content-length", str(len(body)).encode())]
    )
    response = OutgoingResponse(headers)
    response.set_status_code(answer.status)
    outgoing = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    try:
        # The stream is a child of the body: it must be dropped before the body is finished.
        with outgoing.write() as stream:
            for start in range(0, len(body), WRITE_CHUNK):
                stream.blocking_write_and_flush(body[start : start + WRITE_CHUNK])
    except Err:
        # A failed write means the client went away; there is nobody left to tell.
        return
    OutgoingBody.finish(outgoing, None)
