// Which image files a UI may display: only those the catalog knows, looked up by kind + id.
// Shared by the web mode's GET /img/<kind>/<id> and Electron's duoscale-img:// protocol.
// A path never comes from the URL: the URL carries a kind and a numeric id, the catalog
// gives the path.

import { promises as fs } from 'node:fs';
import type { DuoscaleApi } from '../api.ts';

export type ImageKind = 'original' | 'result' | 'thumb';
export const IMAGE_KINDS: readonly ImageKind[] = ['original', 'result', 'thumb'];

/**
 * Optional service method that maps a catalog id to the file to show
 * (original: images.id; result: results.id; thumb: images.id, made on demand).
 * Resolves null when the catalog does not know the id or the file is gone.
 */
export interface ImageLookup {
  imagePath(input: { kind: ImageKind; id: number }): Promise<string | null>;
}

/** Parses the `<kind>/<id>` part of an image URL; null when it is not one. */
export function parseImageRef(kind: string, id: string): { kind: ImageKind; id: number } | null {
  if (!(IMAGE_KINDS as readonly string[]).includes(kind)) return null;
  if (!/^[1-9][0-9]{0,15}$/.test(id)) return null;
  const n = Number(id);
  if (!Number.isSafeInteger(n)) return null;
  return { kind: kind as ImageKind, id: n };
}

/**
 * The file behind a catalog image reference, or null. Uses `service.imagePath` when the
 * service has it; otherwise originals are found through `catalogImage` (results and
 * thumbnails then need `imagePath`). Only existing regular files are returned.
 */
export async function lookupImage(
  service: DuoscaleApi & Partial<ImageLookup>,
  ref: { kind: ImageKind; id: number },
): Promise<string | null> {
  let file: string | null = null;
  try {
    if (typeof service.imagePath === 'function') {
      file = await service.imagePath(ref);
    } else if (ref.kind === 'original') {
      file = (await service.catalogImage({ imageId: ref.id })).image.path;
    }
  } catch {
    return null; // unknown id: the service throws a not-found error
  }
  if (!file) return null;
  try {
    const st = await fs.stat(file);
    return st.isFile() ? file : null;
  } catch {
    return null;
  }
}
