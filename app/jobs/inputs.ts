// Turning the files and folders of a batch request into job items.
// Folders are walked (recursively when asked); each item keeps its folder relative to the
// folder it was found in, so the output mirrors the input structure. Hidden entries, our own
// staging folders and the output folder itself (when it lies inside an input folder) are skipped.
import fs from 'node:fs';
import path from 'node:path';

export const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.jpe', '.png', '.webp', '.tif', '.tiff', '.avif', '.heic', '.heif', '.gif']);

export interface PlannedItem {
  input: string;
  relativeDir: string;
}

export class InputError extends Error {
  constructor(readonly file: string, problem: string, hint: string) {
    super(`${file}: ${problem}. ${hint}`);
    this.name = 'InputError';
  }
}

export function isImageName(name: string): boolean {
  return IMAGE_EXTENSIONS.has(path.extname(name).toLowerCase());
}

/**
 * Lists job items for `inputs`. Explicitly named files are taken whatever their extension
 * (so a wrong one gets a clear per-file error later); files found in folders must have an
 * image extension. Missing inputs throw InputError (the caller decides: the CLI refuses the run).
 */
export function planInputs(inputs: string[], opts: { recursive: boolean; outputDir: string }): PlannedItem[] {
  const out: PlannedItem[] = [];
  const seen = new Set<string>();
  const outputDir = path.resolve(opts.outputDir);
  const add = (file: string, relativeDir: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    out.push({ input: file, relativeDir });
  };
  for (const raw of inputs) {
    const input = path.resolve(raw);
    let st: fs.Stats;
    try {
      st = fs.statSync(input);
    } catch {
      throw new InputError(input, 'no such file or folder', 'Check the path (quote names with spaces)');
    }
    if (st.isDirectory()) {
      const walk = (dir: string) => {
        let entries: fs.Dirent[];
        try {
          entries = fs.readdirSync(dir, { withFileTypes: true });
        } catch (err) {
          throw new InputError(dir, `cannot read the folder (${(err as NodeJS.ErrnoException).code})`, 'Check its permissions');
        }
        entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        for (const e of entries) {
          if (e.name.startsWith('.')) continue;
          const full = path.join(dir, e.name);
          if (e.isDirectory()) {
            if (!opts.recursive) continue;
            if (full === outputDir || full.startsWith(outputDir + path.sep)) continue;
            walk(full);
          } else if (e.isFile() && isImageName(e.name)) {
            add(full, path.relative(input, dir));
          }
        }
      };
      walk(input);
    } else {
      add(input, '');
    }
  }
  return out;
}
