/**
 * Test program: every kind of failure reaches JavaScript as a thrown Error carrying its WIT
 * case, and a failed write stores nothing; `compareAndSwap` and `update` keep `undefined` (no
 * value) apart from `null` and compare as JSON values. tests/languages.rs runs it with
 * `cache:input=rwc cache:readonly=r cache:missing=r queue:input-queue=rwc` and compares its
 * output line by line.
 */

import { CacheError, command, createCache, createQueue, openCache } from '../sdk/easycaching.js';

/** Runs `action` and prints what came of it: `ok` and the result, or the error thrown. */
function attempt(label, action) {
  try {
    console.log(`${label}: ok ${JSON.stringify(action())}`);
  } catch (error) {
    if (!(error instanceof Error) || !error.message) throw error;
    const witCase = error instanceof CacheError ? ` ${error.case}` : '';
    console.log(`${label}: ${error.name}${witCase}`);
  }
}

export const run = command(() => {
  const cache = createCache('input');
  const queue = createQueue('input-queue');
  const hugeKey = 'k'.repeat(5000);
  attempt('set huge key', () => cache.set(hugeKey, 1) && 'stored');
  attempt('setMany with one huge key', () => cache.setMany({ good: 1, [hugeKey]: 2 }));
  attempt('set undefined', () => cache.set('nothing', undefined) && 'stored');
  attempt('setJson of text that is not JSON', () => cache.setJson('k', '{not json') && 'stored');
  attempt('setJson and getJson', () =>
    cache.setJson('j', '{"a": [1]}').getJson('j') + cache.delete('j'));
  attempt('set a lone surrogate value', () => cache.set('k', '\ud800') && 'stored');
  attempt('put a BigInt', () => queue.put(1n));
  attempt('set a number key', () => cache.set(42, 1) && 'stored');
  attempt('get an undefined key', () => cache.get(undefined));
  attempt('set a lone surrogate key', () => cache.set('\ud800', 1) && 'stored');
  attempt('getMany(-1)', () => queue.getMany(-1));
  // A string is one key, not a batch of its characters.
  cache.setMany({ k: 1, e: 2, y: 3 });
  attempt('deleteMany of a string', () => cache.deleteMany('key'));
  attempt('getMany of a string', () => cache.getMany('key'));
  attempt('putMany of a string', () => queue.putMany('abc'));
  attempt('setMany of null', () => cache.setMany(null));
  attempt('deleteMany of a number', () => cache.deleteMany(5));
  attempt('getMany of a plain object', () => cache.getMany({ k: 1 }));
  attempt('setMany of a number', () => cache.setMany(5));
  attempt("the batch's keys are still there", () => cache.deleteMany(['k', 'e', 'y']));
  attempt('entriesPage of 1', () => cache.entriesPage(undefined, 1).entries.length);
  attempt('the last page has no next', () => cache.entriesPage(undefined, 1).next === undefined);
  cache.setMany({ 'user:1:name': 'Ada', 'user:1:lang': 'en', 'user:2:name': 'Grace', 'user:10:name': 'Alan' });
  attempt('entries with a prefix', () => [...cache.entriesWithPrefix('user:1:')]);
  attempt('keys with a prefix', () => [...cache.keysWithPrefix('user:')]);
  attempt('a page with a prefix', () => {
    const page = cache.entriesPage(undefined, 1, { prefix: 'user:1' });
    return [page.entries.map((entry) => entry.key), page.next];
  });
  attempt('keys with a number for a prefix', () => [...cache.keysWithPrefix(5)]);
  attempt('delete with a prefix', () => [cache.deleteWithPrefix('user:1:'), [...cache.keysWithPrefix('user:')]]);
  attempt('delete with a number for a prefix', () => cache.deleteWithPrefix(1));
  attempt('the prefixed entries removed', () => cache.deleteWithPrefix('user:'));
  const closed = openCache('input');
  closed.close();
  attempt('use a closed cache', () => closed.size);
  attempt('open and close 10,001 times', () => {
    for (let i = 0; i <= 10_000; i += 1) openCache('input').close();
    return 'no handle left open';
  });
  attempt('get missing key', () => cache.get('missing') ?? 'undefined');
  attempt('open ungranted cache', () => openCache('secret').name);
  attempt('open missing cache', () => openCache('missing').name);
  attempt('create bad name', () => createCache('no/slashes').name);
  const readonly = openCache('readonly');
  attempt('read read-only', () => readonly.get('k'));
  attempt('write read-only', () => readonly.set('k', 'changed') && 'stored');
  attempt('delete from read-only', () => readonly.delete('k'));
  attempt('delete with a prefix from read-only', () => readonly.deleteWithPrefix('k'));
  attempt('cache size', () => cache.size);
  attempt('queue size', () => queue.size);
  attempt('increment twice', () => [cache.increment('n'), cache.increment('n', 41)]);
  attempt('increment a string', () => cache.set('s', 'x').increment('s'));
  attempt('the string is left as it was', () => cache.get('s'));
  attempt('increment by 1.5', () => cache.increment('n', 1.5));
  attempt('increment by 2n ** 63n', () => cache.increment('n', 2n ** 63n));
  attempt('increment read-only', () => readonly.increment('k'));
  const swap = (expected, value) => cache.compareAndSwap('cas', expected, value);
  attempt('swap in where absent, twice', () => [swap(undefined, { a: 1, b: [1, 2] }), swap(undefined, 2)]);
  // Members in another order, written with spaces and 1.0: still the value stored.
  attempt('swap expecting it written otherwise', () =>
    cache.compareAndSwapJson('cas', '{ "b": [1, 2], "a": 1.0 }', '{"a":2}'));
  attempt('swap on a mismatch', () => [swap({ a: 1 }, 3), cache.get('cas')]);
  attempt('swap in JSON null', () => [swap({ a: 2 }, null), cache.get('cas'), cache.has('cas')]);
  attempt('swap away', () => [swap(null, undefined), cache.has('cas')]);
  attempt('swap bad JSON', () => cache.compareAndSwapJson('cas', '{nope', '1'));
  attempt('the refusal names expected', () => {
    try {
      cache.compareAndSwapJson('cas', '{nope', '1');
    } catch (error) {
      return error.message.includes('`expected`');
    }
  });
  attempt('swap a BigInt', () => swap(undefined, 1n));
  attempt('the bad swaps stored nothing', () => cache.has('cas'));
  const addOne = (n) => (n ?? 0) + 1;
  attempt('update twice', () => [cache.update('c', addOne), cache.update('c', addOne)]);
  attempt('update to undefined', () => [cache.update('c', () => undefined) ?? 'absent', cache.has('c')]);
  attempt('swap read-only', () => readonly.compareAndSwap('k', 'v', 'w'));
  attempt('update read-only', () => readonly.update('k', (v) => `${v}w`));
  const hour = 60 * 60 * 1000;
  attempt('set with a ttl of an hour', () => {
    cache.set('t', 1, { ttl: hour });
    return cache.ttl('t') > 0 && cache.ttl('t') <= hour;
  });
  attempt('increment keeps the ttl', () => [cache.increment('t'), cache.ttl('t') !== undefined]);
  attempt('set without a ttl clears it', () => cache.set('t', 1).ttl('t') ?? 'none');
  attempt('expire, then remove the ttl', () => [
    cache.expire('t', 60000),
    cache.ttl('t') !== undefined,
    cache.expire('t'),
    cache.ttl('t') ?? 'none',
  ]);
  attempt('expire an absent key', () => cache.expire('absent', 60000));
  attempt('set with a ttl of 0', () => cache.set('z', 1, { ttl: 0 }) && 'stored');
  attempt('set with a negative ttl', () => cache.set('z', 1, { ttl: -1 }) && 'stored');
  attempt('set with a ttl of 200 years', () => cache.set('z', 1, { ttl: 200 * 365 * 24 * hour }) && 'stored');
  attempt('set with a string ttl', () => cache.set('z', 1, { ttl: '1h' }) && 'stored');
  attempt('a short ttl expires', () => {
    cache.set('short', 1, { ttl: 50 });
    const deadline = Date.now() + 10000;
    while (cache.has('short')) {
      if (Date.now() > deadline) throw new Error('a 50 ms TTL did not expire within 10 s');
    }
    return cache.get('short') === undefined && cache.ttl('short') === undefined;
  });
  attempt('the bad ttls stored nothing', () => [cache.has('z'), cache.delete('t')]);
  attempt('set with a ttl read-only', () => readonly.set('k', 'w', { ttl: 60000 }) && 'stored');
  attempt('setMany with a ttl', () => {
    cache.setMany({ m1: 1, m2: 2 }, { ttl: hour });
    return ['m1', 'm2'].map((key) => cache.ttl(key) > 0 && cache.ttl(key) <= hour);
  });
  attempt('setMany with a ttl of 0', () => cache.setMany({ m3: 3 }, { ttl: 0 }) ?? 'stored');
  attempt('the bad batch stored nothing', () => [cache.has('m3'), cache.deleteMany(['m1', 'm2'])]);
  attempt('leases', () => {
    queue.putMany(['a', 'b']);
    const first = queue.lease(60000);
    const seen = [first.value, first.deliveries, queue.peek(), queue.size, queue.release(first)];
    const again = queue.lease(60000);
    seen.push(again.value, again.deliveries, queue.extend(again, 120000), queue.ack(again), queue.ack(again.receipt));
    seen.push(queue.extend(again, 120000));
    return [...seen, queue.get(), queue.lease(60000) ?? 'none'];
  });
  attempt('waits', () => {
    // An item waiting at once, then none in time (the test puts nothing meanwhile).
    queue.putMany(['c', 'd', 'e', 'f']);
    const got = queue.get({ timeout: 50 });
    const leased = queue.lease(60000, { timeout: 1000 });
    queue.ack(leased);
    const batch = queue.getMany(10, { timeout: 50 });
    queue.putMany(['g', 'h']);
    const leasedBatch = queue.leaseMany(60000, 10).filter((job) => queue.ack(job)).map((job) => job.value);
    const none = [queue.get({ timeout: 10 }), queue.get({ timeout: 0 }), queue.lease(60000, { timeout: 10 })];
    const empty = [queue.getMany(10, { timeout: 10 }), queue.leaseMany(60000, 10, { timeout: 10 })];
    return [got, leased.value, batch, leasedBatch, ...none.map((nothing) => nothing ?? 'none'), ...empty];
  });
  attempt('get with a negative timeout', () => queue.get({ timeout: -1 }));
  attempt('getMany with a negative timeout', () => queue.getMany(10, { timeout: -1 }));
  attempt('lease with a string timeout', () => queue.lease(60000, { timeout: '1m' }));
  attempt('lease for 0 ms', () => queue.lease(0));
  attempt('lease for a string', () => queue.lease('1m'));
  attempt('ack of text that is not a receipt', () => queue.ack('nope'));
  attempt('ack of a number', () => queue.ack(1));
  attempt('extend by 0 ms', () => queue.extend('1.0000000000000001', 0));
});
