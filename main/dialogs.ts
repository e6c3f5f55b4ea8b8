// Native open/save dialogs: the pickFiles API call, "Open…" and "Export catalog…" in the menu.

import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { ResultRecord } from '../app/api.ts';
import { handle } from './ipc.ts';
import type { MainContext, ShellDeps } from './ipc.ts';

/** Extensions offered in the open dialog (the core decides what it can really decode). */
export const IMAGE_EXTENSIONS = ['jpg', 'jpeg', 'png', 'webp', 'tif', 'tiff', 'avif', 'heic', 'heif', 'bmp', 'gif'];

/** Options of the native open dialog for a pickFiles request. */
export function openDialogOptions(input: { folders: boolean; multiple: boolean }): Parameters<ShellDeps['showOpenDialog']>[0] {
  const properties: Parameters<ShellDeps['showOpenDialog']>[0]['properties'] = [input.folders ? 'openDirectory' : 'openFile'];
  if (input.multiple) properties.push('multiSelections');
  if (input.folders) properties.push('createDirectory');
  return {
    title: input.folders ? (input.multiple ? 'Choose folders' : 'Choose a folder') : input.multiple ? 'Choose photos' : 'Choose a photo',
    properties,
    ...(input.folders ? {} : { filters: [{ name: 'Images', extensions: IMAGE_EXTENSIONS }, { name: 'All files', extensions: ['*'] }] }),
  };
}

/** Shows the open dialog; null when the user cancels. */
export async function pickPaths(shell: ShellDeps, input: { folders: boolean; multiple: boolean }): Promise<string[] | null> {
  const r = await shell.showOpenDialog(openDialogOptions(input));
  return r.canceled || r.filePaths.length === 0 ? null : r.filePaths;
}

export function setupDialogs(ctx: MainContext): void {
  handle(ctx, 'pickFiles', (a) => pickPaths(ctx.shell, a));
}

/**
 * Menu "Export catalog…": asks where to save and writes every result record as JSON
 * (temp file + rename, so a crash never leaves half a file). Returns the path or null.
 */
export async function exportCatalog(ctx: MainContext): Promise<string | null> {
  const r = await ctx.shell.showSaveDialog({
    title: 'Export catalog',
    defaultPath: 'duoscale-catalog.json',
    filters: [{ name: 'JSON', extensions: ['json'] }],
  });
  if (r.canceled || !r.filePath) return null;
  const results: ResultRecord[] = [];
  const pageSize = 1000; // api-validate's catalogList limit
  for (let offset = 0; ; offset += pageSize) {
    const page = await ctx.service.catalogList({ limit: pageSize, offset });
    results.push(...page.results);
    if (page.results.length < pageSize || results.length >= page.total) break;
  }
  const file = r.filePath;
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  await fs.writeFile(tmp, JSON.stringify({ exportedAt: new Date().toISOString(), results }, null, 2));
  await fs.rename(tmp, file);
  return file;
}
