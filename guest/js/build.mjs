#!/usr/bin/env node
// Builds a JavaScript plugin into a WebAssembly component for `easycaching run`.
//
//     node build.mjs [--engine quickjs|starlingmonkey] [--wit DIR] ENTRY.js OUT.wasm
//
// ENTRY.js is an ES module exporting `run` (see sdk/easycaching.js, `command`). The engine is
// QuickJS (componentize-qjs) unless told otherwise; StarlingMonkey (componentize-js) is kept
// for measuring the two side by side (README.md, "Choosing the engine"). --wit is the
// easycaching WIT directory, by default the one of the project this folder is in.
//
// The component is built for wit/plugin.wit here: easycaching's `plugin` world plus stdout and
// stderr. Both tools take one WIT directory, so this script lays one out in a temporary
// directory: that world, with the easycaching package and its WASI packages as dependencies.

import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const WORLD = 'easycaching:js-guest/plugin';

const { values: options, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    engine: { type: 'string', default: 'quickjs' },
    wit: { type: 'string', default: join(here, '../../wit') },
  },
});
if (positionals.length !== 2 || !['quickjs', 'starlingmonkey'].includes(options.engine)) {
  console.error(
    'usage: node build.mjs [--engine quickjs|starlingmonkey] [--wit DIR] ENTRY.js OUT.wasm',
  );
  process.exit(2);
}
const [entry, output] = positionals.map((path) => resolve(path));
if (!existsSync(entry)) {
  console.error(`build.mjs: no plugin at ${entry} (ENTRY.js: an ES module exporting \`run\`)`);
  process.exit(2);
}

/** The deepest folder holding both `a` and `b` (absolute paths). */
function commonAncestor(a, b) {
  const [left, right] = [a.split(sep), b.split(sep)];
  let same = 0;
  while (same < left.length && same < right.length && left[same] === right[same]) same += 1;
  return left.slice(0, same).join(sep) || sep;
}

/** A WIT directory holding our world, with `witDir`'s package and its deps as dependencies. */
async function layOutWit(witDir) {
  const dir = await mkdtemp(join(tmpdir(), 'easycaching-js-wit-'));
  await cp(join(here, 'wit/plugin.wit'), join(dir, 'plugin.wit'));
  await mkdir(join(dir, 'deps'));
  await symlink(resolve(witDir), join(dir, 'deps/easycaching-cache'));
  for (const dep of await readdir(join(witDir, 'deps'))) {
    await symlink(resolve(witDir, 'deps', dep), join(dir, 'deps', dep));
  }
  return dir;
}

/** QuickJS through componentize-qjs: the script is evaluated and snapshotted at build time. */
async function withQuickJs(witPath) {
  const { componentize } = await import('componentize-qjs');
  const { component } = await componentize({
    witPath,
    world: WORLD,
    jsSource: await readFile(entry, 'utf8'),
    jsPath: entry,
    // Imports are resolved under this folder, so plugins here reach ../sdk, or under the
    // folder that holds both this one and the plugin's, for a plugin kept elsewhere.
    moduleRoot: commonAncestor(here, dirname(entry)),
    // Our host does not enable the component-model async ABI.
    sync: true,
  });
  return component;
}

/** StarlingMonkey (SpiderMonkey) through componentize-js. */
async function withStarlingMonkey(witPath) {
  const { componentize } = await import('@bytecodealliance/componentize-js');
  // componentize-js lets the module load files under the working directory.
  process.chdir(here);
  const { component } = await componentize({
    sourcePath: relative(here, entry),
    witPath,
    worldName: WORLD,
    disableFeatures: ['http', 'fetch-event'],
  });
  return component;
}

/**
 * Says in a few lines why the engine could not build the plugin (a syntax error, an import not
 * found: the engine's message says which), without Node's dump of an uncaught error, whose stack
 * is of this script and the engine's, not the plugin's.
 */
function engineFailed(error) {
  const message = String(error?.message ?? error).replace(/^[:\s]+/, '').trim();
  console.error(`build.mjs: cannot build ${entry}:\n  ${message.replaceAll('\n', '\n  ')}`);
  process.exitCode = 1;
}

if (!existsSync(join(options.wit, 'deps'))) {
  console.error(`build.mjs: ${resolve(options.wit)} is not the easycaching WIT directory (no deps/ in it); give it with --wit`);
  process.exit(2);
}
let witPath;
try {
  witPath = await layOutWit(options.wit);
  const build = options.engine === 'quickjs' ? withQuickJs : withStarlingMonkey;
  const component = await build(witPath).catch(engineFailed);
  if (component) {
    await mkdir(dirname(output), { recursive: true });
    await writeFile(output, component);
  }
} finally {
  if (witPath) await rm(witPath, { recursive: true, force: true });
}
