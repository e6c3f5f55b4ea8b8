import assert from 'node:assert/strict';
import { test } from 'node:test';
import { API_METHODS, type ApiMethod } from './api.ts';
import { ApiArgumentError, validateApiArgs, validateSettingsPatch } from './api-validate.ts';

const ABS = '/tmp/photos/a.jpg';

/** One valid argument per method; every method of the API must be here. */
const VALID: Record<ApiMethod, unknown> = {
  enhance: { path: ABS, outputDir: '/tmp/out', options: { scale: 2, format: 'png', seed: 7, variations: 3, naming: '{name}_{seed}', tile: 64, quality: 90, keepMetadata: false, force: true, model: 'tiny-x4', restore: 1 } },
  batch: { inputs: [ABS, '/tmp/photos'], outputDir: '/tmp/out', recursive: true, options: { targetWidth: 2000 } },
  jobs: undefined,
  pause: { jobId: '0b6f-12ab' },
  resume: { jobId: '0b6f-12ab' },
  cancel: { jobId: '0b6f-12ab' },
  catalogList: { search: 'beach', model: 'tiny-x4', status: 'done', from: '2024-01-01', to: '2024-12-31T23:59:59Z', limit: 50, offset: 10 },
  catalogImage: { imageId: 3 },
  deleteResult: { resultId: 9 },
  imageUrl: { kind: 'thumb', id: 2 },
  revealInFolder: { path: ABS },
  modelsList: {},
  modelImport: { onnxPath: '/tmp/m/my-model.onnx' },
  modelRemove: { id: 'my-model' },
  modelSetDefault: { id: 'my-model' },
  settingsGet: undefined,
  settingsSet: { provider: 'cpu', threads: 2, tile: 0, format: 'webp', quality: 80, naming: '{name}-{model}', keepMetadata: true, repair: true, outputDir: '/tmp/out', defaultModel: 'tiny-x4' },
  trainingStart: { command: 'finetune', dataDir: '/tmp/faces', minutes: 0.5, preset: 'test', name: 'my-faces', extraArgs: ['--seed', '3'] },
  trainingStop: { id: 'finetune-20240101-000000-ab12' },
  trainingList: undefined,
  pickFiles: { folders: true, multiple: false },
};

/** Bad arguments with the field the message must name. */
const INVALID: [ApiMethod, unknown, RegExp][] = [
  ['enhance', { path: 'photos/a.jpg' }, /"path" must be an absolute path/],
  ['enhance', { path: 42 }, /"path" must be a string/],
  ['enhance', null, /must be an object/],
  ['enhance', { path: ABS, options: { scale: 3 } }, /options\.scale" must be one of 1, 2, 4/],
  ['enhance', { path: ABS, options: { quality: 0 } }, /options\.quality" must be between 1 and 100/],
  ['enhance', { path: ABS, options: { quality: 50.5 } }, /options\.quality" must be an integer/],
  ['enhance', { path: ABS, options: { tile: 8 } }, /options\.tile" must be 0 \(automatic\) or between 16/],
  ['enhance', { path: ABS, options: { seed: -1 } }, /options\.seed" must be between 0/],
  ['enhance', { path: ABS, options: { variations: 17 } }, /options\.variations" must be between 1 and 16/],
  ['enhance', { path: ABS, options: { restore: 1.5 } }, /options\.restore" must be a number from 0 \(clean photo\) to 1/],
  ['enhance', { path: ABS, options: { restore: 'on' } }, /options\.restore" must be a number/],
  ['enhance', { path: ABS, options: { format: 'gif' } }, /options\.format" must be one of/],
  ['enhance', { path: ABS, options: { naming: '../{name}' } }, /options\.naming" must be a file name template/],
  ['enhance', { path: ABS, options: { naming: '{name}_{foo}' } }, /unknown token \{foo\}/],
  ['enhance', { path: ABS, options: { keepMetadata: 'yes' } }, /keepMetadata" must be true or false/],
  ['enhance', { path: ABS, options: { modle: 'x' } }, /options\.modle" is not a known field \(did you mean "model"\?\)/],
  ['enhance', { path: ABS, options: { model: '../evil' } }, /options\.model" must be letters, digits/],
  ['enhance', { path: `/tmp/a\0.jpg` }, /NUL/],
  ['batch', { inputs: [], outputDir: '/tmp/o' }, /"inputs" must name at least one/],
  ['batch', { inputs: 'a.jpg', outputDir: '/tmp/o' }, /"inputs" must be an array/],
  ['batch', { inputs: [ABS, 'rel.jpg'], outputDir: '/tmp/o' }, /"inputs\[1\]" must be an absolute path/],
  ['batch', { inputs: [ABS] }, /"outputDir" must be a string/],
  ['batch', { inputs: [ABS], outputDir: '/tmp/o', recursive: 1 }, /"recursive" must be true or false/],
  ['batch', { inputs: [ABS], outputDir: '/tmp/o', options: { targetWidth: 0 } }, /targetWidth" must be between 1/],
  ['jobs', { x: 1 }, /"x" is not a known field/],
  ['pause', {}, /"jobId" must be a string/],
  ['resume', { jobId: '' }, /"jobId" must not be empty/],
  ['cancel', { jobId: 'a/b' }, /"jobId" must be a job id/],
  ['catalogList', { status: 'ok' }, /"status" must be one of "done", "failed", "running"/],
  ['catalogList', { from: 'yesterday' }, /"from" must be an ISO date/],
  ['catalogList', { from: '2024-05-02', to: '2024-05-01' }, /"from" must not be after "to"/],
  ['catalogList', { limit: 0 }, /"limit" must be between 1 and 1000/],
  ['catalogList', { offset: -1 }, /"offset" must be between 0/],
  ['catalogList', { serach: 'x' }, /did you mean "search"/],
  ['catalogImage', { imageId: 0 }, /"imageId" must be between 1/],
  ['catalogImage', { imageId: '3' }, /"imageId" must be an integer/],
  ['deleteResult', { resultId: 1.5 }, /"resultId" must be an integer/],
  ['imageUrl', { kind: 'file', id: 1 }, /"kind" must be one of "original", "result", "thumb"/],
  ['imageUrl', { kind: 'original' }, /"id" must be an integer/],
  ['revealInFolder', { path: '~/x.jpg' }, /"path" must be an absolute path/],
  ['modelsList', { all: true }, /"all" is not a known field/],
  ['modelImport', { onnxPath: '/tmp/m/model.json' }, /"onnxPath" must be an \.onnx file/],
  ['modelImport', { onnxPath: 'model.onnx' }, /"onnxPath" must be an absolute path/],
  ['modelRemove', { id: '' }, /"id" must not be empty/],
  ['modelSetDefault', {}, /"id" must be a string/],
  ['settingsGet', [], /must be an object/],
  ['settingsSet', { provider: 'tpu' }, /"provider" must be one of "auto", "cpu"/],
  ['settingsSet', { threads: 1000 }, /"threads" must be between 0 and 256/],
  ['settingsSet', { outputDir: 'out' }, /"outputDir" must be an absolute path/],
  ['settingsSet', { theme: 'dark' }, /"theme" is not a known field/],
  ['trainingStart', { command: 'teach', dataDir: '/d', minutes: 1 }, /"command" must be one of "teacher", "student", "finetune"/],
  ['trainingStart', { command: 'teacher', dataDir: '/d', minutes: 0 }, /"minutes" must be greater than 0/],
  ['trainingStart', { command: 'teacher', dataDir: '/d', minutes: Infinity }, /"minutes" must be a finite number/],
  ['trainingStart', { command: 'teacher', dataDir: 'd', minutes: 1 }, /"dataDir" must be an absolute path/],
  ['trainingStart', { command: 'teacher', dataDir: '/d', minutes: 1, extraArgs: [1] }, /"extraArgs\[0\]" must be a string/],
  ['trainingStop', { id: '../x' }, /"id" must be letters/],
  ['trainingList', 'x', /must be an object/],
  ['pickFiles', { folders: true }, /"multiple" must be true or false/],
];

test('every API method has a validator and accepts a valid argument', () => {
  for (const m of API_METHODS) {
    assert.ok(m in VALID, `test table lacks ${m}`);
    assert.doesNotThrow(() => validateApiArgs(m, VALID[m]), `valid argument of ${m} refused`);
  }
});

test('bad arguments are refused with a message naming the method and the field', () => {
  const covered = new Set<string>();
  for (const [m, arg, re] of INVALID) {
    assert.throws(() => validateApiArgs(m, arg), (err: unknown) => {
      assert.ok(err instanceof ApiArgumentError, `${m}: not an ApiArgumentError`);
      assert.match(err.message, new RegExp(`^${m}: `), `${m}: message does not start with the method`);
      assert.match(err.message, re, `${m}(${JSON.stringify(arg)}): ${err.message}`);
      return true;
    });
    covered.add(m);
  }
  for (const m of API_METHODS) assert.ok(covered.has(m), `no invalid-argument case for ${m}`);
});

test('an unknown method is refused', () => {
  assert.throws(() => validateApiArgs('rmrf' as ApiMethod, {}), /is not an API method/);
});

test('the validated copy drops nothing valid and normalises paths', () => {
  const out = validateApiArgs('batch', { inputs: ['/tmp/a/../b/c.jpg'], outputDir: '/tmp/out/', options: { seed: 3 } });
  assert.deepEqual(out, { inputs: ['/tmp/b/c.jpg'], outputDir: '/tmp/out/', options: { seed: 3 } });
  const none = validateApiArgs('catalogList', undefined);
  assert.deepEqual(none, {});
});

test('settings patches: empty defaultModel and outputDir mean "reset"', () => {
  assert.deepEqual(validateSettingsPatch({ defaultModel: '', outputDir: '' }), { defaultModel: '', outputDir: '' });
});
