/**
 * The example plugin in JavaScript: the original easycaching's documented usage, step by step,
 * on the caches and queues its host grants it. It prints exactly what the Rust walkthrough
 * prints.
 *
 * Build and run it from guest/js (see README.md there):
 *
 *     node build.mjs walkthrough/app.js walkthrough.wasm
 *     easycaching run walkthrough.wasm --db easycaching.db \
 *         --allow 'cache:test=rwc' --allow 'cache:walkthrough=rwc' --allow 'queue:jobs=rwc'
 */

import { command, createCache, createQueue, openCache } from '../sdk/easycaching.js';

/** A value as the Rust walkthrough prints it: compact JSON, `null` for nothing. */
const show = (value) => JSON.stringify(value ?? null);

function step(call, result) {
  console.log(`${call.padEnd(40)} -> ${result}`);
}

function walkThrough() {
  console.log('== the easycaching walkthrough ==');

  // cache = await EasyCacheManager.create(...); test = await cache.create_cache('test')
  const test = createCache('test');
  step('create_cache("test")', `cache ${show(test.name)}`);

  test.set('foo', 'bar');
  step('test.set("foo", "bar")', 'ok');
  step('test.get("foo")', show(test.get('foo')));
  step('test.contains("foo")', test.has('foo'));
  step('test.delete("foo")', test.delete('foo'));
  step('test.get("foo")', show(test.get('foo')));
  step('test.clear()', `removed ${test.clear()}`);

  test.set('a', 1).set('b', [1, 2]).set('c', { nested: true });
  step('test.set a, b, c', `${test.size} entries`);

  // async for item in test: print(item)
  console.log('async for item in test:');
  for (const [key, value] of test) {
    console.log(`    ${show({ [key]: value })}`);
  }

  // manager.cache['test']['b']
  const again = openCache('test');
  step('manager.cache["test"]["b"]', show(again.get('b')));

  const jobs = createQueue('jobs');
  jobs.put('first');
  jobs.put({ second: 2 });
  step('jobs.put("first"), jobs.put({...})', `${jobs.size} waiting`);
  step('jobs.get()', show(jobs.get()));
  step('jobs.get()', show(jobs.get()));
  step('jobs.get()', show(jobs.get()));

  // Something that outlives the run: how many times this database has seen the walkthrough.
  const stats = createCache('walkthrough');
  const runs = stats.increment('runs'); // one write no other comes between: runs at once all count
  console.log(
    `this database has now seen ${runs} walkthrough run(s); run it again and the count goes on`,
  );
}

/** The `wasi:cli/run` export that `easycaching run` calls. */
export const run = command(walkThrough);
