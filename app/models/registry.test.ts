import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { DuoscaleError } from '../errors.ts';
import { tmpDir } from '../test/helpers/images.ts';
import { writeIdentityModel } from '../test/helpers/onnx.ts';
import { manifestProblems, parseManifest } from './manifest.ts';
import { ModelRegistry } from './registry.ts';

function setup() {
  const root = tmpDir();
  const builtin = path.join(root, 'builtin');
  const user = path.join(root, 'user');
  writeIdentityModel(builtin, 'shipped-x4');
  return { root, builtin, user, reg: new ModelRegistry(builtin, user) };
}

async function rejectsWith(p: Promise<unknown>, code: string, re: RegExp): Promise<DuoscaleError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof DuoscaleError, `expected DuoscaleError, got ${e}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, re);
    return e;
  }
  assert.fail(`expected ${code}`);
}

describe('manifest validation', () => {
  it('lists every missing or wrong field at once', () => {
    const problems = manifestProblems({ format: 1, name: 'x', scale: 3, onnx: '../evil.onnx' });
    const fields = problems.map((p) => p.match(/^"([^"]+)"/)?.[1]);
    for (const f of ['task', 'scale', 'onnx', 'sha256', 'inputs.lr', 'noise_shape', 'output', 'pad_multiple', 'tile', 'params', 'precision', 'training', 'metrics', 'license']) {
      assert.ok(fields.includes(f), `${f} reported in ${problems.join(' | ')}`);
    }
    assert.ok(!fields.includes('format') && !fields.includes('name'));
  });
  it('refuses non-JSON with the file named', () => {
    assert.throws(() => parseManifest('{oops', '/m/a.json'), (e: DuoscaleError) => e.code === 'E_MODEL_MANIFEST' && e.message.startsWith('/m/a.json: '));
  });
});

describe('ModelRegistry', () => {
  it('works with missing folders', async () => {
    const reg = new ModelRegistry('/nonexistent/a', '/nonexistent/b');
    assert.deepEqual(await reg.list(), []);
    await rejectsWith(reg.load('nope'), 'E_MODEL_NOT_FOUND', /no model named "nope".*Import one/);
  });

  it('lists, loads (hash checked) and shows the card of a shipped model', async () => {
    const { reg, builtin } = setup();
    const list = await reg.list('shipped-x4');
    assert.equal(list.length, 1);
    assert.equal(list[0].id, 'shipped-x4');
    assert.equal(list[0].builtin, true);
    assert.equal(list[0].isDefault, true);
    assert.equal(list[0].path, path.join(builtin, 'shipped-x4.onnx'));
    const m = await reg.load('shipped-x4');
    assert.equal(m.sha256, m.manifest.sha256);
    assert.match(await reg.card('shipped-x4'), /Replicating x4/);
  });

  it('refuses a model whose .onnx does not match the sha256 in its manifest', async () => {
    const { reg, builtin } = setup();
    fs.appendFileSync(path.join(builtin, 'shipped-x4.onnx'), Buffer.from([0]));
    const e = await rejectsWith(reg.load('shipped-x4'), 'E_MODEL_HASH', /does not match its manifest.*sha256/);
    assert.equal(e.file, path.join(builtin, 'shipped-x4.onnx'));
    assert.match(e.message, /re-export or re-import/);
  });

  it('refuses a manifest with missing fields, saying which, and keeps listing the good ones', async () => {
    const { reg, builtin } = setup();
    writeIdentityModel(builtin, 'broken');
    const mp = path.join(builtin, 'broken.json');
    const man = JSON.parse(fs.readFileSync(mp, 'utf8'));
    delete man.sha256;
    delete man.pad_multiple;
    fs.writeFileSync(mp, JSON.stringify(man));
    assert.deepEqual((await reg.list()).map((m) => m.id), ['shipped-x4']);
    const refused = reg.refused();
    assert.equal(refused.length, 1);
    assert.match(refused[0].reason, /"sha256".*"pad_multiple"/);
    await rejectsWith(reg.load('broken'), 'E_MODEL_MANIFEST', /broken\.json: the model manifest is refused: "sha256" must be.*"pad_multiple"/);
  });

  it('imports a model (onnx + json + md copied, hash checked), refuses duplicates, removes user models only', async () => {
    const { reg, root, user } = setup();
    const src = writeIdentityModel(path.join(root, 'downloads'), 'mine-x4');
    const info = await reg.import(src);
    assert.equal(info.id, 'mine-x4');
    assert.equal(info.builtin, false);
    for (const ext of ['.onnx', '.json', '.md']) assert.ok(fs.existsSync(path.join(user, `mine-x4${ext}`)), ext);
    assert.ok(!fs.readdirSync(user).some((f) => f.endsWith('.tmp')), 'no temp files left');
    assert.deepEqual((await reg.list()).map((m) => m.id).sort(), ['mine-x4', 'shipped-x4']);
    await reg.load('mine-x4');
    await rejectsWith(reg.import(src), 'E_MODEL_EXISTS', /already installed.*models remove mine-x4/);
    await rejectsWith(reg.remove('shipped-x4'), 'E_MODEL_BUILTIN', /ships with the app/);
    await reg.remove('mine-x4');
    assert.deepEqual(fs.readdirSync(user), []);
    assert.deepEqual((await reg.list()).map((m) => m.id), ['shipped-x4']);
  });

  it('refuses to import a tampered model or one without a manifest', async () => {
    const { reg, root, user } = setup();
    const src = writeIdentityModel(path.join(root, 'dl'), 'bad-x4');
    fs.writeFileSync(src, Buffer.concat([fs.readFileSync(src), Buffer.from('x')]));
    await rejectsWith(reg.import(src), 'E_MODEL_HASH', /bad-x4\.onnx: the model file does not match/);
    const lone = path.join(root, 'dl', 'lone.onnx');
    fs.writeFileSync(lone, 'x');
    await rejectsWith(reg.import(lone), 'E_MODEL_MANIFEST', /no manifest next to the model \(expected lone\.json\)/);
    assert.ok(!fs.existsSync(user) || fs.readdirSync(user).length === 0);
  });
});
