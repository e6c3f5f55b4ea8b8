// The renderer's web-mode client (renderer/src/lib/transport.ts, createHttpApi) against the
// real server and the real DuoscaleService: both sides of the wire format agree.
// (Imported across folders only here, in a test: the client has no DOM access at import time.)

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ApiError, createHttpApi } from '../../renderer/src/lib/transport.ts';
import type { DuoscaleApi } from '../api.ts';
import { DuoscaleService } from '../service.ts';
import { startServer } from './index.ts';
import type { RunningServer } from './index.ts';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'test', 'fixtures');

describe('createHttpApi() against startServer() and the real DuoscaleService', () => {
  let dir: string;
  let service: DuoscaleService;
  let server: RunningServer;
  let api: DuoscaleApi;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'duoscale-transport-'));
    service = await DuoscaleService.open({ home: path.join(dir, 'home'), builtinModels: FIXTURES });
    server = await startServer({ service, staticDir: dir });
    api = createHttpApi({ token: server.token, base: server.origin });
  });

  after(async () => {
    await server.close();
    await service.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('returns results of calls with and without arguments', async () => {
    assert.equal((await api.settingsSet({ quality: 71 })).quality, 71);
    assert.equal((await api.settingsGet()).quality, 71);
    assert.deepEqual((await api.modelsList()).map((m) => m.id), ['tiny-x4']);
    assert.deepEqual(await api.jobs(), []);
  });

  it('resolves pickFiles to null (no native dialog in a browser)', async () => {
    assert.equal(await api.pickFiles({ folders: true, multiple: false }), null);
  });

  it('rejects with ApiError carrying message, code and HTTP status', async () => {
    await assert.rejects(api.settingsSet({ quality: 0 }), (err: unknown) => {
      assert.ok(err instanceof ApiError);
      assert.equal(err.status, 400);
      assert.equal(err.code, 'invalid-argument');
      assert.match(err.message, /"quality" must be between 1 and 100/);
      return true;
    });
    await assert.rejects(api.catalogImage({ imageId: 5 }), (err: unknown) => err instanceof ApiError && err.status === 404 && err.code === 'E_NOT_FOUND');
  });

  it('rejects with ApiError when the token is wrong or the server is gone', async () => {
    const wrong = createHttpApi({ token: 'nope', base: server.origin });
    await assert.rejects(wrong.settingsGet(), (err: unknown) => err instanceof ApiError && err.status === 401);
    const gone = createHttpApi({ token: server.token, base: 'http://127.0.0.1:9' });
    await assert.rejects(gone.settingsGet(), (err: unknown) => err instanceof ApiError && err.code === 'SERVER_UNREACHABLE');
  });
});
