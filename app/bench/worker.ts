// One bench measurement in its own process, so its peak RSS (getrusage maxRSS) belongs to it
// alone. Input: one JSON argument; output: one JSON line on stdout.
//   { mode: 'model', modelsDir, userDir, model, tile, photos: [...], outDir, warmup }
//   { mode: 'sharp', photos: [...], outDir }
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { enhanceFile, type ResolvedOptions } from '../enhance.ts';
import { ModelRegistry } from '../models/registry.ts';

interface Spec {
  mode: 'model' | 'sharp';
  photos: string[];
  outDir: string;
  modelsDir?: string;
  userDir?: string;
  model?: string;
  tile?: number;
  warmup?: string;
  threads?: number;
}

const spec = JSON.parse(process.argv[2]) as Spec;
fs.mkdirSync(spec.outDir, { recursive: true });
const timings: number[] = [];
let outputPixels = 0;
let inputPixels = 0;
let tiles = 0;

if (spec.mode === 'sharp') {
  // Same work around the resize as the model path: decode, x4 lanczos3, encode PNG, write.
  for (const photo of spec.photos) {
    const m = await sharp(photo).metadata();
    const t0 = performance.now();
    await sharp(photo).resize(m.width! * 4, m.height! * 4, { kernel: 'lanczos3' }).png().toFile(path.join(spec.outDir, `${path.parse(photo).name}_sharp.png`));
    timings.push(performance.now() - t0);
    inputPixels += m.width! * m.height!;
    outputPixels += m.width! * m.height! * 16;
  }
} else {
  const registry = new ModelRegistry(spec.modelsDir!, spec.userDir!);
  const model = await registry.load(spec.model!);
  const options: ResolvedOptions = {
    model: model.id, scale: 4, format: 'png', quality: 90, naming: '{name}_{model}', tile: spec.tile ?? 0, seed: 0,
    variations: 1, keepMetadata: false, force: true, provider: 'cpu', threads: spec.threads ?? 0,
  };
  if (spec.warmup) await enhanceFile({ input: spec.warmup, outputDir: path.join(spec.outDir, 'warmup'), model, options });
  for (const photo of spec.photos) {
    const t0 = performance.now();
    let n = 0;
    const r = await enhanceFile({ input: photo, outputDir: spec.outDir, model, options, onTile: (_d, total) => { n = total; } });
    timings.push(performance.now() - t0);
    tiles += n;
    inputPixels += r.input.width * r.input.height;
    outputPixels += r.outputs[0].width * r.outputs[0].height;
  }
}

const ms = timings.reduce((a, b) => a + b, 0);
process.stdout.write(JSON.stringify({
  ms, timings, inputPixels, outputPixels, tiles,
  maxRssMB: process.resourceUsage().maxRSS / 1024,
}) + '\n');
