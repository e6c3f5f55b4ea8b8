// Model registry: the shipped models (resources/models/) plus user-imported ones
// (<DUOSCALE_HOME>/models/). A model is NAME.onnx + NAME.json (+ NAME.md card).
//
// list()/info() only read manifests; load() also checks the sha256 of the .onnx (cached by
// size+mtime so it is paid once per file version). A model whose manifest or hash does not
// check out is never loaded.

import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { ModelId, ModelInfo } from '../api.ts';
import { DuoscaleError } from '../errors.ts';
import { parseManifest, type ManifestFormat1 } from './manifest.ts';

/** A model whose manifest and hash were checked, ready for inference/session.ts. */
export interface LoadedModel {
  id: ModelId;
  manifest: ManifestFormat1;
  onnxPath: string;
  manifestPath: string;
  builtin: boolean;
  sha256: string;
}

interface Entry {
  id: ModelId;
  manifest: ManifestFormat1;
  manifestPath: string;
  onnxPath: string;
  cardPath: string;
  builtin: boolean;
}

/** A manifest found on disk that could not be used, for `models list` to show. */
export interface RefusedModel { path: string; reason: string }
/** Internally the error that refused the manifest is kept too, to be rethrown as it was. */
type Refused = RefusedModel & { error?: DuoscaleError };

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

async function exists(p: string): Promise<boolean> {
  try { await fs.access(p); return true; } catch { return false; }
}

export class ModelRegistry {
  readonly builtinDir: string;
  readonly userDir: string;
  #hashCache = new Map<string, { key: string; sha: string }>();
  #refused: Refused[] = [];

  /**
   * @param builtinDir shipped models (read-only; may be missing or empty)
   * @param userDir user-imported models (created on first import)
   */
  constructor(builtinDir: string, userDir: string) {
    this.builtinDir = path.resolve(builtinDir);
    this.userDir = path.resolve(userDir);
  }

  async #scan(): Promise<Entry[]> {
    const entries: Entry[] = [];
    const refused: Refused[] = [];
    const seen = new Set<string>();
    for (const [dir, builtin] of [[this.builtinDir, true], [this.userDir, false]] as const) {
      let names: string[];
      try { names = (await fs.readdir(dir)).filter((n) => n.endsWith('.json')).sort(); } catch { continue; }
      for (const n of names) {
        const manifestPath = path.join(dir, n);
        try {
          const e = await this.#readEntry(manifestPath, builtin);
          if (seen.has(e.id)) {
            refused.push({ path: manifestPath, reason: `a model named "${e.id}" is already listed; this one is ignored` });
            continue;
          }
          seen.add(e.id);
          entries.push(e);
        } catch (err) {
          refused.push({ path: manifestPath, reason: (err as Error).message, error: err instanceof DuoscaleError ? err : undefined });
        }
      }
    }
    this.#refused = refused;
    return entries;
  }

  async #readEntry(manifestPath: string, builtin: boolean): Promise<Entry> {
    let text: string;
    try { text = await fs.readFile(manifestPath, 'utf8'); } catch (e) {
      throw new DuoscaleError('E_MODEL_MANIFEST', `cannot read the model manifest (${(e as NodeJS.ErrnoException).code})`, {
        file: manifestPath, hint: 'Check that the file exists and is readable' });
    }
    const manifest = parseManifest(text, manifestPath);
    const dir = path.dirname(manifestPath);
    const base = path.basename(manifestPath, '.json');
    return {
      id: manifest.name,
      manifest,
      manifestPath,
      onnxPath: path.join(dir, manifest.onnx),
      cardPath: path.join(dir, `${base}.md`),
      builtin,
    };
  }

  #info(e: Entry, card: string, defaultId?: ModelId): ModelInfo {
    const m = e.manifest;
    return {
      id: e.id, name: m.name, task: m.task, scale: m.scale, steps: m.steps, params: m.params,
      builtin: e.builtin, isDefault: e.id === defaultId, path: e.onnxPath, card, metrics: m.metrics,
      ...(m.experimental !== undefined ? { experimental: m.experimental } : {}),
      ...(m.restore ? { restore: true } : {}),
    };
  }

  async #card(e: Entry): Promise<string> {
    try { return await fs.readFile(e.cardPath, 'utf8'); } catch { return ''; }
  }

  async #entry(id: ModelId): Promise<Entry> {
    const all = await this.#scan();
    const e = all.find((x) => x.id === id);
    if (!e) {
      const refused = this.#refused.find((r) => path.basename(r.path, '.json') === id);
      // The error that refused it already names the file; rethrow it rather than wrap its message.
      if (refused) throw refused.error ?? new DuoscaleError('E_MODEL_MANIFEST', refused.reason, { file: refused.path });
      const names = all.map((x) => x.id).join(', ') || 'none';
      throw new DuoscaleError('E_MODEL_NOT_FOUND', `no model named "${id}"`, {
        hint: `Installed models: ${names}. Import one with \`duoscale models import FILE.onnx\`` });
    }
    return e;
  }

  /** Every usable model (manifest valid; hash not checked here). */
  async list(defaultId?: ModelId): Promise<ModelInfo[]> {
    const all = await this.#scan();
    return Promise.all(all.map(async (e) => this.#info(e, await this.#card(e), defaultId)));
  }

  /** Manifests found by the last list()/get() that were refused, with the reason. */
  refused(): RefusedModel[] {
    return this.#refused.map(({ path: p, reason }) => ({ path: p, reason }));
  }

  async get(id: ModelId, defaultId?: ModelId): Promise<ModelInfo> {
    const e = await this.#entry(id);
    return this.#info(e, await this.#card(e), defaultId);
  }

  /** The model card (markdown), '' when the model has none. */
  async card(id: ModelId): Promise<string> {
    return this.#card(await this.#entry(id));
  }

  async #checkHash(manifest: ManifestFormat1, onnxPath: string, manifestPath: string): Promise<string> {
    let st;
    try { st = await fs.stat(onnxPath); } catch {
      throw new DuoscaleError('E_MODEL_MANIFEST', `the model file "${manifest.onnx}" named by the manifest is missing`, {
        file: manifestPath, hint: 'Put the .onnx next to its .json, or re-import the model' });
    }
    const key = `${st.size}:${st.mtimeMs}`;
    const cached = this.#hashCache.get(onnxPath);
    const sha = cached && cached.key === key ? cached.sha : await sha256File(onnxPath);
    this.#hashCache.set(onnxPath, { key, sha });
    if (sha.toLowerCase() !== manifest.sha256.toLowerCase()) {
      throw new DuoscaleError('E_MODEL_HASH',
        `the model file does not match its manifest (sha256 ${sha.slice(0, 12)}..., manifest says ${manifest.sha256.slice(0, 12)}...)`, {
          file: onnxPath, hint: 'The file is damaged or was changed; re-export or re-import the model' });
    }
    return sha;
  }

  /** Manifest validated and sha256 checked. */
  async load(id: ModelId): Promise<LoadedModel> {
    const e = await this.#entry(id);
    const sha256 = await this.#checkHash(e.manifest, e.onnxPath, e.manifestPath);
    return { id: e.id, manifest: e.manifest, onnxPath: e.onnxPath, manifestPath: e.manifestPath, builtin: e.builtin, sha256 };
  }

  /**
   * Checks NAME.onnx + NAME.json (+ NAME.md) and copies them into userDir.
   * @param onnxPath the .onnx; its manifest must sit next to it with the same base name.
   * @throws {DuoscaleError} E_MODEL_MANIFEST / E_MODEL_HASH / E_MODEL_EXISTS
   */
  async import(onnxPath: string): Promise<ModelInfo> {
    const src = path.resolve(onnxPath);
    if (!src.endsWith('.onnx')) {
      throw new DuoscaleError('E_MODEL_MANIFEST', 'not an .onnx file', { file: src, hint: 'Pick the model\'s .onnx file; its .json manifest must be next to it' });
    }
    const base = src.slice(0, -'.onnx'.length);
    const manifestPath = `${base}.json`;
    if (!(await exists(src))) throw new DuoscaleError('E_NOT_FOUND', 'the file does not exist', { file: src, hint: 'Check the path' });
    if (!(await exists(manifestPath))) {
      throw new DuoscaleError('E_MODEL_MANIFEST', `no manifest next to the model (expected ${path.basename(manifestPath)})`, {
        file: src, hint: 'Export the model with the trainer, which writes the .json manifest beside the .onnx' });
    }
    const e = await this.#readEntry(manifestPath, false);
    if (path.resolve(e.onnxPath) !== src) {
      throw new DuoscaleError('E_MODEL_MANIFEST', `the manifest names "${e.manifest.onnx}", not this file`, {
        file: manifestPath, hint: 'Rename the files so NAME.onnx and NAME.json match the manifest\'s "onnx" field' });
    }
    await this.#checkHash(e.manifest, src, manifestPath);
    const existing = (await this.#scan()).find((x) => x.id === e.id);
    if (existing) {
      throw new DuoscaleError('E_MODEL_EXISTS', `a model named "${e.id}" is already installed`, {
        file: src, hint: existing.builtin ? 'Give the new model another name' : `Remove it first (\`duoscale models remove ${e.id}\`) or rename the new one` });
    }
    await fs.mkdir(this.userDir, { recursive: true });
    const dstBase = path.join(this.userDir, e.id);
    const pairs: [string, string][] = [[src, `${dstBase}.onnx`]];
    if (await exists(`${base}.md`)) pairs.push([`${base}.md`, `${dstBase}.md`]);
    // The manifest is copied last: the registry only sees a model once its .json exists.
    const manifest = { ...e.manifest, onnx: `${e.id}.onnx` };
    for (const [from, to] of pairs) await copyAtomic(from, to);
    await writeAtomic(`${dstBase}.json`, JSON.stringify(manifest, null, 2) + '\n');
    return this.get(e.id);
  }

  /** Deletes a user-imported model's files. Shipped models cannot be removed. */
  async remove(id: ModelId): Promise<void> {
    const e = await this.#entry(id);
    if (e.builtin) {
      throw new DuoscaleError('E_MODEL_BUILTIN', `"${id}" ships with the app and cannot be removed`, {
        file: e.manifestPath, hint: 'Choose another default model instead' });
    }
    // Manifest first, so a half-removed model is never listed.
    await fs.rm(e.manifestPath, { force: true });
    await fs.rm(e.onnxPath, { force: true });
    await fs.rm(e.cardPath, { force: true });
    this.#hashCache.delete(e.onnxPath);
  }
}

async function copyAtomic(from: string, to: string): Promise<void> {
  const tmp = path.join(path.dirname(to), `.${path.basename(to)}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await fs.copyFile(from, tmp);
    await fs.rename(tmp, to);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}

async function writeAtomic(to: string, text: string): Promise<void> {
  const tmp = path.join(path.dirname(to), `.${path.basename(to)}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await fs.writeFile(tmp, text);
    await fs.rename(tmp, to);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}
