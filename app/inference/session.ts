// onnxruntime-node sessions, cached per (model file hash, provider, threads).

import * as ort from 'onnxruntime-node';
import type { Provider } from '../api.ts';
import { DuoscaleError } from '../errors.ts';
import type { LoadedModel } from '../models/registry.ts';
import { ORT_NAME, providerOrder, type ConcreteProvider } from './providers.ts';

export interface ModelSession {
  readonly model: LoadedModel;
  readonly session: ort.InferenceSession;
  /** The provider actually in use (never 'auto'). */
  readonly provider: ConcreteProvider;
  readonly threads: number;
  readonly lrName: string;
  readonly noiseName: string | null;
  /** The restore input's name (manifest "restore"), or null for a model without one. */
  readonly restoreName: string | null;
  readonly outputName: string;
  readonly noiseChannels: number;
}

const cache = new Map<string, Promise<ModelSession>>();
const unavailable = new Set<ConcreteProvider>();

function sessionOptions(p: ConcreteProvider, threads: number): ort.InferenceSession.SessionOptions {
  // No 'cpu' after an accelerator: onnxruntime-node would silently drop a missing accelerator
  // and run on CPU. Nodes an accelerator cannot run still fall back to CPU inside onnxruntime.
  const eps: string[] = [ORT_NAME[p]];
  return {
    executionProviders: eps as ort.InferenceSession.ExecutionProviderConfig[],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: threads > 0 ? threads : 0,
    interOpNumThreads: 1,
    // Tiles vary in size at image edges; the arena would keep the largest forever.
    enableCpuMemArena: false,
  };
}

async function create(model: LoadedModel, provider: Provider, threads: number): Promise<ModelSession> {
  const order = providerOrder(provider).filter((p) => provider !== 'auto' || !unavailable.has(p));
  const failures: string[] = [];
  for (const p of order) {
    try {
      const session = await ort.InferenceSession.create(model.onnxPath, sessionOptions(p, threads));
      const m = model.manifest;
      const lrName = session.inputNames.includes('lr') ? 'lr' : session.inputNames[0];
      const restoreName = m.restore?.input ?? null;
      if (restoreName && !session.inputNames.includes(restoreName)) {
        throw new DuoscaleError('E_MODEL_MANIFEST', `the manifest names a restore input "${restoreName}" that the ONNX graph does not have`, {
          file: model.manifestPath, hint: 'Re-export the model, or remove "restore" from its manifest' });
      }
      const others = session.inputNames.filter((n) => n !== lrName && n !== restoreName);
      const noiseName = m.noise_shape.channels > 0 ? (others.includes('noise') ? 'noise' : others[0] ?? null) : null;
      if (m.noise_shape.channels > 0 && !noiseName) {
        throw new DuoscaleError('E_MODEL_MANIFEST', 'the manifest describes a noise input but the ONNX graph has only one input', {
          file: model.manifestPath, hint: 'Re-export the model' });
      }
      const outputName = session.outputNames.includes(m.output.name) ? m.output.name : session.outputNames[0];
      return { model, session, provider: p, threads, lrName, noiseName, restoreName, outputName, noiseChannels: m.noise_shape.channels };
    } catch (e) {
      if (e instanceof DuoscaleError) throw e;
      unavailable.add(p);
      failures.push(`${p}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new DuoscaleError('E_INFERENCE', `could not start the model (${failures.join('; ')})`, {
    file: model.onnxPath,
    hint: provider === 'auto' || provider === 'cpu' ? 'Check that the model file is a valid ONNX export' : `Provider "${provider}" is not available here; use --provider auto or cpu`,
  });
}

/** A cached session for this model, provider and thread count (0 = onnxruntime's default). */
export function getSession(model: LoadedModel, provider: Provider = 'auto', threads = 0): Promise<ModelSession> {
  const key = `${model.sha256}|${model.onnxPath}|${provider}|${threads}`;
  let s = cache.get(key);
  if (!s) {
    s = create(model, provider, threads);
    cache.set(key, s);
    s.catch(() => cache.delete(key));
  }
  return s;
}

/** Releases every cached session (tests, model removal, shutdown). */
export async function releaseSessions(): Promise<void> {
  const all = [...cache.values()];
  cache.clear();
  for (const p of all) {
    try { await (await p).session.release(); } catch { /* already failed */ }
  }
}
