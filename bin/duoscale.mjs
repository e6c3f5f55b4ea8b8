#!/usr/bin/env node
// Entry point of the `duoscale` command (package.json "bin"). The program is TypeScript under
// app/; tsx is registered here so it runs without a build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import(new URL('../app/cli/main.ts', import.meta.url).href);
const code = await main(process.argv.slice(2));
process.exitCode = code;
// Leave once output is flushed even if a native library keeps a handle open.
setTimeout(() => process.exit(code), 1000).unref();
