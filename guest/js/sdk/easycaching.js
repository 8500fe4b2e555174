/**
 * Write easycaching plugins in JavaScript.
 *
 * A thin layer over the `easycaching:cache` WIT imports that feels like JavaScript: a cache is
 * a Map of JSON values (`get`, `set`, `has`, `delete`, `clear`, `size`, `for...of` paging under
 * the hood), a queue has `put` and `get`, and every error the host returns is thrown as a
 * {@link CacheError} carrying the WIT case.
 *
 * ```js
 * import { command, createCache, createQueue } from '../sdk/easycaching.js';
 *
 * export const run = command(() => {
 *   const test = createCache('test');
 *   test.set('foo', { bar: [1, 2] });
 *   for (const [key, value] of test) console.log(key, value);
 *   createQueue('jobs').put({ resize: 'cat.png' });
 * });
 * ```
 *
 * It runs on both engines build.mjs offers (QuickJS and StarlingMonkey): their bindings differ
 * in small ways (`null` or `undefined` for a missing value, `number` or `BigInt` for a u64,
 * a `console` or none), which this module smooths over.
 *
 * @module easycaching
 */

import * as manager from 'easycaching:cache/manager@0.1.0';
import { getArguments } from 'wasi:cli/environment@0.2.12';
import { getStderr } from 'wasi:cli/stderr@0.2.12';
import { getStdout } from 'wasi:cli/stdout@0.2.12';

/** Entries or keys fetched per host call while iterating. */
const PAGE = 256;

/**
 * An error the host returned. `case` is the WIT case (`access-denied`, `invalid-json`, ...),
 * `message` the host's text for people. An operation that threw changed nothing.
 */
export class CacheError extends Error {
  /**
   * @param {string} witCase the WIT case, as written in the WIT
   * @param {string} message the host's message
   */
  constructor(witCase, message) {
    super(message);
    this.name = 'CacheError';
    /** The WIT case, as written in the WIT: `no-such-cache`, `access-denied`, ... */
    this.case = witCase;
  }
}

/**
 * Calls a WIT import, throwing the host's error as a {@link CacheError}. Both engines throw an
 * `Error` whose `payload` is the WIT variant, `{tag, val}`.
 */
function call(operation) {
  try {
    return operation();
  } catch (error) {
    const variant = error?.payload;
    throw typeof variant?.tag === 'string' ? new CacheError(variant.tag, variant.val) : error;
  }
}

/** JSON text for a value, refusing what JSON cannot hold (`undefined`, functions). */
function toJson(value) {
  const text = JSON.stringify(value);
  if (text === undefined) {
    throw new TypeError(`${typeof value} is not a JSON value and cannot be stored`);
  }
  return text;
}

/**
 * `value` when it is text the host can take: a TypeError here for anything else (a number, a
 * missing argument, a lone surrogate), which the bindings would turn into a crash of the plugin.
 */
function text(value, what) {
  if (typeof value !== 'string') {
    throw new TypeError(`${what} must be a string, not ${value === null ? 'null' : typeof value}`);
  }
  if (!wellFormed(value)) throw new TypeError(`${what} holds a lone surrogate: it is not Unicode text`);
  return value;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?:^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const wellFormed =
  typeof String.prototype.isWellFormed === 'function'
    ? (value) => value.isWellFormed()
    : (value) => !LONE_SURROGATE.test(value);

/** An optional cursor: `undefined` (from the start) or a key. */
function cursorOf(cursor) {
  return cursor == null ? undefined : text(cursor, 'the cursor');
}

/**
 * `values` when it is a collection of several: a TypeError for a string, which `Array.from`
 * would split into its characters (`deleteMany('key')` would delete `k`, `e` and `y`), and for
 * anything not iterable (a number, a plain object), which `Array.from` would take as no values
 * at all (`deleteMany(5)` deleted nothing and said 0). `objects`: a plain object is taken too
 * (`setMany`'s `{ key: value }`).
 */
function batch(values, what, objects = false) {
  const kind = values === null ? 'null' : typeof values;
  const iterable = values != null && typeof values !== 'string' && Symbol.iterator in Object(values);
  if (!iterable && !(objects && kind === 'object')) {
    throw new TypeError(`${what} must be an iterable collection, not ${kind}`);
  }
  return values;
}

/** A count the host takes as a u32: a RangeError here for a negative or fractional one. */
function count(value, what) {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(
      `${what} must be a whole number from 0 to 4294967295, not ${String(value)}`,
    );
  }
  return value;
}

/** A leased item of the host's as the SDK hands it out: `{ value, receipt, deliveries }`. */
function leasedItem(leased) {
  return { value: JSON.parse(leased.value), receipt: leased.receipt, deliveries: Number(leased.deliveries) };
}

/**
 * A whole number the host takes as an s64: a safe integer (a `BigInt` within that range is
 * taken too), as a `number`; a RangeError here otherwise. The engines differ: QuickJS takes an
 * s64 as a `number` (and crashes the plugin on a `BigInt`), StarlingMonkey as a `BigInt`; see
 * {@link withS64}.
 */
function safeInteger(value, what) {
  const number = typeof value === 'bigint' ? Number(value) : value;
  if (!Number.isSafeInteger(number) || (typeof value === 'bigint' && BigInt(number) !== value)) {
    throw new RangeError(
      `${what} must be a whole number from ${Number.MIN_SAFE_INTEGER} to ${Number.MAX_SAFE_INTEGER}, not ${String(value)}`,
    );
  }
  return number;
}

/** Whether this engine's bindings take an s64 as a `BigInt` (StarlingMonkey), once known. */
let s64IsBigInt = false;

/**
 * Calls `operation` with the s64 `number` as this engine's bindings take it: a `number` first,
 * then, should the bindings refuse it as not a `BigInt` (before any call reached the host), as
 * a `BigInt` from then on.
 */
function withS64(numbers, operation) {
  const all = Array.isArray(numbers) ? numbers : [numbers];
  if (!s64IsBigInt) {
    try {
      return operation(...all);
    } catch (error) {
      if (!(error instanceof TypeError) || !/BigInt/i.test(String(error.message))) throw error;
      s64IsBigInt = true;
    }
  }
  return operation(...all.map(BigInt));
}

/** An s64 from the host as a `number` when it is exactly one, a `BigInt` when it is beyond. */
function fromS64(value) {
  if (typeof value === 'number') return value;
  const number = Number(value);
  return Number.isSafeInteger(number) ? number : value;
}

/**
 * A TTL (or a lease or a timeout, as `what` says, `least` the smallest) in whole milliseconds, rounded up (so that none above zero is zero), as the host
 * takes it (a u64): a TypeError for what is not a number; a {@link CacheError}
 * `invalid-argument`, as the host answers for 0 and TTLs over 100 years, for a negative one or
 * NaN, which a u64 cannot carry. One past `Number.MAX_SAFE_INTEGER` goes as that, for the host
 * to refuse as too long.
 */
function ttlMs(ttl, what = 'TTL', least = '1 ms') {
  if (typeof ttl !== 'number') {
    throw new TypeError(`the ${what} must be a number of milliseconds, not ${ttl === null ? 'null' : typeof ttl}`);
  }
  if (Number.isNaN(ttl) || ttl < 0) {
    throw new CacheError('invalid-argument', `a ${what} of ${ttl} ms: a ${what} is at least ${least}`);
  }
  return Math.min(Math.ceil(ttl), Number.MAX_SAFE_INTEGER);
}

/** The receipt's text, from what {@link Queue#lease} returned or the text itself. */
function receiptOf(receipt) {
  return text(typeof receipt === 'object' && receipt !== null ? receipt.receipt : receipt, 'the receipt');
}

/** A value from optional JSON text: `undefined` when there is none. */
function fromJson(text) {
  return text == null ? undefined : JSON.parse(text);
}

/**
 * A named cache: a persistent Map from string keys to JSON values, shared with every plugin
 * and process using the same database. Get one from {@link createCache} or {@link openCache}.
 */
export class Cache {
  #handle;

  /** @param handle the WIT `cache` resource */
  constructor(handle) {
    this.#handle = handle;
  }

  /** The handle, or a TypeError once {@link Cache#close} gave it back. */
  #live() {
    if (this.#handle === undefined) {
      throw new TypeError('this cache was closed; open it again to use it');
    }
    return this.#handle;
  }

  /**
   * Gives the handle back to the host; the cache and its entries stay. The host holds a plugin
   * to a number of open handles (10,000 by default), so a plugin that opens many over its run
   * closes those it is done with. Using it afterwards throws a `TypeError`; closing it again
   * does nothing.
   * Also `Cache[Symbol.dispose]`, for `using`.
   */
  close() {
    const handle = this.#handle;
    this.#handle = undefined;
    handle?.[DISPOSE]?.();
  }

  /** The cache's name. */
  get name() {
    return this.#live().name();
  }

  /** The value under `key`, or `undefined` when there is none. */
  get(key) {
    text(key, 'the key');
    return fromJson(call(() => this.#live().get(key)));
  }

  /**
   * Stores `value` (as JSON) under `key`; returns the cache, as `Map.set` does.
   *
   * With `{ ttl }` (milliseconds) the value expires that long from now, for every reader in
   * every plugin and process; without it, it never expires, whatever TTL the value it replaces
   * had. `increment`, `compareAndSwap` and `update` keep a TTL. A {@link CacheError}
   * `invalid-argument` for a TTL of zero or less, or over 100 years:
   *
   * ```js
   * sessions.set('ada', { user: 1 }, { ttl: 30 * 60 * 1000 });
   * ```
   */
  set(key, value, { ttl } = {}) {
    text(key, 'the key');
    const json = toJson(value);
    if (ttl === undefined) {
      call(() => this.#live().set(key, json));
    } else {
      const ms = ttlMs(ttl);
      withS64(ms, (wit) => call(() => this.#live().setWithTtl(key, json, wit)));
    }
    return this;
  }

  /**
   * How many milliseconds the value under `key` has left to live, or `undefined` when it has
   * no TTL or there is no value (`has` tells the two apart).
   */
  ttl(key) {
    text(key, 'the key');
    const left = call(() => this.#live().ttl(key));
    return left == null ? undefined : Number(left);
  }

  /**
   * Sets the value under `key` to expire `ttl` milliseconds from now, or never with
   * `undefined`, leaving the value as it is; `true` when there was a value to change. Errors
   * as for `set` with a TTL.
   */
  expire(key, ttl) {
    text(key, 'the key');
    if (ttl === undefined) return call(() => this.#live().expire(key, undefined));
    return withS64(ttlMs(ttl), (wit) => call(() => this.#live().expire(key, wit)));
  }

  /** The JSON text stored under `key`, exactly as written and not parsed; `undefined` when none. */
  getJson(key) {
    text(key, 'the key');
    return call(() => this.#live().get(key)) ?? undefined;
  }

  /**
   * Stores JSON text under `key` as it is, without parsing it here: for passing JSON on. The
   * host checks it and throws `invalid-json` for text that is not JSON. Returns the cache.
   */
  setJson(key, json) {
    text(key, 'the key');
    text(json, 'the JSON text');
    call(() => this.#live().set(key, json));
    return this;
  }

  /**
   * Adds `delta` (default 1) to the integer stored under `key` and returns the sum, in one
   * write no other comes between: plugins counting on one key lose no count, where
   * `cache.set(key, (cache.get(key) ?? 0) + 1)` would. An absent key counts as 0; a negative
   * `delta` subtracts; it is a safe integer (a RangeError otherwise). The sum is a `number`
   * (a `BigInt` on StarlingMonkey beyond `Number.MAX_SAFE_INTEGER`).
   * A {@link CacheError} `invalid-json` when the value stored is not an integer (it is left
   * as it was).
   */
  increment(key, delta = 1) {
    text(key, 'the key');
    const by = safeInteger(delta, 'the amount to add');
    return fromS64(withS64(by, (amount) => call(() => this.#live().increment(key, amount))));
  }

  /**
   * Stores `value` under `key` only if `key` holds `expected` now, and returns whether it did,
   * in one write that no other, from any plugin or process, comes between. `undefined` stands
   * for no value, as `get` answers it: as `expected`, "only if the key is absent"; as `value`,
   * "delete the key". `null` is JSON `null`, a value like any other. A mismatch returns `false`
   * and changes nothing.
   *
   * The host compares `expected` as a JSON value, so `{ a: 1 }` matches a stored `{"a":1.0}`
   * whatever its member order or spacing. Throws as `set` does (a TypeError for what JSON
   * cannot hold, a {@link CacheError} `too-large`, `quota-exceeded`, `access-denied`), and then
   * nothing is stored. {@link Cache#update} does the read, change and retry for you.
   *
   * ```js
   * if (locks.compareAndSwap('report', undefined, 'worker-1')) {
   *   // ... the lock is ours; release it only if it still is:
   *   locks.compareAndSwap('report', 'worker-1', undefined);
   * }
   * ```
   */
  compareAndSwap(key, expected, value) {
    text(key, 'the key');
    const before = expected === undefined ? undefined : toJson(expected);
    const after = value === undefined ? undefined : toJson(value);
    return call(() => this.#live().compareAndSwap(key, before, after));
  }

  /**
   * {@link Cache#compareAndSwap} with JSON text (or `undefined`) on both sides, passed on as it
   * is; the host throws `invalid-json`, naming the argument, for text that is not JSON.
   */
  compareAndSwapJson(key, expectedJson, json) {
    text(key, 'the key');
    if (expectedJson !== undefined) text(expectedJson, 'the expected JSON text');
    if (json !== undefined) text(json, 'the JSON text');
    return call(() => this.#live().compareAndSwap(key, expectedJson, json));
  }

  /**
   * Changes the value under `key` to `change(value)` and returns what was stored, losing no
   * update another plugin or process makes meanwhile: reads the value (`undefined` when the
   * key is absent), calls `change` with it, and stores its result with
   * {@link Cache#compareAndSwap}, expecting what was read; if another write came in between,
   * reads and calls `change` again. A result of `undefined` deletes the key.
   *
   * ```js
   * const hits = cache.update('hits', (n) => (n ?? 0) + 1);
   * ```
   *
   * The retries are not bounded: each means another writer's change went in, so the writers
   * together always progress, but under heavy contention one caller may go round many times
   * (the plugin's time limit still applies). `change` may run more than once: it should only
   * compute the new value.
   */
  update(key, change) {
    text(key, 'the key');
    if (typeof change !== 'function') throw new TypeError('change must be a function');
    for (;;) {
      // The text read is what the swap expects: nothing is lost by writing it out again.
      const read = call(() => this.#live().get(key)) ?? undefined;
      const next = change(fromJson(read));
      const json = next === undefined ? undefined : toJson(next);
      if (call(() => this.#live().compareAndSwap(key, read, json))) return next;
    }
  }

  /** Whether a value is stored under `key`. */
  has(key) {
    text(key, 'the key');
    return call(() => this.#live().contains(key));
  }

  /** Removes `key`; `true` when a value was there. */
  delete(key) {
    text(key, 'the key');
    return call(() => this.#live().delete(key));
  }

  /** Removes every entry in one call; returns how many there were. */
  clear() {
    return Number(call(() => this.#live().clear()));
  }

  /**
   * Removes every entry whose key begins with `prefix` (compared byte by byte in UTF-8, as keys
   * are ordered) in one durable write, however many there are; returns how many there were.
   * With keys such as `user:1:name`, `deleteWithPrefix('user:1:')` forgets user 1.
   */
  deleteWithPrefix(prefix) {
    text(prefix, 'the prefix');
    return Number(call(() => this.#live().deleteWithPrefix(prefix)));
  }

  /** How many entries the cache holds (asked of the host each time). */
  get size() {
    return Number(call(() => this.#live().len()));
  }

  /** Every `[key, value]` in key order, fetched a page at a time. */
  *entries() {
    yield* this.entriesWithPrefix('');
  }

  /**
   * Every `[key, value]` whose key begins with `prefix` (compared byte by byte in UTF-8, as keys
   * are ordered), in key order, fetched a page at a time: with keys such as `user:1:name`,
   * `entriesWithPrefix('user:1:')` lists user 1's. Only those entries are read, however many
   * others the cache holds.
   */
  *entriesWithPrefix(prefix) {
    text(prefix, 'the prefix');
    let cursor;
    do {
      const page = call(() => this.#live().entriesWithPrefix(prefix, cursor, PAGE));
      for (const { key, value } of page.entries) yield [key, JSON.parse(value)];
      cursor = page.next;
    } while (cursor != null);
  }

  /**
   * One page of entries in key order: `page.entries` holds up to `limit` `{ key, value }` (the
   * host takes 0 as 1 and more than 1000 as 1000), the value as JSON text (not parsed), starting
   * after `cursor` (from the start when `undefined`); `page.next` is the cursor for the next
   * page, `undefined` after the last. With `{ prefix }`, only entries whose keys begin with it.
   * For handing pages out one at a time, as a web listing does; iterating the cache pages
   * through all of it.
   */
  entriesPage(cursor, limit = PAGE, { prefix = '' } = {}) {
    const after = cursorOf(cursor);
    count(limit, 'the limit');
    text(prefix, 'the prefix');
    const page = call(() => this.#live().entriesWithPrefix(prefix, after, limit));
    // QuickJS's bindings give `null` for a missing option, StarlingMonkey's `undefined`.
    return { entries: page.entries, next: page.next ?? undefined };
  }

  /** Every key in key order, fetched a page at a time. */
  *keys() {
    yield* this.keysWithPrefix('');
  }

  /** Every key that begins with `prefix`, in key order, fetched a page at a time. */
  *keysWithPrefix(prefix) {
    text(prefix, 'the prefix');
    let cursor;
    do {
      const page = call(() => this.#live().keysWithPrefix(prefix, cursor, PAGE));
      yield* page.keys;
      cursor = page.next;
    } while (cursor != null);
  }

  /** Every value in key order, fetched a page at a time. */
  *values() {
    for (const [, value] of this.entries()) yield value;
  }

  /** `for (const [key, value] of cache)`: the same as {@link Cache#entries}. */
  [Symbol.iterator]() {
    return this.entries();
  }

  /** Calls `callback(value, key, cache)` for every entry, as `Map.forEach` does. */
  forEach(callback, thisArg) {
    for (const [key, value] of this.entries()) callback.call(thisArg, value, key, this);
  }

  /** The values under each of `keys`, in order (`undefined` where there is none), in one call. */
  getMany(keys) {
    const batchOfKeys = Array.from(batch(keys, 'the keys'), (key) => text(key, 'a key'));
    const texts = call(() => this.#live().getMany(batchOfKeys));
    return texts.map(fromJson);
  }

  /**
   * Stores every entry in one durable write, all or none; with `{ ttl }` (milliseconds), each
   * to expire that long from now, as {@link Cache#set} stores one.
   * @param entries a Map, an iterable of `[key, value]`, or a plain object
   */
  setMany(entries, { ttl } = {}) {
    batch(entries, 'the entries', true);
    const ms = ttl === undefined ? undefined : ttlMs(ttl);
    const pairs = Symbol.iterator in Object(entries) ? entries : Object.entries(entries);
    const items = Array.from(pairs, ([key, value]) => ({ key: text(key, 'a key'), value: toJson(value) }));
    if (ms === undefined) {
      call(() => this.#live().setMany(items));
    } else {
      withS64(ms, (wit) => call(() => this.#live().setManyWithTtl(items, wit)));
    }
  }

  /** Removes each of `keys` in one durable write; returns how many were there. */
  deleteMany(keys) {
    const batchOfKeys = Array.from(batch(keys, 'the keys'), (key) => text(key, 'a key'));
    return Number(call(() => this.#live().deleteMany(batchOfKeys)));
  }
}

/**
 * A named first-in, first-out queue of JSON values, shared with every plugin and process using
 * the same database; each item is handed out at most once: `get` removes it durably before it
 * returns, so a plugin stopped before it has handled an item has lost it. Get one from
 * {@link createQueue} or {@link openQueue}.
 */
export class Queue {
  #handle;

  /** @param handle the WIT `queue` resource */
  constructor(handle) {
    this.#handle = handle;
  }

  /** The handle, or a TypeError once {@link Queue#close} gave it back. */
  #live() {
    if (this.#handle === undefined) {
      throw new TypeError('this queue was closed; open it again to use it');
    }
    return this.#handle;
  }

  /**
   * Gives the handle back to the host; the queue and its items stay. The host holds a plugin
   * to a number of open handles (10,000 by default), so a plugin that opens many over its run
   * closes those it is done with. Using it afterwards throws a `TypeError`; closing it again
   * does nothing.
   * Also `Queue[Symbol.dispose]`, for `using`.
   */
  close() {
    const handle = this.#handle;
    this.#handle = undefined;
    handle?.[DISPOSE]?.();
  }

  /** The queue's name. */
  get name() {
    return this.#live().name();
  }

  /** Appends `value` at the back. */
  put(value) {
    const json = toJson(value);
    call(() => this.#live().put(json));
  }

  /**
   * Removes and returns the oldest item; `undefined` when the queue is empty. With
   * `{ timeout }` (milliseconds; `Infinity` for ever), waits up to that long for an item when
   * the queue is empty, and returns `undefined` only when none came in time; a put by another
   * plugin or process ends the wait within milliseconds.
   *
   * @example
   * for (let mail; (mail = outbox.get({ timeout: 60_000 })) !== undefined; ) {
   *   send(mail); // and stops after a quiet minute
   * }
   */
  get({ timeout } = {}) {
    if (timeout === undefined) return fromJson(call(() => this.#live().get()));
    const wait = ttlMs(timeout, 'timeout', '0 ms');
    return fromJson(withS64(wait, (wit) => call(() => this.#live().getWait(wit))));
  }

  /** The oldest item waiting (the one `get` would take), left in place; `undefined` when none waits. */
  peek() {
    return fromJson(call(() => this.#live().peek()));
  }

  /** How many items the queue holds, those under a lease not yet acknowledged included. */
  get size() {
    return Number(call(() => this.#live().len()));
  }

  /**
   * Hands out the oldest item waiting under a lease of `ms` milliseconds, as
   * `{ value, receipt, deliveries }`: the item stays in the queue until {@link Queue#ack}
   * removes it, and is handed out again if it is not acknowledged before the lease ends,
   * whatever becomes of this plugin meanwhile (`deliveries` counts the times, this one
   * included). `undefined` when no item waits; with `{ timeout }`, waits for one up to that
   * long first, as {@link Queue#get} does.
   *
   * @example
   * for (let job; (job = jobs.lease(60_000)); ) {
   *   resize(job.value); // a throw here loses nothing: the job comes back in a minute
   *   jobs.ack(job);
   * }
   */
  lease(ms, { timeout } = {}) {
    const lease = ttlMs(ms, 'lease');
    const leased =
      timeout === undefined
        ? withS64(lease, (wit) => call(() => this.#live().lease(wit)))
        : withS64([lease, ttlMs(timeout, 'timeout', '0 ms')], (witLease, witTimeout) =>
            call(() => this.#live().leaseWait(witLease, witTimeout)),
          );
    if (leased == null) return undefined;
    return leasedItem(leased);
  }

  /**
   * Hands out up to `max` of the oldest items waiting, each under a lease of `ms`
   * milliseconds as {@link Queue#lease} hands out one, oldest first, each with a receipt of
   * its own; an empty array when none waits. With `{ timeout }`, waits up to that long for at
   * least one first, as {@link Queue#getMany} does.
   *
   * @example
   * for (const job of jobs.leaseMany(60_000, 10, { timeout: 60_000 })) {
   *   resize(job.value);
   *   jobs.ack(job);
   * }
   */
  leaseMany(ms, max, { timeout } = {}) {
    const lease = ttlMs(ms, 'lease');
    count(max, 'max');
    const leased =
      timeout === undefined
        ? withS64(lease, (wit) => call(() => this.#live().leaseMany(wit, max)))
        : withS64([lease, ttlMs(timeout, 'timeout', '0 ms')], (witLease, witTimeout) =>
            call(() => this.#live().leaseManyWait(witLease, max, witTimeout)),
          );
    return leased.map(leasedItem);
  }

  /**
   * Removes the item leased under `receipt` (what {@link Queue#lease} returned, or its
   * `receipt`): handled. `false` when it is no longer under that lease (released, handed out
   * again after the lease ended, or cleared).
   */
  ack(receipt) {
    const text = receiptOf(receipt);
    return call(() => this.#live().ack(text));
  }

  /** Hands the item leased under `receipt` back at once, in its place; `false` as for {@link Queue#ack}. */
  release(receipt) {
    const text = receiptOf(receipt);
    return call(() => this.#live().release(text));
  }

  /**
   * Makes the lease under `receipt` end `ms` milliseconds from now instead, for work that takes
   * longer than first thought; the receipt stays the same. `false` as for {@link Queue#ack}.
   */
  extend(receipt, ms) {
    const text = receiptOf(receipt);
    const lease = ttlMs(ms, 'lease');
    return withS64(lease, (wit) => call(() => this.#live().extend(text, wit)));
  }

  /** Removes every item; returns how many there were. */
  clear() {
    return Number(call(() => this.#live().clear()));
  }

  /** Appends every value, in order, in one durable write. */
  putMany(values) {
    const texts = Array.from(batch(values, 'the values'), toJson);
    call(() => this.#live().putMany(texts));
  }

  /**
   * Removes and returns up to `max` of the oldest items, oldest first. With `{ timeout }`
   * (milliseconds; `Infinity` for ever), waits up to that long for at least one when the
   * queue is empty, as `get` does, and returns an empty array only when none came in time; it
   * takes what waits when the first item comes, and waits for no more.
   *
   * @example
   * for (let batch; (batch = pages.getMany(100, { timeout: 60_000 })).length > 0; ) {
   *   index(batch); // and stops after a quiet minute
   * }
   */
  getMany(max, { timeout } = {}) {
    count(max, 'max');
    const texts =
      timeout === undefined
        ? call(() => this.#live().getMany(max))
        : withS64(ttlMs(timeout, 'timeout', '0 ms'), (wit) => call(() => this.#live().getManyWait(max, wit)));
    return texts.map((json) => JSON.parse(json));
  }
}

// `using cache = openCache(...)` closes it at the end of the block, where the engine has `using`.
const DISPOSE = typeof Symbol.dispose === 'symbol' ? Symbol.dispose : Symbol.for('dispose');
for (const Handle of [Cache, Queue]) {
  Object.defineProperty(Handle.prototype, DISPOSE, {
    value() {
      this.close();
    },
  });
}

/** Opens the cache called `name`, creating it when it does not exist (needs the create grant). */
export function createCache(name) {
  return new Cache(call(() => manager.createCache(text(name, 'the name'))));
}

/** Opens the existing cache called `name`; throws `no-such-cache` when there is none. */
export function openCache(name) {
  return new Cache(call(() => manager.openCache(text(name, 'the name'))));
}

/** The names of the caches this plugin may open, in name order. */
export function listCaches() {
  return call(() => manager.listCaches());
}

/** Deletes the cache called `name` with its entries; `true` when it existed. */
export function deleteCache(name) {
  return call(() => manager.deleteCache(text(name, 'the name')));
}

/** Opens the queue called `name`, creating it when it does not exist. */
export function createQueue(name) {
  return new Queue(call(() => manager.createQueue(text(name, 'the name'))));
}

/** Opens the existing queue called `name`; throws `no-such-queue` when there is none. */
export function openQueue(name) {
  return new Queue(call(() => manager.openQueue(text(name, 'the name'))));
}

/** The names of the queues this plugin may open, in name order. */
export function listQueues() {
  return call(() => manager.listQueues());
}

/** Deletes the queue called `name` with its items; `true` when it existed. */
export function deleteQueue(name) {
  return call(() => manager.deleteQueue(text(name, 'the name')));
}

/** The constructors of `async` and generator functions, which have no global names. */
const AsyncFunction = (async () => {}).constructor;
const GeneratorFunction = function* () {}.constructor;
const AsyncGeneratorFunction = async function* () {}.constructor;

/** Why `main` may not be async: said when it is refused. */
const NO_ASYNC =
  'a plugin runs to the end of `run` and no further: what comes after an `await` would never ' +
  'run (QuickJS runs no promise job once `run` returns), and the SDK\'s calls return at once, ' +
  'so write `main` without async or await, and iterate a cache with for...of';

/**
 * The `wasi:cli/run` export of a plugin whose work is `main`: `export const run = command(main)`.
 * When `main` throws, the error goes to stderr and the plugin exits with status 1. `main` must
 * be a plain synchronous function: an `async` or generator function throws a `TypeError` here (which fails the build, where
 * the module is evaluated), and a `main` that returns a promise ends the plugin with status 1.
 */
export function command(main) {
  if (typeof main !== 'function') {
    throw new TypeError(`command(main): main must be a function, not ${typeof main}`);
  }
  if (main instanceof AsyncFunction || main instanceof AsyncGeneratorFunction) {
    throw new TypeError(`command(main): main is an async function, but ${NO_ASYNC}`);
  }
  if (main instanceof GeneratorFunction) {
    throw new TypeError(
      'command(main): main is a generator function, whose body runs only as its generator is ' +
        'iterated, which nothing does: write `main` as a plain function',
    );
  }
  return {
    run() {
      try {
        const result = main();
        if (typeof result?.then === 'function') {
          throw new TypeError(`command(main): main returned a promise, but ${NO_ASYNC}`);
        }
      } catch (error) {
        console.error(
          error instanceof CacheError ? `error (${error.case}): ${error.message}` : describe(error),
        );
        // The export's `err`. Both engines turn a thrown non-Error into it; QuickJS would
        // treat a thrown Error as a crash.
        throw undefined;
      }
    },
  };
}

/** The plugin's arguments, after its name: `easycaching run PLUGIN.wasm -- ARGS...`. */
export function args() {
  return getArguments().slice(1);
}

/** How `console` shows a value: strings as they are, errors with their stack, the rest as JSON. */
function describe(value) {
  if (typeof value === 'string') return value;
  // Both engines' stacks list the frames only, without the message.
  if (value instanceof Error) return `${value}\n${value.stack ?? ''}`.trimEnd();
  return JSON.stringify(value) ?? String(value);
}

/** UTF-8 bytes of `text` (QuickJS has no TextEncoder). Lone surrogates become U+FFFD. */
function utf8(text) {
  const bytes = [];
  for (const char of text) {
    let code = char.codePointAt(0);
    if (code >= 0xd800 && code <= 0xdfff) code = 0xfffd;
    if (code < 0x80) bytes.push(code);
    else if (code < 0x800) bytes.push(0xc0 | (code >> 6), 0x80 | (code & 63));
    else if (code < 0x10000) {
      bytes.push(0xe0 | (code >> 12), 0x80 | ((code >> 6) & 63), 0x80 | (code & 63));
    } else {
      bytes.push(
        0xf0 | (code >> 18),
        0x80 | ((code >> 12) & 63),
        0x80 | ((code >> 6) & 63),
        0x80 | (code & 63),
      );
    }
  }
  return new Uint8Array(bytes);
}

/**
 * A console.log-like writer to a WASI output stream. The stream is opened at the first write,
 * when the plugin runs: a handle taken while the engine's snapshot is built would be stale.
 */
function writer(open) {
  let stream;
  return (...args) => {
    stream ??= open();
    const bytes = utf8(`${args.map(describe).join(' ')}\n`);
    // blocking-write-and-flush takes at most 4096 bytes a call.
    for (let at = 0; at < bytes.length; at += 4096) {
      stream.blockingWriteAndFlush(bytes.subarray(at, at + 4096));
    }
  };
}

// QuickJS has no console; StarlingMonkey's is kept.
if (globalThis.console === undefined) {
  const log = writer(getStdout);
  const error = writer(getStderr);
  globalThis.console = { log, info: log, debug: log, error, warn: error };
}
