// Web mode over real HTTP on 127.0.0.1:0.
//
// The service here is an IN-TEST OBJECT implementing DuoscaleApi (named `inTestService`):
// it exercises transport, auth, validation wiring and the image/static rules. The same
// checks against the real DuoscaleService live in server-real.test.ts.

import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DuoscaleApi, DuoscaleEvent, Settings } from '../api.ts';
import { startServer } from './index.ts';
import type { RunningServer } from './index.ts';
import { apiCall, nextEvent, request } from './test-helpers.ts';

const PNG_1x1 = Buffer.from(
  '89504e470d0a1a0a0000000d4948445200000001000000010806000000' +
    '1f15c4890000000d49444154789c6360f8cfc0f01f0005000201' +
    '5b9c3a2b0000000049454e44ae426082',
  'hex',
);

function inTestService(imageFile: string): DuoscaleApi & { imagePath(i: { kind: string; id: number }): Promise<string | null>; calls: unknown[] } {
  const listeners = new Set<(e: DuoscaleEvent) => void>();
  let settings: Settings = {
    provider: 'auto', threads: 0, tile: 0, format: 'same', quality: 92,
    naming: '{name}_x{scale}', keepMetadata: true, outputDir: '', defaultModel: '',
  };
  const calls: unknown[] = [];
  const notImplemented = async () => {
    throw Object.assign(new Error('not used by these tests'), { code: 'E_BAD_OPTION' });
  };
  return {
    calls,
    async imagePath({ kind, id }) {
      return kind === 'original' && id === 7 ? imageFile : null;
    },
    async settingsGet() {
      calls.push(['settingsGet']);
      return settings;
    },
    async settingsSet(patch) {
      calls.push(['settingsSet', patch]);
      settings = { ...settings, ...patch };
      for (const l of listeners) l({ type: 'settings-changed', settings });
      return settings;
    },
    async modelRemove({ id }) {
      throw Object.assign(new Error(`model "${id}" is not installed. Run "duoscale models list" to see the ids.`), { code: 'E_MODEL_NOT_FOUND' });
    },
    enhance: notImplemented, batch: notImplemented, jobs: async () => [], pause: notImplemented,
    resume: notImplemented, cancel: notImplemented, catalogList: async () => ({ results: [], total: 0 }),
    catalogImage: notImplemented, deleteResult: notImplemented, imageUrl: notImplemented,
    revealInFolder: notImplemented, modelsList: async () => [], modelImport: notImplemented,
    modelSetDefault: notImplemented, trainingStart: notImplemented, trainingStop: notImplemented,
    trainingList: async () => [],
    pickFiles: async () => {
      throw new Error('the server must not call the service for pickFiles');
    },
    onEvent(l) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  };
}

describe('startServer() with an in-test service object', () => {
  let dir: string;
  let server: RunningServer;
  let service: ReturnType<typeof inTestService>;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'duoscale-server-'));
    const staticDir = path.join(dir, 'renderer');
    await mkdir(path.join(staticDir, 'assets'), { recursive: true });
    await writeFile(path.join(staticDir, 'index.html'), '<!doctype html><title>Duoscale</title><script type="module" src="/assets/app.js"></script>');
    await writeFile(path.join(staticDir, 'assets', 'app.js'), 'console.log("hi")');
    await writeFile(path.join(dir, 'secret.txt'), 'outside the static root');
    await symlink(path.join(dir, 'secret.txt'), path.join(staticDir, 'link.txt'));
    const photo = path.join(dir, 'photo.png');
    await writeFile(photo, PNG_1x1);
    service = inTestService(photo);
    server = await startServer({ service, staticDir });
  });

  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('listens on 127.0.0.1 and prints a URL with a 32-byte token', () => {
    const u = new URL(server.url);
    assert.equal(u.hostname, '127.0.0.1');
    assert.equal(u.searchParams.get('token'), server.token);
    assert.equal(Buffer.from(server.token, 'base64url').length, 32);
  });

  it('refuses to bind to 0.0.0.0 or a LAN address', async () => {
    await assert.rejects(
      startServer({ service, staticDir: dir, host: '0.0.0.0' as never }),
      /Refusing to listen on "0\.0\.0\.0".*loopback/,
    );
    await assert.rejects(startServer({ service, staticDir: dir, host: '192.168.1.10' as never }), /Refusing/);
  });

  it('answers 401 without a token and with a wrong one, and does not call the service', async () => {
    const before = service.calls.length;
    const none = await request(server.port, { method: 'POST', path: '/api/settingsGet', headers: { 'content-type': 'application/json' } });
    assert.equal(none.status, 401);
    assert.match(none.json().error.message, /Missing token/);
    const wrong = await apiCall(server.port, 'x'.repeat(server.token.length), 'settingsGet');
    assert.equal(wrong.status, 401);
    const events = await request(server.port, { path: '/api/events' });
    assert.equal(events.status, 401);
    assert.equal(service.calls.length, before);
  });

  it('rejects a foreign Host header (DNS rebinding), even with the right token', async () => {
    const res = await apiCall(server.port, server.token, 'settingsGet', undefined, { host: `evil.example:${server.port}` });
    assert.equal(res.status, 403);
    assert.equal(res.json().error.code, 'BAD_HOST');
    const wrongPort = await request(server.port, { path: '/', headers: { host: `127.0.0.1:${server.port + 1}` } });
    assert.equal(wrongPort.status, 403);
    const ok = await apiCall(server.port, server.token, 'settingsGet', undefined, { host: `localhost:${server.port}` });
    assert.equal(ok.status, 200);
  });

  it('rejects a foreign Origin (CSRF) and accepts its own', async () => {
    const foreign = await apiCall(server.port, server.token, 'settingsGet', undefined, { origin: 'https://evil.example' });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.json().error.code, 'BAD_ORIGIN');
    const nullOrigin = await apiCall(server.port, server.token, 'settingsGet', undefined, { origin: 'null' });
    assert.equal(nullOrigin.status, 403);
    const crossSite = await apiCall(server.port, server.token, 'settingsGet', undefined, { 'sec-fetch-site': 'cross-site' });
    assert.equal(crossSite.status, 403);
    const own = await apiCall(server.port, server.token, 'settingsGet', undefined, { origin: server.origin });
    assert.equal(own.status, 200);
  });

  it('round-trips a method call with validated arguments', async () => {
    const res = await apiCall(server.port, server.token, 'settingsSet', { quality: 80 });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json(), { ok: true, result: { ...res.json().result, quality: 80 } });
    assert.deepEqual(service.calls.at(-1), ['settingsSet', { quality: 80 }]);
    const get = await apiCall(server.port, server.token, 'settingsGet');
    assert.equal(get.json().result.quality, 80);
  });

  it('answers 400 with the validator message for a bad argument, before the service runs', async () => {
    const before = service.calls.length;
    const res = await apiCall(server.port, server.token, 'settingsSet', { qualty: 80 });
    assert.equal(res.status, 400);
    assert.match(res.json().error.message, /"qualty" is not a known field \(did you mean "quality"\?\)/);
    const range = await apiCall(server.port, server.token, 'settingsSet', { quality: 500 });
    assert.equal(range.status, 400);
    assert.match(range.json().error.message, /quality.*between 1 and 100/);
    assert.equal(service.calls.length, before);
  });

  it('maps a not-found service error to 404 and keeps its code', async () => {
    const res = await apiCall(server.port, server.token, 'modelRemove', { id: 'nope' });
    assert.equal(res.status, 404);
    assert.equal(res.json().error.code, 'E_MODEL_NOT_FOUND');
    assert.match(res.json().error.message, /duoscale models list/);
  });

  it('refuses unknown methods, GET on methods, bad JSON and non-JSON bodies', async () => {
    assert.equal((await apiCall(server.port, server.token, 'onEvent')).status, 404);
    assert.equal((await apiCall(server.port, server.token, 'constructor')).status, 404);
    const get = await request(server.port, { path: '/api/settingsGet', headers: { 'x-duoscale-token': server.token } });
    assert.equal(get.status, 405);
    const bad = await request(server.port, {
      method: 'POST', path: '/api/settingsSet', body: '{"quality":',
      headers: { 'content-type': 'application/json', 'x-duoscale-token': server.token },
    });
    assert.equal(bad.status, 400);
    assert.match(bad.json().error.message, /not valid JSON/);
    const form = await request(server.port, {
      method: 'POST', path: '/api/settingsGet', body: 'a=b',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-duoscale-token': server.token },
    });
    assert.equal(form.status, 415);
  });

  it('answers pickFiles with null without touching the service (renderer shows a path dialog)', async () => {
    const res = await apiCall(server.port, server.token, 'pickFiles', { folders: false, multiple: true });
    assert.equal(res.status, 200);
    assert.equal(res.json().result, null);
  });

  it('delivers a service event on the SSE stream', async () => {
    const { event, headers } = await nextEvent(
      server.port,
      server.token,
      (e) => e.type === 'settings-changed',
      async () => {
        const r = await apiCall(server.port, server.token, 'settingsSet', { quality: 61 });
        assert.equal(r.status, 200);
      },
    );
    assert.match(String(headers['content-type']), /^text\/event-stream/);
    assert.equal(event.settings.quality, 61);
  });

  it('serves catalog images by kind and id only; unknown ids are 404', async () => {
    const url = await apiCall(server.port, server.token, 'imageUrl', { kind: 'original', id: 7 });
    assert.equal(url.status, 200);
    const src = url.json().result as string;
    assert.equal(src, `/img/original/7?token=${encodeURIComponent(server.token)}`);
    const img = await request(server.port, { path: src });
    assert.equal(img.status, 200);
    assert.equal(img.headers['content-type'], 'image/png');
    assert.deepEqual(img.body, PNG_1x1);

    assert.equal((await request(server.port, { path: `/img/original/8?token=${server.token}` })).status, 404);
    assert.equal((await request(server.port, { path: `/img/result/7?token=${server.token}` })).status, 404);
    assert.equal((await apiCall(server.port, server.token, 'imageUrl', { kind: 'original', id: 8 })).status, 404);
    // A path in the URL is never used as a path.
    const raw = await request(server.port, { path: `/img/original/${encodeURIComponent(path.join(dir, 'photo.png'))}?token=${server.token}` });
    assert.equal(raw.status, 404);
    assert.equal((await request(server.port, { path: '/img/original/7' })).status, 401);
  });

  it('serves the renderer with a strict CSP and falls back to index.html for app routes', async () => {
    const index = await request(server.port, { path: '/' });
    assert.equal(index.status, 200);
    assert.match(index.text, /<title>Duoscale<\/title>/);
    const csp = String(index.headers['content-security-policy']);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-eval/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(index.headers['x-content-type-options'], 'nosniff');
    const js = await request(server.port, { path: '/assets/app.js' });
    assert.equal(js.status, 200);
    assert.match(String(js.headers['content-type']), /^text\/javascript/);
    const route = await request(server.port, { path: '/library' });
    assert.equal(route.status, 200);
    assert.match(route.text, /<title>Duoscale/);
    assert.equal((await request(server.port, { path: '/assets/missing.js' })).status, 404);
  });

  it('never serves files outside the static folder (traversal, encoded, backslash, symlink)', async () => {
    for (const p of [
      '/../secret.txt',
      '/%2e%2e/secret.txt',
      '/assets/%2e%2e/%2e%2e/secret.txt',
      '/..%2fsecret.txt',
      '/..%5csecret.txt',
      '/assets/..\\..\\secret.txt',
      '/%00index.html',
      '/link.txt',
      `/${encodeURIComponent(path.join(dir, 'secret.txt'))}`,
    ]) {
      const res = await request(server.port, { path: p });
      assert.equal(res.status, 404, `${p} answered ${res.status}`);
      assert.doesNotMatch(res.text, /outside the static root/, p);
    }
  });

  it('close() ends open event streams and stops listening', async () => {
    const other = await startServer({ service, staticDir: dir });
    let closing: Promise<void> | undefined;
    const stream = nextEvent(other.port, other.token, () => false, () => {
      closing = other.close();
    }, 5_000);
    await assert.rejects(stream, /event stream ended/);
    await closing;
    await assert.rejects(request(other.port, { path: '/' }), /ECONNREFUSED/);
  });
});
