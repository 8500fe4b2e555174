/**
 * Measuring plugin: the cost of one cache read from JavaScript, through the SDK and through the
 * raw binding, in rounds so that a cost growing with the number of calls shows. Prints
 * microseconds per operation for each round. Needs `cache:bench=rwc`. Its argument is the
 * number of calls per round (2000); with 0 it returns at once, for timing start-up alone.
 *
 *     node build.mjs bench/app.js bench.wasm                           # QuickJS
 *     node build.mjs --engine starlingmonkey bench/app.js bench-sm.wasm
 *     easycaching run bench.wasm --db bench.db --allow 'cache:bench=rwc' -- 2000
 */

import * as manager from 'easycaching:cache/manager@0.1.0';
import { args, command, createCache } from '../sdk/easycaching.js';

const ROUNDS = 5;

/** Runs `operation` `calls` times a round and prints µs per call for each round. */
function measure(label, calls, operation) {
  const perCall = [];
  for (let round = 0; round < ROUNDS; round++) {
    const start = performance.now();
    for (let i = 0; i < calls; i++) operation();
    perCall.push((((performance.now() - start) * 1000) / calls).toFixed(2));
  }
  console.log(`${label.padEnd(24)} µs/op, ${ROUNDS} rounds of ${calls}: ${perCall.join(' ')}`);
}

export const run = command(() => {
  const calls = Number(args()[0] ?? 2000);
  if (calls === 0) return;
  const cache = createCache('bench');
  cache.set('hit', { user: 'ada', visits: 3 });
  const raw = manager.createCache('bench');
  measure('get hit (SDK)', calls, () => cache.get('hit'));
  measure('get hit (raw binding)', calls, () => raw.get('hit'));
  measure('get miss (SDK)', calls, () => cache.get('miss'));
  measure('JSON.parse, no call', calls, () => JSON.parse('{"user":"ada","visits":3}'));
});
