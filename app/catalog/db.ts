// The catalog: one SQLite file (better-sqlite3, WAL) holding the history the UI shows and the
// state a crashed batch resumes from. Synchronous on purpose (better-sqlite3's model); every
// write that must be all-or-nothing runs in a transaction.
//
// Output commit protocol (what makes a SIGKILL at any instant leave no partial outputs):
//   1. a `running` result row names its staging folder  <target>/.duoscale-<id>.tmp/  BEFORE
//      anything is written there;
//   2. the engine writes into the staging folder;
//   3. the staged file is hashed and the row becomes `committing` with final path + sha256;
//   4. the staged file is renamed onto the final path (atomic on one file system);
//   5. the row becomes `done` (older rows that pointed at the same path are dropped).
// `reconcile()` (run at start) finishes or rolls back rows left by dead processes.
import Database from 'better-sqlite3';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type {
  CatalogQuery, EnhanceOptions, ImageRecord, JobItemSummary, JobState, ResultRecord, TrainingRun,
} from '../api.ts';
import { migrate } from './migrations/index.ts';

/** Identifies this process in rows it owns, so another process can tell whether it still lives. */
export const OWNER = `${os.hostname()}:${process.pid}:${crypto.randomBytes(4).toString('hex')}`;

export function ownerAlive(owner: string | null): boolean {
  if (!owner) return false;
  if (owner === OWNER) return true;
  const [host, pidText] = owner.split(':');
  const pid = Number(pidText);
  if (host !== os.hostname() || !Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return false; // same pid, other nonce: an earlier process that died
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export const now = (): string => new Date().toISOString();

export function sha256File(file: string): string {
  const hash = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    let n: number;
    while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) hash.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

/** Stable JSON (sorted keys) for hashing parameters. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export const hashText = (s: string): string => crypto.createHash('sha256').update(s).digest('hex');

export interface ImageInput {
  path: string;
  sha256: string;
  bytes: number;
  width: number | null;
  height: number | null;
  format: string;
  metadata: ImageRecord['metadata'];
  mtimeMs: number | null;
}

export interface NewResult {
  imageId: number;
  jobItemId: number | null;
  model: string;
  modelSha256: string;
  params: EnhanceOptions & { seed: number };
  paramsHash: string;
  seed: number;
  targetDir: string;
}

export interface JobRow {
  id: string;
  state: JobState;
  request: string;
  request_hash: string;
  output_dir: string;
  owner: string | null;
  error: string | null;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
}

export interface JobItemRow {
  id: number;
  job_id: string;
  idx: number;
  input_path: string;
  relative_dir: string;
  state: JobItemSummary['state'];
  error: string | null;
  pixels: number | null;
  reused_results: string;
}

interface ResultRow {
  id: number;
  image_id: number;
  job_item_id: number | null;
  model: string;
  model_sha256: string;
  params: string;
  params_hash: string;
  seed: number;
  target_dir: string;
  staging_dir: string | null;
  staged_path: string | null;
  output_path: string | null;
  output_sha256: string | null;
  output_bytes: number | null;
  status: 'running' | 'committing' | 'done' | 'failed';
  error: string | null;
  width: number | null;
  height: number | null;
  ms: number | null;
  owner: string | null;
  created_at: string;
  finished_at: string | null;
  image_path?: string;
}

interface ImageRow {
  id: number;
  path: string;
  sha256: string;
  bytes: number;
  width: number | null;
  height: number | null;
  format: string;
  metadata: string;
  mtime_ms: number | null;
  added_at: string;
}

interface TrainingRow {
  id: string;
  command: string;
  state: TrainingRun['state'];
  run_dir: string;
  request: string;
  pid: number | null;
  owner: string | null;
  last_event: string | null;
  exported_model: string | null;
  error: string | null;
  started_at: string;
  finished_at: string | null;
}

export interface ReconcileReport {
  resultsRolledForward: number;
  resultsDropped: number;
  stagingRemoved: number;
  jobsInterrupted: number;
  trainingInterrupted: number;
}

export class Catalog {
  readonly db: Database.Database;

  constructor(readonly file: string) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    try {
      this.db = new Database(file, { timeout: 10_000 });
    } catch (err) {
      throw new Error(`${file}: cannot open the catalog (${(err as Error).message}). ` +
        'Check that the folder is writable, or point DUOSCALE_HOME at another folder.');
    }
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    migrate(this.db, file);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  get schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  // ---------------------------------------------------------------- images

  upsertImage(img: ImageInput): number {
    const existing = this.db.prepare('SELECT id FROM images WHERE path = ? AND sha256 = ?').get(img.path, img.sha256) as { id: number } | undefined;
    const meta = JSON.stringify(img.metadata);
    if (existing) {
      this.db.prepare(`UPDATE images SET bytes = ?, width = coalesce(?, width), height = coalesce(?, height),
        format = CASE WHEN ? = '' THEN format ELSE ? END, metadata = ?, mtime_ms = ? WHERE id = ?`)
        .run(img.bytes, img.width, img.height, img.format, img.format, meta, img.mtimeMs, existing.id);
      return existing.id;
    }
    return Number(this.db.prepare(`INSERT INTO images (path, sha256, bytes, width, height, format, metadata, mtime_ms, added_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(img.path, img.sha256, img.bytes, img.width, img.height, img.format, meta, img.mtimeMs, now()).lastInsertRowid);
  }

  updateImageSize(id: number, width: number, height: number): void {
    this.db.prepare('UPDATE images SET width = ?, height = ? WHERE id = ?').run(width, height, id);
  }

  getImage(id: number): ImageRecord | null {
    const row = this.db.prepare('SELECT * FROM images WHERE id = ?').get(id) as ImageRow | undefined;
    return row ? toImageRecord(row) : null;
  }

  /** Latest image record for a path (any content version). */
  findImageByPath(p: string): ImageRecord | null {
    const row = this.db.prepare('SELECT * FROM images WHERE path = ? ORDER BY id DESC LIMIT 1').get(p) as ImageRow | undefined;
    return row ? toImageRecord(row) : null;
  }

  // ---------------------------------------------------------------- results

  /** A finished identical result in the same target folder whose output is still on disk and unchanged. */
  findIdentical(imageSha: string, model: string, paramsHash: string, targetDir: string): ResultRecord | null {
    const rows = this.db.prepare(`SELECT r.*, i.path AS image_path FROM results r JOIN images i ON i.id = r.image_id
      WHERE i.sha256 = ? AND r.model = ? AND r.params_hash = ? AND r.target_dir = ? AND r.status = 'done'
      ORDER BY r.id DESC`).all(imageSha, model, paramsHash, targetDir) as ResultRow[];
    for (const row of rows) {
      if (row.output_path && outputIntact(row.output_path, row.output_sha256, row.output_bytes)) return toResultRecord(row);
    }
    return null;
  }

  /** Step 1 of the commit protocol: the row exists (with its staging folder) before any file does. */
  startResult(r: NewResult): { id: number; stagingDir: string } {
    return this.db.transaction(() => {
      const id = Number(this.db.prepare(`INSERT INTO results (image_id, job_item_id, model, model_sha256, params, params_hash, seed,
          target_dir, status, owner, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)`)
        .run(r.imageId, r.jobItemId, r.model, r.modelSha256, JSON.stringify(r.params), r.paramsHash, r.seed, r.targetDir, OWNER, now())
        .lastInsertRowid);
      const stagingDir = path.join(r.targetDir, `.duoscale-${id}.tmp`);
      this.db.prepare('UPDATE results SET staging_dir = ? WHERE id = ?').run(stagingDir, id);
      return { id, stagingDir };
    })();
  }

  /** Step 3: final path and hash recorded before the rename. */
  markCommitting(id: number, c: { stagedPath: string; outputPath: string; sha256: string; bytes: number; width: number; height: number; ms: number }): void {
    this.db.prepare(`UPDATE results SET status = 'committing', staged_path = ?, output_path = ?, output_sha256 = ?, output_bytes = ?,
      width = ?, height = ?, ms = ? WHERE id = ?`).run(c.stagedPath, c.outputPath, c.sha256, c.bytes, c.width, c.height, Math.round(c.ms), id);
  }

  /** Step 5. Rows of older results whose output file was just replaced are dropped. */
  markDone(id: number): void {
    this.db.transaction(() => {
      const row = this.db.prepare('SELECT output_path FROM results WHERE id = ?').get(id) as { output_path: string | null } | undefined;
      if (row?.output_path) {
        this.db.prepare("DELETE FROM results WHERE output_path = ? AND id != ? AND status IN ('done', 'committing')").run(row.output_path, id);
      }
      this.db.prepare(`UPDATE results SET status = 'done', staging_dir = NULL, staged_path = NULL, error = NULL, finished_at = ? WHERE id = ?`)
        .run(now(), id);
    })();
  }

  markFailed(id: number, error: string): void {
    this.db.prepare(`UPDATE results SET status = 'failed', error = ?, staging_dir = NULL, staged_path = NULL, output_path = NULL,
      output_sha256 = NULL, output_bytes = NULL, finished_at = ? WHERE id = ?`).run(error, now(), id);
  }

  /** Drops a result row that never produced anything (cancelled or paused mid-run). */
  dropResult(id: number): void {
    this.db.prepare('DELETE FROM results WHERE id = ?').run(id);
  }

  /** Is `p` the output of some result? (Such files may be replaced; anything else is never overwritten.) */
  isKnownOutput(p: string): boolean {
    return !!this.db.prepare("SELECT 1 FROM results WHERE output_path = ? AND status IN ('done', 'committing')").get(p);
  }

  isKnownInput(p: string): boolean {
    return !!this.db.prepare('SELECT 1 FROM images WHERE path = ?').get(p);
  }

  getResult(id: number): ResultRecord | null {
    const row = this.db.prepare('SELECT r.*, i.path AS image_path FROM results r JOIN images i ON i.id = r.image_id WHERE r.id = ?').get(id) as ResultRow | undefined;
    return row ? toResultRecord(row) : null;
  }

  /** Output sha256 of a done result (for thumbnails keyed by content). */
  resultOutput(id: number): { path: string; sha256: string } | null {
    const row = this.db.prepare("SELECT output_path, output_sha256 FROM results WHERE id = ? AND status = 'done'").get(id) as { output_path: string | null; output_sha256: string | null } | undefined;
    return row?.output_path && row.output_sha256 ? { path: row.output_path, sha256: row.output_sha256 } : null;
  }

  resultsForImage(imageId: number): ResultRecord[] {
    return (this.db.prepare('SELECT r.*, i.path AS image_path FROM results r JOIN images i ON i.id = r.image_id WHERE r.image_id = ? ORDER BY r.id DESC')
      .all(imageId) as ResultRow[]).map(toResultRecord);
  }

  resultsForItem(itemId: number): ResultRecord[] {
    return (this.db.prepare('SELECT r.*, i.path AS image_path FROM results r JOIN images i ON i.id = r.image_id WHERE r.job_item_id = ? ORDER BY r.id')
      .all(itemId) as ResultRow[]).map(toResultRecord);
  }

  listResults(q: CatalogQuery): { results: ResultRecord[]; total: number } {
    const where: string[] = [];
    const args: unknown[] = [];
    if (q.search) {
      where.push("(i.path LIKE ? ESCAPE '\\' OR r.output_path LIKE ? ESCAPE '\\' OR r.model LIKE ? ESCAPE '\\')");
      const like = `%${q.search.replace(/[\\%_]/g, (m) => '\\' + m)}%`;
      args.push(like, like, like);
    }
    if (q.model) { where.push('r.model = ?'); args.push(q.model); }
    if (q.status === 'running') where.push("r.status IN ('running', 'committing')");
    else if (q.status) { where.push('r.status = ?'); args.push(q.status); }
    if (q.from) { where.push('r.created_at >= ?'); args.push(new Date(q.from).toISOString()); }
    if (q.to) {
      // A date without a time means "to the end of that day".
      const end = /^\d{4}-\d{2}-\d{2}$/.test(q.to) ? Date.parse(q.to) + 86_400_000 - 1 : Date.parse(q.to);
      where.push('r.created_at <= ?'); args.push(new Date(end).toISOString());
    }
    const sqlWhere = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const total = (this.db.prepare(`SELECT count(*) AS n FROM results r JOIN images i ON i.id = r.image_id ${sqlWhere}`).get(...args) as { n: number }).n;
    const rows = this.db.prepare(`SELECT r.*, i.path AS image_path FROM results r JOIN images i ON i.id = r.image_id ${sqlWhere}
      ORDER BY r.id DESC LIMIT ? OFFSET ?`).all(...args, q.limit ?? 100, q.offset ?? 0) as ResultRow[];
    return { results: rows.map(toResultRecord), total };
  }

  /** Every result (for `catalog export`). */
  allResults(): ResultRecord[] {
    return (this.db.prepare('SELECT r.*, i.path AS image_path FROM results r JOIN images i ON i.id = r.image_id ORDER BY r.id').all() as ResultRow[]).map(toResultRecord);
  }

  /** Removes the record; returns the output path the caller should delete (never an original). */
  deleteResult(id: number): string | null {
    const row = this.db.prepare('SELECT output_path, status FROM results WHERE id = ?').get(id) as { output_path: string | null; status: string } | undefined;
    if (!row) return null;
    if (row.status === 'running' || row.status === 'committing') {
      throw new Error(`result ${id} is still being written; cancel its job first`);
    }
    this.db.prepare('DELETE FROM results WHERE id = ?').run(id);
    return row.output_path;
  }

  // ---------------------------------------------------------------- models

  upsertModel(m: { id: string; name: string; task: string; scale: number; sha256: string; path: string; builtin: boolean; manifest: unknown }): void {
    const t = now();
    this.db.prepare(`INSERT INTO models (id, name, task, scale, sha256, path, builtin, manifest, first_seen, last_seen)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (id) DO UPDATE SET name = excluded.name, task = excluded.task, scale = excluded.scale, sha256 = excluded.sha256,
        path = excluded.path, builtin = excluded.builtin, manifest = excluded.manifest, last_seen = excluded.last_seen`)
      .run(m.id, m.name, m.task, m.scale, m.sha256, m.path, m.builtin ? 1 : 0, JSON.stringify(m.manifest ?? {}), t, t);
  }

  removeModel(id: string): void {
    this.db.prepare('DELETE FROM models WHERE id = ?').run(id);
  }

  listModels(): { id: string; sha256: string; path: string; builtin: boolean }[] {
    return (this.db.prepare('SELECT id, sha256, path, builtin FROM models ORDER BY id').all() as { id: string; sha256: string; path: string; builtin: number }[])
      .map((r) => ({ ...r, builtin: r.builtin === 1 }));
  }

  // ---------------------------------------------------------------- jobs

  createJob(j: { id: string; request: unknown; requestHash: string; outputDir: string; items: { input: string; relativeDir: string; pixels: number | null }[] }): void {
    this.db.transaction(() => {
      const t = now();
      this.db.prepare(`INSERT INTO jobs (id, state, request, request_hash, output_dir, owner, created_at, updated_at)
        VALUES (?, 'queued', ?, ?, ?, ?, ?, ?)`).run(j.id, JSON.stringify(j.request), j.requestHash, j.outputDir, OWNER, t, t);
      const ins = this.db.prepare(`INSERT INTO job_items (job_id, idx, input_path, relative_dir, state, pixels) VALUES (?, ?, ?, ?, 'pending', ?)`);
      j.items.forEach((it, idx) => ins.run(j.id, idx, it.input, it.relativeDir, it.pixels));
    })();
  }

  getJob(id: string): JobRow | null {
    return (this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined) ?? null;
  }

  listJobs(limit = 50): JobRow[] {
    return this.db.prepare('SELECT * FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT ?').all(limit) as JobRow[];
  }

  /** Jobs left paused by a crash (or by the user) with the same request: what `enhance` run again resumes. */
  findResumable(requestHash: string): JobRow | null {
    return (this.db.prepare(`SELECT * FROM jobs WHERE request_hash = ? AND state IN ('paused', 'queued', 'running')
      ORDER BY created_at DESC LIMIT 1`).get(requestHash) as JobRow | undefined) ?? null;
  }

  setJobState(id: string, state: JobState, error: string | null = null): void {
    const final = state === 'done' || state === 'failed' || state === 'cancelled';
    this.db.prepare('UPDATE jobs SET state = ?, error = ?, owner = ?, updated_at = ?, finished_at = ? WHERE id = ?')
      .run(state, error, OWNER, now(), final ? now() : null, id);
  }

  jobItems(jobId: string): JobItemRow[] {
    return this.db.prepare('SELECT * FROM job_items WHERE job_id = ? ORDER BY idx').all(jobId) as JobItemRow[];
  }

  setItemState(itemId: number, state: JobItemSummary['state'], error: string | null = null): void {
    this.db.prepare('UPDATE job_items SET state = ?, error = ? WHERE id = ?').run(state, error, itemId);
  }

  /** Results of earlier jobs an item reused instead of redoing identical work. */
  setItemReused(itemId: number, results: { id: number; outputPath: string }[]): void {
    this.db.prepare('UPDATE job_items SET reused_results = ? WHERE id = ?').run(JSON.stringify(results), itemId);
  }

  /** Per item of a job: its result ids and their output paths (done ones only have a path). */
  jobResults(jobId: string): Map<number, { id: number; outputPath: string | null; status: string }[]> {
    const rows = this.db.prepare(`SELECT r.job_item_id AS item, r.id, r.output_path, r.status FROM results r
      JOIN job_items ji ON ji.id = r.job_item_id WHERE ji.job_id = ? ORDER BY r.id`).all(jobId) as { item: number; id: number; output_path: string | null; status: string }[];
    const map = new Map<number, { id: number; outputPath: string | null; status: string }[]>();
    for (const r of rows) {
      const list = map.get(r.item) ?? [];
      list.push({ id: r.id, outputPath: r.status === 'done' ? r.output_path : null, status: r.status });
      map.set(r.item, list);
    }
    return map;
  }

  /** The input photo whose result wrote `p`, if any. */
  outputImagePath(p: string): string | null {
    const row = this.db.prepare(`SELECT i.path FROM results r JOIN images i ON i.id = r.image_id
      WHERE r.output_path = ? AND r.status IN ('done', 'committing') ORDER BY r.id DESC LIMIT 1`).get(p) as { path: string } | undefined;
    return row?.path ?? null;
  }

  setItemPixels(itemId: number, pixels: number): void {
    this.db.prepare('UPDATE job_items SET pixels = ? WHERE id = ?').run(pixels, itemId);
  }

  /** Items of a job still to do go back to pending (after pause or crash). */
  requeueItems(jobId: string): void {
    this.db.prepare("UPDATE job_items SET state = 'pending', error = NULL WHERE job_id = ? AND state IN ('running', 'cancelled')").run(jobId);
  }

  cancelPendingItems(jobId: string): void {
    this.db.prepare("UPDATE job_items SET state = 'cancelled' WHERE job_id = ? AND state IN ('pending', 'running')").run(jobId);
  }

  // ---------------------------------------------------------------- training runs

  insertTrainingRun(r: { id: string; command: string; runDir: string; request: unknown; pid: number | null }): void {
    this.db.prepare(`INSERT INTO training_runs (id, command, state, run_dir, request, pid, owner, started_at)
      VALUES (?, ?, 'running', ?, ?, ?, ?, ?)`).run(r.id, r.command, r.runDir, JSON.stringify(r.request), r.pid, OWNER, now());
  }

  updateTrainingRun(id: string, f: { state?: TrainingRun['state']; lastEvent?: unknown; exportedModel?: string; error?: string; pid?: number }): void {
    const row = this.db.prepare('SELECT * FROM training_runs WHERE id = ?').get(id) as TrainingRow | undefined;
    if (!row) return;
    const final = f.state && f.state !== 'running';
    this.db.prepare(`UPDATE training_runs SET state = ?, last_event = ?, exported_model = ?, error = ?, pid = ?, finished_at = ? WHERE id = ?`)
      .run(f.state ?? row.state, f.lastEvent !== undefined ? JSON.stringify(f.lastEvent) : row.last_event,
        f.exportedModel ?? row.exported_model, f.error ?? row.error, f.pid ?? row.pid, final ? now() : row.finished_at, id);
  }

  getTrainingRun(id: string): TrainingRun | null {
    const row = this.db.prepare('SELECT * FROM training_runs WHERE id = ?').get(id) as TrainingRow | undefined;
    return row ? toTrainingRun(row) : null;
  }

  trainingRunDetails(id: string): { exportedModel: string | null; error: string | null; request: unknown } | null {
    const row = this.db.prepare('SELECT * FROM training_runs WHERE id = ?').get(id) as TrainingRow | undefined;
    return row ? { exportedModel: row.exported_model, error: row.error, request: JSON.parse(row.request) } : null;
  }

  listTrainingRuns(): TrainingRun[] {
    return (this.db.prepare('SELECT * FROM training_runs ORDER BY started_at DESC').all() as TrainingRow[]).map(toTrainingRun);
  }

  // ---------------------------------------------------------------- crash recovery

  /**
   * Finishes what dead processes left: `committing` results are rolled forward (rename the
   * staged file if it is still there), `running` results are dropped and their staging
   * folders removed, jobs they owned become `paused` with unfinished items pending again,
   * training runs they owned become `failed`. Rows of live processes are left alone.
   */
  reconcile(): ReconcileReport {
    const rep: ReconcileReport = { resultsRolledForward: 0, resultsDropped: 0, stagingRemoved: 0, jobsInterrupted: 0, trainingInterrupted: 0 };
    const open = this.db.prepare("SELECT * FROM results WHERE status IN ('running', 'committing')").all() as ResultRow[];
    for (const row of open) {
      if (ownerAlive(row.owner)) continue;
      if (row.status === 'committing' && row.output_path && row.output_sha256) {
        let ok = false;
        try {
          if (row.staged_path && fs.existsSync(row.staged_path)) fs.renameSync(row.staged_path, row.output_path);
          ok = outputIntact(row.output_path, row.output_sha256, row.output_bytes);
        } catch {
          ok = false;
        }
        if (ok) {
          this.markDone(row.id);
          rep.resultsRolledForward++;
        } else {
          this.dropResult(row.id);
          rep.resultsDropped++;
        }
      } else {
        this.dropResult(row.id);
        rep.resultsDropped++;
      }
      if (row.staging_dir && removeStaging(row.staging_dir)) rep.stagingRemoved++;
    }
    const jobs = this.db.prepare("SELECT * FROM jobs WHERE state IN ('queued', 'running')").all() as JobRow[];
    for (const job of jobs) {
      if (ownerAlive(job.owner)) continue;
      this.requeueItems(job.id);
      this.db.prepare("UPDATE jobs SET state = 'paused', error = ?, updated_at = ? WHERE id = ?")
        .run('interrupted: the program stopped while this job ran; resume it to finish', now(), job.id);
      rep.jobsInterrupted++;
    }
    const runs = this.db.prepare("SELECT * FROM training_runs WHERE state = 'running'").all() as TrainingRow[];
    for (const run of runs) {
      if (ownerAlive(run.owner)) continue;
      this.updateTrainingRun(run.id, { state: 'failed', error: 'interrupted: the app stopped while this run was going' });
      rep.trainingInterrupted++;
    }
    return rep;
  }
}

/** Removes a staging folder, but only one that has our name pattern. */
export function removeStaging(dir: string): boolean {
  if (!/^\.duoscale-\d+\.tmp$/.test(path.basename(dir))) return false;
  if (!fs.existsSync(dir)) return false;
  fs.rmSync(dir, { recursive: true, force: true });
  return true;
}

export function outputIntact(p: string, sha: string | null, bytes: number | null): boolean {
  try {
    const st = fs.statSync(p);
    if (!st.isFile() || (bytes !== null && st.size !== bytes)) return false;
    return sha === null || sha256File(p) === sha;
  } catch {
    return false;
  }
}

function toImageRecord(row: ImageRow): ImageRecord {
  let metadata: ImageRecord['metadata'];
  try {
    metadata = JSON.parse(row.metadata);
  } catch {
    metadata = { exif: false, xmp: false, hasAlpha: false };
  }
  return {
    id: row.id, path: row.path, sha256: row.sha256, width: row.width ?? 0, height: row.height ?? 0,
    format: row.format, bytes: row.bytes, metadata, addedAt: row.added_at,
  };
}

function toResultRecord(row: ResultRow): ResultRecord {
  return {
    id: row.id,
    imageId: row.image_id,
    imagePath: row.image_path ?? '',
    model: row.model,
    params: JSON.parse(row.params),
    outputPath: row.status === 'done' ? row.output_path : null,
    status: row.status === 'committing' ? 'running' : row.status,
    error: row.error,
    width: row.width,
    height: row.height,
    ms: row.ms,
    createdAt: row.created_at,
  };
}

function toTrainingRun(row: TrainingRow): TrainingRun {
  return {
    id: row.id, command: row.command, state: row.state, runDir: row.run_dir, startedAt: row.started_at,
    lastEvent: row.last_event ? JSON.parse(row.last_event) : null,
  };
}
