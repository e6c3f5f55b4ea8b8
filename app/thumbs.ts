// Thumbnails for the library grid: small WebP files in DUOSCALE_HOME/thumbs, named by the
// sha256 of the picture they show, so they never go stale and are shared between records of
// the same content. Made on first request (EXIF orientation applied), written atomically.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';

export const THUMB_EDGE = 384;

export class ThumbCache {
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(readonly dir: string, readonly edge = THUMB_EDGE) {}

  pathFor(contentSha256: string): string {
    return path.join(this.dir, `${contentSha256.slice(0, 2)}`, `${contentSha256}-${this.edge}.webp`);
  }

  /** The thumbnail of `source` (whose content hash is `contentSha256`), made if missing. */
  async get(source: string, contentSha256: string): Promise<string> {
    if (!/^[0-9a-f]{64}$/.test(contentSha256)) throw new Error(`thumbs: bad content hash "${contentSha256}"`);
    const out = this.pathFor(contentSha256);
    if (fs.existsSync(out)) return out;
    const pending = this.inflight.get(out);
    if (pending) return pending;
    const job = this.make(source, out).finally(() => this.inflight.delete(out));
    this.inflight.set(out, job);
    return job;
  }

  private async make(source: string, out: string): Promise<string> {
    await fs.promises.mkdir(path.dirname(out), { recursive: true });
    const tmp = `${out}.${crypto.randomBytes(4).toString('hex')}.tmp`;
    try {
      await sharp(source, { limitInputPixels: false, failOn: 'none' })
        .rotate()
        .resize(this.edge, this.edge, { fit: 'inside', withoutEnlargement: true })
        .webp({ quality: 80 })
        .toFile(tmp);
      await fs.promises.rename(tmp, out);
    } catch (err) {
      await fs.promises.rm(tmp, { force: true });
      throw new Error(`${source}: cannot make a thumbnail (${(err as Error).message})`);
    }
    return out;
  }

  /** Removes the thumbnails folder's temporary leftovers (after a crash). */
  sweep(): void {
    if (!fs.existsSync(this.dir)) return;
    for (const sub of fs.readdirSync(this.dir)) {
      const d = path.join(this.dir, sub);
      if (!fs.statSync(d).isDirectory()) continue;
      for (const f of fs.readdirSync(d)) if (f.endsWith('.tmp')) fs.rmSync(path.join(d, f), { force: true });
    }
  }
}
