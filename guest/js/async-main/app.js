/**
 * Test program: `command` refuses a `main` that is async or returns a promise, since nothing
 * after an `await` runs in a plugin (QuickJS runs no promise job once `run` returns).
 * tests/languages.rs runs it with `cache:async=rwc` and checks that it exits with status 1,
 * saying why, and that what came after the `await` never ran.
 */

import { command, createCache } from '../sdk/easycaching.js';

function refused(label, action) {
  try {
    action();
    console.log(`${label}: accepted`);
  } catch (error) {
    console.log(`${label}: ${error.name}`);
  }
}

export const run = command(() => {
  refused('command of an async function', () => command(async () => {}));
  refused('command of an async generator function', () => command(async function* () {}));
  refused('command of a generator function', () => command(function* () {}));
  refused('command of a string', () => command('main'));
  refused('command of a function', () => command(() => {}));
  const cache = createCache('async');
  cache.set('before', true);
  // What a `main` written with async/await does: returns at its first await.
  return Promise.resolve().then(() => cache.set('after', true));
});
