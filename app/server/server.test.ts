// Web mode over real HTTP on 127.0.0.1:0 with the REAL DuoscaleService (temp data folder,
// real SQLite catalog, the tiny-x4 fixture model run by onnxruntime, real sharp).

import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, rm, writeFile, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import type { JobSummary } from '../api.ts';
import { DuoscaleService } from '../service.ts';
import { startServer } from './index.ts';
import type { RunningServer } from './index.ts';
import { apiCall, nextEvent, request } from './test-helpers.ts';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'test', 'fixtures');

describe('startServer() with the real DuoscaleService', () => {
  let dir: string;
  let server: RunningServer;
  let service: DuoscaleService;
  let photo: string;
  let outDir: string;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'duoscale-server-'));
    const staticDir = path.join(dir, 'renderer');
    await mkdir(path.join(staticDir, 'assets'), { recursive: true });
    await writeFile(path.join(staticDir, 'index.html'), '<!doctype html><title>Duoscale</title><script type="module" src="/assets/app.js"></script>');
    await writeFile(path.join(staticDir, 'assets', 'app.js'), 'console.log("hi")');
    await writeFile(path.join(dir, 'secret.txt'), 'outside the static root');
    await symlink(path.join(dir, 'secret.txt'), path.join(staticDir, 'link.txt'));
    photo = path.join(dir, 'photo.png');
    await sharp({ create: { width: 32, height: 24, channels: 3, background: { r: 200, g: 120, b: 40 } } }).png().toFile(photo);
    outDir = path.join(dir, 'out');
    service = await DuoscaleService.open({ home: path.join(dir, 'home'), builtinModels: FIXTURES });
    server = await startServer({ service, staticDir });
  });

  after(async () => {
    await server?.close();
    await service?.close();
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

  it('answers 401 without a token and with a wrong one, and does no work', async () => {
    const none = await request(server.port, {
      method: 'POST', path: '/api/settingsSet', body: '{"quality":11}', headers: { 'content-type': 'application/json' },
    });
    assert.equal(none.status, 401);
    assert.match(none.json().error.message, /Missing token/);
    const wrong = await apiCall(server.port, 'x'.repeat(server.token.length), 'settingsSet', { quality: 12 });
    assert.equal(wrong.status, 401);
    assert.match(wrong.json().error.message, /Wrong token/);
    assert.equal((await request(server.port, { path: '/api/events' })).status, 401);
    assert.equal((await request(server.port, { path: '/api/events?token=nope' })).status, 401);
    assert.notEqual((await service.settingsGet()).quality, 11);
    assert.notEqual((await service.settingsGet()).quality, 12);
  });

  it('rejects a foreign Host header (DNS rebinding), even with the right token', async () => {
    const res = await apiCall(server.port, server.token, 'settingsGet', undefined, { host: `evil.example:${server.port}` });
    assert.equal(res.status, 403);
    assert.equal(res.json().error.code, 'BAD_HOST');
    const page = await request(server.port, { path: '/', headers: { host: `evil.example:${server.port}` } });
    assert.equal(page.status, 403);
    const wrongPort = await request(server.port, { path: '/', headers: { host: `127.0.0.1:${server.port + 1}` } });
    assert.equal(wrongPort.status, 403);
    const ok = await apiCall(server.port, server.token, 'settingsGet', undefined, { host: `localhost:${server.port}` });
    assert.equal(ok.status, 200);
  });

  it('rejects a foreign Origin (CSRF) and accepts its own', async () => {
    const foreign = await apiCall(server.port, server.token, 'settingsSet', { quality: 13 }, { origin: 'https://evil.example' });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.json().error.code, 'BAD_ORIGIN');
    assert.notEqual((await service.settingsGet()).quality, 13);
    const nullOrigin = await apiCall(server.port, server.token, 'settingsGet', undefined, { origin: 'null' });
    assert.equal(nullOrigin.status, 403);
    const crossSite = await apiCall(server.port, server.token, 'settingsGet', undefined, { 'sec-fetch-site': 'cross-site' });
    assert.equal(crossSite.status, 403);
    const own = await apiCall(server.port, server.token, 'settingsGet', undefined, { origin: server.origin });
    assert.equal(own.status, 200);
  });

  it('round-trips a method call into the catalog-backed settings', async () => {
    const res = await apiCall(server.port, server.token, 'settingsSet', { quality: 80, naming: '{name}_web' });
    assert.equal(res.status, 200);
    assert.equal(res.json().ok, true);
    assert.equal(res.json().result.quality, 80);
    // What the server stored is what the service (and its settings.json) now says.
    assert.equal((await service.settingsGet()).naming, '{name}_web');
    const onDisk = JSON.parse(await readFile(service.paths.settings, 'utf8'));
    assert.equal(onDisk.quality, 80);
    const models = await apiCall(server.port, server.token, 'modelsList');
    assert.deepEqual(models.json().result.map((m: { id: string }) => m.id), ['tiny-x4']);
  });

  it('answers 400 with the validator message for a bad argument', async () => {
    const res = await apiCall(server.port, server.token, 'settingsSet', { qualty: 70 });
    assert.equal(res.status, 400);
    assert.match(res.json().error.message, /"qualty" is not a known field \(did you mean "quality"\?\)/);
    const range = await apiCall(server.port, server.token, 'settingsSet', { quality: 500 });
    assert.equal(range.status, 400);
    assert.match(range.json().error.message, /quality.*between 1 and 100/);
    const rel = await apiCall(server.port, server.token, 'enhance', { path: 'relative/photo.jpg' });
    assert.equal(rel.status, 400);
    assert.match(rel.json().error.message, /absolute path/);
  });

  it('maps a not-found service error to 404 and keeps its code', async () => {
    const res = await apiCall(server.port, server.token, 'modelSetDefault', { id: 'no-such-model' });
    assert.equal(res.status, 404);
    assert.equal(res.json().error.code, 'E_MODEL_NOT_FOUND');
    const img = await apiCall(server.port, server.token, 'catalogImage', { imageId: 999 });
    assert.equal(img.status, 404);
  });

  it('refuses unknown methods, GET on methods, bad JSON and non-JSON bodies', async () => {
    assert.equal((await apiCall(server.port, server.token, 'onEvent')).status, 404);
    assert.equal((await apiCall(server.port, server.token, 'constructor')).status, 404);
    assert.equal((await apiCall(server.port, server.token, 'close')).status, 404);
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

  it('answers pickFiles with null (the renderer shows a path-entry dialog)', async () => {
    const res = await apiCall(server.port, server.token, 'pickFiles', { folders: false, multiple: true });
    assert.equal(res.status, 200);
    assert.equal(res.json().result, null);
  });

  it('delivers a service event on the SSE stream', async () => {
    const { event, headers } = await nextEvent(
      server.port,
      server.token,
      (e) => e.type === 'settings-changed' && e.settings.quality === 61,
      async () => {
        const r = await apiCall(server.port, server.token, 'settingsSet', { quality: 61 });
        assert.equal(r.status, 200);
      },
    );
    assert.match(String(headers['content-type']), /^text\/event-stream/);
    assert.equal(event.settings.quality, 61);
  });

  it('enhances a photo over HTTP, reports the job on SSE and serves only catalog images', async () => {
    // 1. enhance through the API; the job's end arrives on the event stream.
    const { event } = await nextEvent(
      server.port,
      server.token,
      (e) => e.type === 'job' && (e.job.state === 'done' || e.job.state === 'failed'),
      async () => {
        const r = await apiCall(server.port, server.token, 'enhance', { path: photo, outputDir: outDir });
        assert.equal(r.status, 200, r.text);
      },
      30_000,
    );
    const job = event.job as JobSummary;
    assert.equal(job.state, 'done', JSON.stringify(job.items));
    const resultId = job.items[0]!.resultIds[0]!;

    // 2. the catalog lists it.
    const list = (await apiCall(server.port, server.token, 'catalogList', { limit: 10 })).json().result;
    assert.equal(list.total, 1);
    const record = list.results[0];
    assert.equal(record.id, resultId);

    // 3. imageUrl gives /img URLs that serve the right files.
    const resultUrl = (await apiCall(server.port, server.token, 'imageUrl', { kind: 'result', id: resultId })).json().result;
    assert.equal(resultUrl, `/img/result/${resultId}?token=${encodeURIComponent(server.token)}`);
    const result = await request(server.port, { path: resultUrl });
    assert.equal(result.status, 200);
    assert.equal(result.headers['content-type'], 'image/png');
    const meta = await sharp(result.body).metadata();
    assert.deepEqual([meta.width, meta.height], [128, 96]);

    const originalUrl = (await apiCall(server.port, server.token, 'imageUrl', { kind: 'original', id: record.imageId })).json().result;
    const original = await request(server.port, { path: originalUrl });
    assert.deepEqual(original.body, await readFile(photo));

    const thumbUrl = (await apiCall(server.port, server.token, 'imageUrl', { kind: 'thumb', id: resultId })).json().result;
    const thumb = await request(server.port, { path: thumbUrl });
    assert.equal(thumb.status, 200);
    assert.ok((await sharp(thumb.body).metadata()).width! > 0);

    // 4. ids the catalog does not know, kinds that do not exist, paths in the URL, no token.
    assert.equal((await request(server.port, { path: `/img/result/${resultId + 1}?token=${server.token}` })).status, 404);
    assert.equal((await request(server.port, { path: `/img/original/999?token=${server.token}` })).status, 404);
    assert.equal((await request(server.port, { path: `/img/file/1?token=${server.token}` })).status, 404);
    assert.equal((await request(server.port, { path: `/img/original/0?token=${server.token}` })).status, 404);
    const rawPath = await request(server.port, { path: `/img/original/${encodeURIComponent(photo)}?token=${server.token}` });
    assert.equal(rawPath.status, 404);
    const unknown = await apiCall(server.port, server.token, 'imageUrl', { kind: 'result', id: resultId + 1 });
    assert.equal(unknown.status, 404);
    assert.equal((await request(server.port, { path: `/img/result/${resultId}` })).status, 401);
  });

  it('serves the renderer with a strict CSP and falls back to index.html for app routes', async () => {
    const index = await request(server.port, { path: '/' });
    assert.equal(index.status, 200);
    assert.match(index.text, /<title>Duoscale<\/title>/);
    const csp = String(index.headers['content-security-policy']);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-eval/);
    assert.match(csp, /connect-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(index.headers['x-content-type-options'], 'nosniff');
    assert.equal(index.headers['referrer-policy'], 'no-referrer');
    const js = await request(server.port, { path: '/assets/app.js' });
    assert.equal(js.status, 200);
    assert.match(String(js.headers['content-type']), /^text\/javascript/);
    const route = await request(server.port, { path: '/library' });
    assert.equal(route.status, 200);
    assert.match(route.text, /<title>Duoscale/);
    assert.equal((await request(server.port, { path: '/assets/missing.js' })).status, 404);
    assert.equal((await request(server.port, { path: '/favicon.ico' })).status, 204);
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

  it('says how to build the renderer when the static folder is missing', async () => {
    const other = await startServer({ service, staticDir: path.join(dir, 'no-such-dir') });
    try {
      const res = await request(other.port, { path: '/' });
      assert.equal(res.status, 404);
      assert.match(res.text, /npm run build:renderer/);
    } finally {
      await other.close();
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
