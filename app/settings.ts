// User settings: one JSON file in the user data folder (DUOSCALE_HOME/settings.json).
// Missing or unreadable fields fall back to the defaults below; a patch is validated with
// the same rules as the renderer API before it is written (atomically: temp file + rename).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Settings } from './api.ts';
import { ApiArgumentError, validateSettingsPatch } from './api-validate.ts';

export function defaultSettings(): Settings {
  return {
    provider: 'auto',
    threads: 0, // 0 = onnxruntime's choice (all physical cores)
    tile: 0, // 0 = from the model manifest and available memory
    format: 'same',
    quality: 92,
    naming: '{name}_x{scale}_{model}',
    keepMetadata: true,
    repair: false, // clean photos are the common case; repairing one costs fidelity
    outputDir: path.join(os.homedir(), 'Pictures', 'Duoscale'),
    defaultModel: '', // '' = the first shipped model whose task is "general"
  };
}

export class SettingsStore {
  private current: Settings;
  /** Problems found in the file on load (shown once by the CLI / logged by the app). */
  readonly warnings: string[] = [];

  constructor(readonly file: string) {
    this.current = this.load();
  }

  private load(): Settings {
    const base = defaultSettings();
    let raw: string;
    try {
      raw = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.warnings.push(`${this.file}: cannot read (${(err as Error).message}); using defaults`);
      return base;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      this.warnings.push(`${this.file}: not valid JSON; using default settings (fix or delete the file)`);
      return base;
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return base;
    // Take each field on its own, so one bad value does not throw away the rest.
    for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
      try {
        Object.assign(base, validateSettingsPatch({ [key]: value }, 'settings.json'));
      } catch (err) {
        this.warnings.push(`${this.file}: ${(err as Error).message}; using the default`);
      }
    }
    return base;
  }

  private session: Partial<Settings> = {};

  get(): Settings {
    return { ...this.current, ...this.session };
  }

  /** Overrides for this process only, never saved (CLI flags such as --provider and --threads). */
  override(patch: unknown): Settings {
    this.session = { ...this.session, ...validateSettingsPatch(patch, 'options') };
    return this.get();
  }

  /** Validates, merges and saves. Throws ApiArgumentError for a bad patch (nothing is written). */
  set(patch: unknown): Settings {
    const clean = validateSettingsPatch(patch);
    const next = { ...this.current, ...clean };
    if (next.outputDir === '') next.outputDir = defaultSettings().outputDir;
    writeJsonAtomic(this.file, next);
    this.current = next;
    return this.get();
  }
}

export function writeJsonAtomic(file: string, value: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n');
  fs.renameSync(tmp, file);
}

export { ApiArgumentError };
