// DEV HARNESS ONLY — not used by the e2e suite. An in-memory stand-in for DuoscaleService
// so the renderer can be looked at before the real engine exists (`npx tsx
// e2e/harness/dev-serve.ts`). Images are drawn with sharp; "enhancing" is a timed fake.
// The real tests (e2e/*.spec.ts) run against `duoscale serve`.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type {
  DuoscaleApi, DuoscaleEvent, ImageRecord, JobSummary, ModelInfo, ResultRecord, Settings,
} from '../../app/api.ts';

async function photo(file: string, w: number, h: number, hue: number) {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}">
    <defs><linearGradient id="g" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="hsl(${hue},55%,70%)"/><stop offset="1" stop-color="hsl(${hue + 30},40%,25%)"/></linearGradient></defs>
    <rect width="100%" height="100%" fill="url(#g)"/><circle cx="${w * 0.7}" cy="${h * 0.3}" r="${h * 0.12}" fill="#fff6d0"/>
    <path d="M0 ${h * 0.75} L${w * 0.3} ${h * 0.45} L${w * 0.55} ${h * 0.7} L${w * 0.8} ${h * 0.5} L${w} ${h * 0.72} L${w} ${h} L0 ${h}Z" fill="hsl(${hue + 60},25%,18%)"/>
    <text x="${w * 0.05}" y="${h * 0.92}" font-size="${h * 0.06}" fill="#ddd" font-family="DejaVu Sans">Duoscale 1234</text></svg>`;
  await sharp(Buffer.from(svg)).jpeg({ quality: 70 }).toFile(file);
}

export async function createFakeService(dir: string) {
  mkdirSync(dir, { recursive: true });
  const listeners = new Set<(e: DuoscaleEvent) => void>();
  const emit = (e: DuoscaleEvent) => { for (const l of listeners) l(e); };
  const images: ImageRecord[] = [];
  const results: ResultRecord[] = [];
  const jobs = new Map<string, JobSummary>();
  let settings: Settings = {
    provider: 'auto', threads: 0, tile: 0, format: 'same', quality: 92, naming: '{name}_x{scale}_{model}',
    keepMetadata: true, repair: false, outputDir: path.join(dir, 'out'), defaultModel: 'duoscale-general-x4',
  };
  const models: ModelInfo[] = [
    { id: 'duoscale-general-x4', name: 'Duoscale General ×4', task: 'general', scale: 4, steps: 1, params: 4_812_345, builtin: true, isDefault: true,
      path: '/opt/duoscale/resources/models/duoscale-general-x4.onnx', card: '# Duoscale General x4\nTrained on 2,000 photos for 6 hours on CPU.', metrics: { psnr_y: 26.41, ssim: 0.7712, lpips: 0.2213, bicubic_psnr_y: 25.1 } },
    { id: 'my-faces-x4', name: 'My faces ×4', task: 'face', scale: 4, steps: 1, params: 4_812_345, builtin: false, isDefault: false,
      path: path.join(dir, 'models/my-faces-x4.onnx'), card: '', metrics: { psnr_y: 28.02 }, experimental: true },
  ];
  const files = new Map<string, string>();
  let nextId = 1;
  const names = ['IMG_0412.jpg', 'DSC_2231.jpg', 'harbour-dusk.jpg', 'portrait_anna.jpg', 'P1020345.jpg', 'forest-path.jpg'];
  for (let i = 0; i < names.length; i++) {
    const orig = path.join(dir, names[i]);
    await photo(orig, 320, 213, 20 + i * 40);
    const out = path.join(dir, names[i].replace('.jpg', '_x4.jpg'));
    await sharp(orig).resize(1280, 852, { kernel: 'lanczos3' }).sharpen().toFile(out);
    const imageId = nextId++;
    images.push({ id: imageId, path: `/home/anna/Pictures/2024/${names[i]}`, sha256: 'x', width: 320, height: 213, format: 'jpeg', bytes: 48000,
      metadata: { exif: true, xmp: false, hasAlpha: false }, addedAt: new Date(Date.now() - i * 86400e3).toISOString() });
    files.set(`original:${imageId}`, orig); files.set(`thumb:${imageId}`, orig);
    const failed = i === 4;
    const rid = nextId++;
    results.push({ id: rid, imageId, imagePath: images[images.length - 1].path, model: 'duoscale-general-x4', params: { seed: 42 + i, scale: 4 },
      outputPath: failed ? null : `/home/anna/Pictures/enhanced/${names[i].replace('.jpg', '_x4_duoscale-general-x4.jpg')}`,
      status: failed ? 'failed' : 'done', error: failed ? `/home/anna/Pictures/2024/${names[i]} is truncated (the file ends after 18 KB). Copy it again from the camera card, then retry.` : null,
      width: failed ? null : 1280, height: failed ? null : 852, ms: 4210 + i * 300, createdAt: new Date(Date.now() - i * 86400e3).toISOString() });
    if (!failed) files.set(`result:${rid}`, out);
    if (i === 0) {
      const rid2 = nextId++;
      const out2 = path.join(dir, 'var2.jpg');
      await sharp(orig).resize(1280, 852, { kernel: 'cubic' }).modulate({ brightness: 1.05 }).toFile(out2);
      files.set(`result:${rid2}`, out2);
      results.push({ ...results[results.length - 1], id: rid2, params: { seed: 43, scale: 4 }, outputPath: out2 });
    }
  }

  function runJob(job: JobSummary) {
    let i = 0; let tile = 0; const tiles = 6;
    const tick = setInterval(() => {
      if (job.state === 'paused') return;
      if (job.state === 'cancelled') { clearInterval(tick); return; }
      const item = job.items[i];
      if (!item) { job.state = job.failed ? 'failed' : 'done'; job.progress = 1; job.etaSeconds = null; emit({ type: 'job', job: structuredClone(job) }); clearInterval(tick); return; }
      job.state = 'running'; item.state = 'running'; tile++;
      emit({ type: 'tile', jobId: job.id, input: item.input, tile, tiles, etaSeconds: 3 });
      if (tile >= tiles) {
        tile = 0;
        if (item.input.includes('broken')) { item.state = 'failed'; item.error = `${item.input} is not an image (it starts with "PK", a ZIP archive). Remove it from the batch or export it as JPEG, PNG or TIFF.`; job.failed++; }
        else { item.state = 'done'; job.done++; item.outputs = [item.input + '_x4.jpg']; }
        i++;
      }
      job.progress = (i + tile / tiles) / job.total; job.etaSeconds = (job.total - i) * 1.5;
      emit({ type: 'job', job: structuredClone(job) });
    }, 250);
  }

  const api: DuoscaleApi & { imagePath(i: { kind: string; id: number }): Promise<string | null> } = {
    async enhance(input) { return api.batch({ inputs: [input.path], outputDir: input.outputDir ?? settings.outputDir, options: input.options }); },
    async batch(req) {
      const id = `job-${nextId++}`;
      const inputs = req.inputs.flatMap((p) => (p.endsWith('/') || !p.includes('.') ? [1, 2, 3, 4, 5].map((n) => `${p}/photo-${n}.jpg`) : [p]));
      const job: JobSummary = { id, state: 'queued', createdAt: new Date().toISOString(), total: inputs.length, done: 0, failed: 0, skipped: 0, progress: 0, etaSeconds: null,
        items: inputs.map((p) => ({ input: p, state: 'pending', outputs: [], resultIds: [] })) };
      jobs.set(id, job); runJob(job); return structuredClone(job);
    },
    async jobs() { return [...jobs.values()].map((j) => structuredClone(j)); },
    async pause({ jobId }) { const j = jobs.get(jobId)!; j.state = 'paused'; emit({ type: 'job', job: structuredClone(j) }); return structuredClone(j); },
    async resume({ jobId }) { const j = jobs.get(jobId)!; j.state = 'running'; emit({ type: 'job', job: structuredClone(j) }); return structuredClone(j); },
    async cancel({ jobId }) { const j = jobs.get(jobId)!; j.state = 'cancelled'; for (const it of j.items) if (it.state === 'pending' || it.state === 'running') it.state = 'cancelled'; emit({ type: 'job', job: structuredClone(j) }); return structuredClone(j); },
    async catalogList(q) {
      let r = results.filter((x) => (!q.search || x.imagePath.toLowerCase().includes(q.search.toLowerCase())) && (!q.model || x.model === q.model) && (!q.status || x.status === q.status));
      const total = r.length; r = r.slice(q.offset ?? 0, (q.offset ?? 0) + (q.limit ?? 100)); return { results: r, total };
    },
    async catalogImage({ imageId }) { const image = images.find((i) => i.id === imageId); if (!image) throw new Error(`No image ${imageId}`); return { image, results: results.filter((r) => r.imageId === imageId) }; },
    async deleteResult({ resultId }) { const i = results.findIndex((r) => r.id === resultId); if (i >= 0) results.splice(i, 1); emit({ type: 'catalog-changed' }); },
    async imageUrl({ kind, id }) { return `/img/${kind}/${id}`; },
    async imagePath({ kind, id }) { return files.get(`${kind}:${id}`) ?? null; },
    async revealInFolder() {},
    async modelsList() { return models.map((m) => ({ ...m, isDefault: m.id === settings.defaultModel })); },
    async modelImport() { throw new Error('/tmp/x.onnx has no manifest next to it (expected /tmp/x.json). Export the model with the Duoscale trainer, which writes both files.'); },
    async modelRemove() {},
    async modelSetDefault({ id }) { settings = { ...settings, defaultModel: id }; return settings; },
    async settingsGet() { return settings; },
    async settingsSet(patch) { settings = { ...settings, ...patch }; emit({ type: 'settings-changed', settings }); return settings; },
    async trainingStart() { throw new Error('not in the harness'); },
    async trainingStop() { throw new Error('not in the harness'); },
    async trainingList() { return []; },
    async pickFiles() { return null; },
    onEvent(l) { listeners.add(l); return () => listeners.delete(l); },
  };
  return api;
}
