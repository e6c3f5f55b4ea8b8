// Numbered schema steps, applied in order inside one transaction each; PRAGMA user_version
// holds the last one applied. Versions go up in tens, leaving room for follow-ups.
import type { Database } from 'better-sqlite3';
import { updateToSchemaVersion10 } from './0010-initial.ts';

export interface Migration {
  version: number;
  name: string;
  up: (db: Database) => void;
}

export const MIGRATIONS: readonly Migration[] = [
  { version: 10, name: 'initial', up: updateToSchemaVersion10 },
];

export const LATEST_SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

/** Brings `db` to the latest version. Refuses a catalog written by a newer Duoscale. */
export function migrate(db: Database, file: string): { from: number; to: number } {
  const from = db.pragma('user_version', { simple: true }) as number;
  if (from > LATEST_SCHEMA_VERSION) {
    throw new Error(`${file}: the catalog has schema version ${from}, newer than this Duoscale understands ` +
      `(${LATEST_SCHEMA_VERSION}). Update Duoscale, or point DUOSCALE_HOME at another folder.`);
  }
  for (const m of MIGRATIONS) {
    if (m.version <= from) continue;
    db.transaction(() => {
      m.up(db);
      db.pragma(`user_version = ${m.version}`);
    }).immediate();
  }
  return { from, to: db.pragma('user_version', { simple: true }) as number };
}
