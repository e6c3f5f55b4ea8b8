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
// - Memory (issue 3: "peak memory grows with the tile size, not with the image size"). What
//   the engine holds per photo: a fixed part (runtime, model, libvips), one tile-row band of
//   floats (tile*4 rows x output width x 12 bytes) plus its quantised copy, and row bands of
//   the decoded input (the decoded photo lives in a temp file, see image/io.ts). So peak RSS
//   depends on the tile size and the output WIDTH, and not on the height. The checks:
//   * height (pass/fail): the first model at one tile size enhances photos of one width and
//     growing height (x4), each in a fresh child process; peak RSS at the tallest must be within
//     RSS_HEIGHT_RATIO_LIMIT of the shortest. Printed next to it: what holding the decoded
//     input, the 8-bit output or its float accumulator whole would have added, i.e. what the
//     check can see: at bench sizes the 8-bit output (28 MB at the full sizes) and its float
//     accumulator, not the decoded input (a few MB, within run-to-run noise of +-5 MB; that
//     one is covered by design and by image/io.ts's ImageRows tests). The shortest photo is
//     big enough for V8 to have started collecting the dead per-tile output arrays that
//     onnxruntime returns (a fixed allowance of some tens of MB); smaller photos read low.
//     Measured here (2 cores, tile 64, width 256): 512 -> 3072 rows: 188 -> 179 MB, noise.
//   * width (reported): photos of one height and growing width; the slope in MB per 1000
//     output columns is compared with the band's size and extrapolated to a 24 MP photo.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { makePhoto } from '../jobs/test-photos.ts';
import { ModelRegistry } from '../models/registry.ts';
import { REPO_ROOT, resolvePaths } from '../paths.ts';

/**
 * Peak RSS at the tallest photo / at the shortest (same width). Run-to-run noise is about
 * +-5 MB of ~180 MB; holding the 8-bit output whole would add 28 MB at the default sizes.
 */
export const RSS_HEIGHT_RATIO_LIMIT = 1.1;

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
      quick: { type: 'boolean' }, models: { type: 'string' }, tiles: { type: 'string' }, sizes: { type: 'string' }, widths: { type: 'string' },
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
  // The shortest photo must already be past V8's first collections of dead tile outputs (see
  // the header), hence >= 512 rows; x4 in height.
  const rssSizes = (values.sizes ?? (quick ? '256x512,256x2048' : '384x512,384x1024,384x2048')).split(',').map(parseSize);
  if (rssSizes.length < 2 || rssSizes.some(([w]) => w !== rssSizes[0][0])) {
    throw new Error('bench: --sizes needs at least two sizes of one width (the height check compares heights)');
  }
  const widthHeight = 384;
  const rssWidths = (values.widths ?? (quick ? '256,512' : '256,512,1024')).split(',').map(Number);
  if (rssWidths.length < 2 || rssWidths.some((w) => !(Number.isInteger(w) && w >= 16))) throw new Error('bench: --widths needs at least two widths (integers >= 16)');
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
    const scale = model.scale;
    const measure = async (w: number, h: number, tag: string) => {
      const photo = await makePhoto(path.join(work, 'rss', `${tag}${w}x${h}.png`), w, h, 7);
      const r = await runWorker({ mode: 'model', modelsDir, userDir: paths.userModels, model: model.id, tile, photos: [photo], warmup, threads, outDir: path.join(work, 'out-rss') });
      fs.rmSync(path.join(work, 'out-rss'), { recursive: true, force: true });
      return { size: `${w}x${h}`, width: w, height: h, outputMP: r.outputPixels / 1e6, peakRssMB: r.maxRssMB };
    };
    const MB = 1024 * 1024;

    process.stdout.write(`\nPeak RSS as the photo grows in HEIGHT (${model.id}, tile ${tile}, width ${rssSizes[0][0]}, one process per size):\n`);
    const rss: Awaited<ReturnType<typeof measure>>[] = [];
    for (const [w, h] of rssSizes) {
      const r = await measure(w, h, 'h');
      rss.push(r);
      process.stdout.write(`  ${r.size.padEnd(10)} -> ${fmt(r.outputMP, 2).padStart(6)} MP out   peak RSS ${fmt(r.peakRssMB, 0)} MB\n`);
    }
    const first = rss[0];
    const last = rss[rss.length - 1];
    const ratio = last.peakRssMB / first.peakRssMB;
    const pixelRatio = last.outputMP / first.outputMP;
    const flat = ratio <= RSS_HEIGHT_RATIO_LIMIT;
    const addedOut = (last.outputMP - first.outputMP) * 1e6;
    const bytesPerOutPixel = ((last.peakRssMB - first.peakRssMB) * MB) / addedOut;
    // What the check can see: the extra memory if each of these were held whole at the tallest size.
    const wouldAdd = { input: (addedOut / (scale * scale)) * 3 / MB, output8: (addedOut * 3) / MB, float: (addedOut * 12) / MB };
    process.stdout.write(`Height check: peak RSS tallest/shortest ${fmt(ratio, 3)} for ${fmt(pixelRatio, 0)}x the pixels -> ` +
      `${flat ? 'FLAT (pass' : 'GROWS (fail'}: limit ${RSS_HEIGHT_RATIO_LIMIT}, i.e. +${fmt(first.peakRssMB * (RSS_HEIGHT_RATIO_LIMIT - 1), 0)} MB)\n`);
    process.stdout.write(`  ${fmt(last.peakRssMB - first.peakRssMB, 1)} MB, ${fmt(bytesPerOutPixel)} bytes per added output pixel. Holding these whole would have added: ` +
      `decoded input ${fmt(wouldAdd.input, 0)} MB, 8-bit output ${fmt(wouldAdd.output8, 0)} MB, float output ${fmt(wouldAdd.float, 0)} MB\n`);

    process.stdout.write(`\nPeak RSS as the photo grows in WIDTH (height ${widthHeight}; reported, not checked: the row band spans the output width):\n`);
    const wide: Awaited<ReturnType<typeof measure>>[] = [];
    for (const w of rssWidths) {
      const r = await measure(w, widthHeight, 'w');
      wide.push(r);
      process.stdout.write(`  ${r.size.padEnd(10)} -> ${fmt(r.outputMP, 2).padStart(6)} MP out   peak RSS ${fmt(r.peakRssMB, 0)} MB\n`);
    }
    const w0 = wide[0];
    const w1 = wide[wide.length - 1];
    const mbPer1000Cols = ((w1.peakRssMB - w0.peakRssMB) / ((w1.width - w0.width) * scale)) * 1000;
    // The band: tile*scale rows of floats (12 B/px) + their quantised copy (3 B) + the PNG row buffer (3 B).
    const bandMbPer1000Cols = (tile * scale * (12 + 3 + 3) * 1000) / MB;
    const photo24 = 6000;
    const est24 = w0.peakRssMB + Math.max(0, mbPer1000Cols) * ((photo24 - w0.width) * scale) / 1000;
    process.stdout.write(`Width: ${fmt(mbPer1000Cols, 1)} MB per 1000 output columns (the band at tile ${tile}: ${fmt(bandMbPer1000Cols, 1)} MB); ` +
      `a 24 MP photo (6000x4000, any height) at tile ${tile} -> about ${fmt(est24, 0)} MB peak\n`);

    if (values.json) {
      fs.writeFileSync(values.json, JSON.stringify({
        date: new Date().toISOString(), quick, cpus: cpu.length, cpuModel: cpu[0]?.model, node: process.version,
        photos: { count: setCount, size: setSize }, baseline: { kernel: 'lanczos3', outputMPs: baseMps, peakRssMB: base.maxRssMB },
        rows, rss: { model: model.id, tile, sizes: rss, ratio, pixelRatio, limit: RSS_HEIGHT_RATIO_LIMIT, flat, bytesPerOutPixel, wouldAddMB: wouldAdd },
        width: { height: widthHeight, sizes: wide, mbPer1000OutputColumns: mbPer1000Cols, bandMbPer1000OutputColumns: bandMbPer1000Cols, estimated24MpPeakMB: est24 },
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
