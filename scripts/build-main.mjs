#!/usr/bin/env node
// Bundles the Electron main process and preload with esbuild:
//   main/main.ts    -> dist/main/main.js     (ESM, Node inside Electron)
//   main/preload.ts -> dist/main/preload.cjs (CommonJS: sandboxed preloads cannot load ESM,
//                                             and may require nothing but 'electron')
// Native packages stay external: they are loaded from node_modules (app.asar.unpacked when
// packaged, see electron-builder.yml).
//
// Usage: node scripts/build-main.mjs [--out DIR]   (default dist/main)

import { build } from 'esbuild';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outFlag = process.argv.indexOf('--out');
const outdir = path.resolve(root, outFlag !== -1 ? process.argv[outFlag + 1] : 'dist/main');

export const NATIVE_EXTERNALS = ['electron', 'sharp', 'better-sqlite3', 'onnxruntime-node'];

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
  absWorkingDir: root,
};

const t0 = Date.now();
const [mainResult, preloadResult] = await Promise.all([
  build({
    ...common,
    entryPoints: { main: 'main/main.ts' },
    outdir,
    format: 'esm',
    outExtension: { '.js': '.js' },
    external: NATIVE_EXTERNALS,
    // Bundled CommonJS code may call require(); give the ESM bundle a real one.
    banner: { js: "import { createRequire as __duoscaleCreateRequire } from 'node:module'; const require = __duoscaleCreateRequire(import.meta.url);" },
    metafile: true,
  }),
  build({
    ...common,
    entryPoints: { preload: 'main/preload.ts' },
    outdir,
    format: 'cjs',
    outExtension: { '.js': '.cjs' },
    external: ['electron'],
    metafile: true,
  }),
]);

// The sandboxed preload can only require 'electron'; fail the build if anything else slipped in.
const preloadCode = await readFile(path.join(outdir, 'preload.cjs'), 'utf8');
const requires = [...preloadCode.matchAll(/\brequire\(["']([^"']+)["']\)/g)].map((m) => m[1]);
const bad = requires.filter((r) => r !== 'electron');
if (bad.length > 0) {
  console.error(`build-main: preload.cjs requires ${bad.join(', ')}; a sandboxed preload may only require 'electron'.`);
  process.exit(1);
}
// Nothing under app/ may pull in electron; only main/ files import it.
for (const [file, info] of Object.entries(mainResult.metafile.inputs)) {
  if (file.startsWith('app/') && info.imports.some((i) => i.path === 'electron')) {
    console.error(`build-main: ${file} imports electron; app/ must stay Electron-free.`);
    process.exit(1);
  }
}

const size = (r) => Object.values(r.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
console.log(
  `build-main: dist/main/main.js (${(size(mainResult) / 1024).toFixed(0)} KiB) and preload.cjs ` +
    `(${(size(preloadResult) / 1024).toFixed(0)} KiB) in ${Date.now() - t0} ms; external: ${NATIVE_EXTERNALS.join(', ')}`,
);
