import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { SettingsStore, defaultSettings } from './settings.ts';
import { resolvePaths, defaultHome } from './paths.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'duoscale-settings-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('defaults, saved patches survive a reload, bad patches write nothing', () => {
  const file = path.join(tmp, 'a', 'settings.json');
  const s = new SettingsStore(file);
  assert.deepEqual(s.get(), defaultSettings());
  s.set({ quality: 70, provider: 'cpu' });
  assert.equal(new SettingsStore(file).get().quality, 70);
  assert.throws(() => s.set({ quality: 700 }), /"quality" must be between 1 and 100/);
  assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).quality, 70);
  assert.deepEqual(fs.readdirSync(path.dirname(file)), ['settings.json'], 'no temp file left');
});

test('session overrides are not saved', () => {
  const file = path.join(tmp, 'b', 'settings.json');
  const s = new SettingsStore(file);
  s.override({ threads: 3 });
  assert.equal(s.get().threads, 3);
  s.set({ quality: 60 });
  assert.equal(s.get().threads, 3);
  assert.equal(new SettingsStore(file).get().threads, 0);
});

test('a damaged settings file falls back per field with a warning', () => {
  const file = path.join(tmp, 'c', 'settings.json');
  fs.mkdirSync(path.dirname(file));
  fs.writeFileSync(file, JSON.stringify({ quality: 55, tile: 3, bogus: true }));
  const s = new SettingsStore(file);
  assert.equal(s.get().quality, 55);
  assert.equal(s.get().tile, 0);
  assert.equal(s.warnings.length, 2);
  fs.writeFileSync(file, '{not json');
  const t = new SettingsStore(file);
  assert.deepEqual(t.get(), defaultSettings());
  assert.match(t.warnings[0], /not valid JSON/);
});

test('paths: DUOSCALE_HOME and DUOSCALE_MODELS_DIR override the OS defaults', () => {
  const p = resolvePaths({}, { DUOSCALE_HOME: '/x/home', DUOSCALE_MODELS_DIR: '/x/models' });
  assert.equal(p.catalog, '/x/home/catalog.sqlite');
  assert.equal(p.userModels, '/x/home/models');
  assert.equal(p.thumbs, '/x/home/thumbs');
  assert.equal(p.builtinModels, '/x/models');
  assert.equal(resolvePaths({ home: '/y' }, { DUOSCALE_HOME: '/x' }).home, '/y');
  assert.match(defaultHome('linux', { XDG_CONFIG_HOME: '/cfg' }), /^\/cfg\/Duoscale$/);
  assert.match(defaultHome('darwin', {}), /Library\/Application Support\/Duoscale$/);
});
