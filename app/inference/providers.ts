// Execution provider choice.
//
// 'auto' tries, in order, the accelerators that can exist on this platform (CUDA on
// Linux/Windows, DirectML on Windows, CoreML on macOS) and falls back to CPU. A provider that
// fails to create a session is remembered as unavailable for the rest of the process.

import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Provider } from '../api.ts';

export type ConcreteProvider = Exclude<Provider, 'auto'>;

/** onnxruntime-node's names for our providers. */
export const ORT_NAME: Record<ConcreteProvider, string> = { cpu: 'cpu', cuda: 'cuda', dml: 'dml', coreml: 'coreml' };

/** Accelerators worth trying on this platform, best first (CPU always last). */
export function candidates(platform: NodeJS.Platform = process.platform): ConcreteProvider[] {
  if (platform === 'win32') return ['cuda', 'dml', 'cpu'];
  if (platform === 'darwin') return ['coreml', 'cpu'];
  return ['cuda', 'cpu'];
}

/** Folder holding onnxruntime-node's native binaries for this platform, or null. */
function ortBinDir(): string | null {
  try {
    const pkg = createRequire(import.meta.url).resolve('onnxruntime-node/package.json');
    const base = path.join(path.dirname(pkg), 'bin');
    for (const napi of readdirSync(base)) {
      const d = path.join(base, napi, process.platform, process.arch);
      if (existsSync(d)) return d;
    }
  } catch { /* not found */ }
  return null;
}

/**
 * Providers that can really be tried here: listed by onnxruntime-node and either bundled in
 * its binary or with their provider library installed next to it (the CUDA add-on is a
 * separate download that ONNXRUNTIME_NODE_INSTALL=skip leaves out).
 */
export function listed(): string[] {
  let backends: { name: string; bundled: boolean }[];
  try {
    backends = ort.listSupportedBackends();
  } catch {
    return ['cpu'];
  }
  const bin = ortBinDir();
  const files = bin ? readdirSync(bin) : [];
  return backends
    .filter((b) => b.bundled || files.some((f) => f.includes(`providers_${b.name}`)))
    .map((b) => b.name);
}

/** Order of providers to try for a requested one: a forced provider is tried alone. */
export function providerOrder(requested: Provider, platform: NodeJS.Platform = process.platform): ConcreteProvider[] {
  if (requested !== 'auto') return [requested];
  const have = new Set(listed());
  return candidates(platform).filter((p) => p === 'cpu' || have.has(ORT_NAME[p]));
}
