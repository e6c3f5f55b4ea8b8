// Schema version 10: the first catalog. STRICT tables, named indexes, JSON kept as TEXT.
import type { Database } from 'better-sqlite3';

export function updateToSchemaVersion10(db: Database): void {
  db.exec(`
    CREATE TABLE images (
      id INTEGER PRIMARY KEY,
      path TEXT NOT NULL,
      sha256 TEXT NOT NULL,
      bytes INTEGER NOT NULL,
      width INTEGER,
      height INTEGER,
      format TEXT NOT NULL DEFAULT '',
      metadata TEXT NOT NULL DEFAULT '{}',
      mtime_ms INTEGER,
      added_at TEXT NOT NULL,
      UNIQUE (path, sha256)
    ) STRICT;
    CREATE INDEX images_sha256 ON images (sha256);

    CREATE TABLE models (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL,
      task TEXT NOT NULL,
      scale INTEGER NOT NULL,
      sha256 TEXT NOT NULL,
      path TEXT NOT NULL,
      builtin INTEGER NOT NULL CHECK (builtin IN (0, 1)),
      manifest TEXT NOT NULL DEFAULT '{}',
      first_seen TEXT NOT NULL,
      last_seen TEXT NOT NULL
    ) STRICT;

    CREATE TABLE jobs (
      id TEXT PRIMARY KEY,
      state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'paused', 'done', 'failed', 'cancelled')),
      request TEXT NOT NULL,
      request_hash TEXT NOT NULL,
      output_dir TEXT NOT NULL,
      owner TEXT,
      error TEXT,
      created_at TEXT NOT NULL,
      updated_at TEXT NOT NULL,
      finished_at TEXT
    ) STRICT;
    CREATE INDEX jobs_state ON jobs (state);
    CREATE INDEX jobs_request_hash ON jobs (request_hash);

    CREATE TABLE job_items (
      id INTEGER PRIMARY KEY,
      job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
      idx INTEGER NOT NULL,
      input_path TEXT NOT NULL,
      relative_dir TEXT NOT NULL DEFAULT '',
      state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'skipped', 'failed', 'cancelled')),
      error TEXT,
      pixels INTEGER,
      reused_results TEXT NOT NULL DEFAULT '[]',
      UNIQUE (job_id, idx)
    ) STRICT;
    CREATE INDEX job_items_job ON job_items (job_id, idx);

    CREATE TABLE results (
      id INTEGER PRIMARY KEY,
      image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
      job_item_id INTEGER REFERENCES job_items (id) ON DELETE SET NULL,
      model TEXT NOT NULL,
      model_sha256 TEXT NOT NULL DEFAULT '',
      params TEXT NOT NULL,
      params_hash TEXT NOT NULL,
      seed INTEGER NOT NULL,
      target_dir TEXT NOT NULL,
      staging_dir TEXT,
      staged_path TEXT,
      output_path TEXT,
      output_sha256 TEXT,
      output_bytes INTEGER,
      status TEXT NOT NULL CHECK (status IN ('running', 'committing', 'done', 'failed')),
      error TEXT,
      width INTEGER,
      height INTEGER,
      ms INTEGER,
      owner TEXT,
      created_at TEXT NOT NULL,
      finished_at TEXT
    ) STRICT;
    CREATE INDEX results_identity ON results (params_hash, model, status);
    CREATE INDEX results_image ON results (image_id);
    CREATE INDEX results_output_path ON results (output_path);
    CREATE INDEX results_status ON results (status);
    CREATE INDEX results_created ON results (created_at);
    CREATE INDEX results_job_item ON results (job_item_id);

    CREATE TABLE training_runs (
      id TEXT PRIMARY KEY,
      command TEXT NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed', 'cancelled')),
      run_dir TEXT NOT NULL,
      request TEXT NOT NULL,
      pid INTEGER,
      owner TEXT,
      last_event TEXT,
      exported_model TEXT,
      error TEXT,
      started_at TEXT NOT NULL,
      finished_at TEXT
    ) STRICT;
  `);
}
