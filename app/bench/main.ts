// `npm run bench` / `duoscale bench`: how fast the models enhance photos and how much memory
// they take, measured on this machine against a baseline measured in the same run.
//
// - Photos: a fixed set generated here (deterministic, photo-like: gradients, edges, texture).
// - Baseline: sharp's lanczos3 x4 resize of the same photos (decode + resize + PNG encode),
//   so "x baseline" = model output MP/s divided by sharp's output MP/s. Absolute numbers vary
//   between machines; the ratio is what to compare.
// - Throughput per model and tile size: every configuration runs in its own child process
//   (session warmed up on a small photo first), reporting output megapixels per second and the
//   process's peak RSS.
// - Memory flatness: the first model at one tile size enhances photos of growing size, each in
//   a fresh child process; the check passes when peak RSS at the largest size is within
//   RSS_RATIO_LIMIT of the smallest although the output has many times the pixels.
//
// Options: --quick (smaller set, for CI), --models a,b  --tiles 64,128  --sizes 128x96,256x192
//          --json FILE (write the results), --threads N
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { makePhoto } from '../jobs/test-photos.ts';
import { ModelRegistry } from '../models/registry.ts';
import { REPO_ROOT, resolvePaths } from '../paths.ts';

export const RSS_RATIO_LIMIT = 1.5;

interface WorkerResult { ms: number; timings: number[]; inputPixels: number; outputPixels: number; tiles: number; maxRssMB: number }

const WORKER = path.join(path.dirname(new URL(import.meta.url).pathname), 'worker.ts');

function runWorker(spec: Record<string, unknown>): Promise<WorkerResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WORKER, JSON.stringify(spec)], {
      cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || !line.startsWith('{')) {
        reject(new Error(`bench worker failed (${code}): ${err.trim().split('\n').slice(-5).join('\n')}`));
        return;
      }
      resolve(JSON.parse(line));
    });
  });
}

const parseSize = (s: string): [number, number] => {
  const m = /^(\d+)x(\d+)$/.exec(s.trim());
  if (!m) throw new Error(`bench: size "${s}" must look like 256x192`);
  return [Number(m[1]), Number(m[2])];
};

const fmt = (n: number, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : '-');

export async function runBench(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv, strict: true, allowPositionals: false,
    options: {
      quick: { type: 'boolean' }, models: { type: 'string' }, tiles: { type: 'string' }, sizes: { type: 'string' },
      json: { type: 'string' }, threads: { type: 'string' }, home: { type: 'string' }, 'models-dir': { type: 'string' },
    },
  });
  const quick = !!values.quick;
  const paths = resolvePaths({ home: values.home, builtinModels: values['models-dir'] });
  let modelsDir = paths.builtinModels;
  let registry = new ModelRegistry(modelsDir, paths.userModels);
  let models = await registry.list();
  if (!models.length) {
    modelsDir = path.join(REPO_ROOT, 'app', 'test', 'fixtures');
    registry = new ModelRegistry(modelsDir, paths.userModels);
    models = await registry.list();
    process.stdout.write(`(no models in ${paths.builtinModels}; using the test fixture models in ${modelsDir})\n`);
  }
  if (values.models) {
    const want = values.models.split(',');
    models = models.filter((m) => want.includes(m.id));
    if (!models.length) throw new Error(`bench: none of the models ${want.join(', ')} is installed`);
  }
  const tiles = (values.tiles ?? (quick ? '32,64' : '32,64,128')).split(',').map(Number);
  const setSize: [number, number] = quick ? [160, 120] : [256, 192];
  const setCount = quick ? 2 : 3;
  const rssSizes = (values.sizes ?? (quick ? '128x96,256x192,384x288' : '160x120,384x288,768x576')).split(',').map(parseSize);
  const threads = values.threads ? Number(values.threads) : 0;

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'duoscale-bench-'));
  try {
    const photos: string[] = [];
    for (let i = 0; i < setCount; i++) photos.push(await makePhoto(path.join(work, 'set', `photo${i}.png`), setSize[0], setSize[1], 100 + i));
    const warmup = await makePhoto(path.join(work, 'warmup.png'), 32, 24, 99);
    const cpu = os.cpus();
    process.stdout.write(`Duoscale bench${quick ? ' (--quick)' : ''}: ${cpu.length} CPU(s) ${cpu[0]?.model ?? ''}, node ${process.version}, provider cpu\n`);
    process.stdout.write(`Photos: ${setCount} generated photos of ${setSize[0]}x${setSize[1]}, x4 output as PNG\n\n`);

    const base = await runWorker({ mode: 'sharp', photos, outDir: path.join(work, 'out-sharp') });
    const baseMps = base.outputPixels / 1e6 / (base.ms / 1000);
    process.stdout.write(`Baseline sharp lanczos3 x4 (decode+resize+encode): ${fmt(baseMps)} output MP/s, peak RSS ${fmt(base.maxRssMB, 0)} MB\n\n`);

    const rows: Record<string, unknown>[] = [];
    process.stdout.write(`${'model'.padEnd(26)} ${'tile'.padStart(5)} ${'tiles'.padStart(6)} ${'out MP/s'.padStart(9)} ${'x sharp'.padStart(9)} ${'s/photo'.padStart(8)} ${'peak RSS'.padStart(9)}\n`);
    for (const m of models) {
      for (const tile of tiles) {
        const r = await runWorker({
          mode: 'model', modelsDir, userDir: paths.userModels, model: m.id, tile, photos, warmup, threads,
          outDir: path.join(work, `out-${m.id}-${tile}`),
        });
        const mps = r.outputPixels / 1e6 / (r.ms / 1000);
        rows.push({ model: m.id, tile, tiles: r.tiles, outputMPs: mps, ratioToSharp: mps / baseMps, secondsPerPhoto: r.ms / 1000 / photos.length, peakRssMB: r.maxRssMB });
        process.stdout.write(`${m.id.padEnd(26)} ${String(tile).padStart(5)} ${String(r.tiles).padStart(6)} ${fmt(mps, 3).padStart(9)} ` +
          `${(fmt(mps / baseMps, 4) + 'x').padStart(9)} ${fmt(r.ms / 1000 / photos.length).padStart(8)} ${(fmt(r.maxRssMB, 0) + ' MB').padStart(9)}\n`);
      }
    }

    const model = models[0];
    const tile = tiles[Math.min(1, tiles.length - 1)];
    process.stdout.write(`\nPeak RSS as the photo grows (${model.id}, tile ${tile}, one process per size):\n`);
    const rss: { size: string; outputMP: number; peakRssMB: number }[] = [];
    for (const [w, h] of rssSizes) {
      const photo = await makePhoto(path.join(work, 'rss', `p${w}x${h}.png`), w, h, 7);
      const r = await runWorker({ mode: 'model', modelsDir, userDir: paths.userModels, model: model.id, tile, photos: [photo], warmup, threads, outDir: path.join(work, 'out-rss') });
      rss.push({ size: `${w}x${h}`, outputMP: r.outputPixels / 1e6, peakRssMB: r.maxRssMB });
      process.stdout.write(`  ${`${w}x${h}`.padEnd(10)} -> ${fmt(r.outputPixels / 1e6, 2).padStart(6)} MP out   peak RSS ${fmt(r.maxRssMB, 0)} MB\n`);
    }
    const ratio = rss[rss.length - 1].peakRssMB / rss[0].peakRssMB;
    const pixelRatio = rss[rss.length - 1].outputMP / rss[0].outputMP;
    const flat = ratio <= RSS_RATIO_LIMIT;
    // Growth per output pixel: what the ratio hides when the test sizes are small.
    const first = rss[0];
    const last = rss[rss.length - 1];
    const bytesPerOutPixel = ((last.peakRssMB - first.peakRssMB) * 1024 * 1024) / ((last.outputMP - first.outputMP) * 1e6);
    process.stdout.write(`Peak RSS ratio largest/smallest: ${fmt(ratio)} for ${fmt(pixelRatio, 0)}x the pixels -> ` +
      `${flat ? 'FLAT (pass' : 'GROWS (fail'}: limit ${RSS_RATIO_LIMIT})\n`);
    // Row bands grow with the output width (sqrt of the pixels), so this average overstates a linear trend.
    process.stdout.write(`Growth: ${fmt(bytesPerOutPixel)} bytes of RSS per added output pixel ` +
      `(holding the whole 8-bit RGB output would cost 3; its float accumulator 12)\n`);

    if (values.json) {
      fs.writeFileSync(values.json, JSON.stringify({
        date: new Date().toISOString(), quick, cpus: cpu.length, cpuModel: cpu[0]?.model, node: process.version,
        photos: { count: setCount, size: setSize }, baseline: { kernel: 'lanczos3', outputMPs: baseMps, peakRssMB: base.maxRssMB },
        rows, rss: { model: model.id, tile, sizes: rss, ratio, pixelRatio, limit: RSS_RATIO_LIMIT, flat, bytesPerOutPixel },
      }, null, 2) + '\n');
    }
    return flat ? 0 : 1;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && /bench[\\/]main\.ts$/.test(process.argv[1])) {
  runBench(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err) => {
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    process.exitCode = 2;
  });
}
