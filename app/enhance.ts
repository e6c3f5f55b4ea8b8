// enhanceFile: one photo in, one or more enhanced files out.
//
//   probe (header, pixel limit) -> decode (upright, sRGB, 8/16 bit, alpha split off)
//   -> for each seed: tiles through the model (inference/run.ts), rows streamed out
//      -> RGB quantised, box-reduced for 1x/2x, alpha upscaled on its own (centre-aligned
//         bicubic) -> one streamed intermediate PNG -> sharp: resized for a target width,
//         converted back to the original ICC profile, EXIF (orientation 1) and XMP kept
//         -> temp file -> rename.
//
// Decisions:
// - The file's content decides the format; a PNG named .jpg is read as PNG and 'same' output
//   format gives .png. Text or other non-images named .jpg are refused (E_NOT_IMAGE).
// - Output scale 1x/2x are the model's 4x result reduced by an exact box filter (unbiased,
//   pixel-centre aligned). A target width is reached by the largest such box reduction that
//   stays at or above it, then sharp's lanczos3 for the remaining (< 2x) step. Target widths
//   above the model's scale are refused.
// - 16-bit PNG/TIFF inputs give 16-bit output when the output format is PNG or TIFF.
// - Grey inputs give grey output (Rec. 709 luma of the model's RGB; a grey ICC profile is not
//   re-embedded: the grey values are sRGB-encoded). CMYK inputs give RGB output with an sRGB profile.
// - JPEG output of a photo with alpha is flattened on white.
// - Memory grows with the tile size and the output WIDTH, never with the image height: the
//   photo is decoded once, sequentially, into a temp file and read back one band of LR rows
//   at a time (image/io.ts ImageRows; alpha the same way), the model output is blended in one
//   tile-row band of floats (tile*scale rows x output width x 3 x 4 bytes, inference/run.ts),
//   finished rows are quantised into one reused buffer and streamed into the intermediate PNG,
//   and libvips' final encode reads that sequentially. The output image is never held whole
//   (except by the WebP/AVIF encoders, which need the whole frame). `npm run bench` checks it.
//   Disk: the decoded temp copy (W*H*channels bytes, x2 for 16 bit) next to the output.

import * as os from 'node:os';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { EnhanceOptions, Provider } from './api.ts';
import { DuoscaleError, throwIfAborted } from './errors.ts';
import { openImageRows, probeImage, DEFAULT_MAX_INPUT_PIXELS, type ImageInfo } from './image/io.ts';
import { exifWithOrientation1, xmpWithOrientation1 } from './image/metadata.ts';
import { boxReduce, PlaneUpscaler } from './image/resample.ts';
import {
  commitFile, dateToken, encodeOutput, PngStreamWriter, ensureWritableDir, expandName, EXTENSIONS, MAX_DIMENSION,
  resolveFormat, samePath, tempPathFor, type ConcreteFormat,
} from './image/write.ts';
import { runTiles, type RunTilesRequest } from './inference/run.ts';
import { getSession } from './inference/session.ts';
import type { LoadedModel } from './models/registry.ts';
import { quantize } from './tiling/blend.ts';
import { chooseTileSize } from './tiling/plan.ts';

export type { ImageInfo } from './image/io.ts';

/** EnhanceOptions with every field decided (from settings), plus runtime choices. */
export interface ResolvedOptions extends Required<Omit<EnhanceOptions, 'targetWidth' | 'model' | 'restore'>> {
  model: string;
  targetWidth?: number;
  restore?: number;
  provider: Provider;
  /** onnxruntime intra-op threads; 0 = its default. */
  threads: number;
  /** Largest input accepted in pixels (default DEFAULT_MAX_INPUT_PIXELS). */
  maxInputPixels?: number;
}

export interface EnhanceRequest {
  input: string;
  outputDir: string;
  model: LoadedModel;
  options: ResolvedOptions;
  /** Sub-folder under outputDir (keeps a batch's folder structure). */
  relativeDir?: string;
  signal?: AbortSignal;
  /** Tiles done / total, over all variations. */
  onTile?: (done: number, total: number) => void;
  /** Test hook, see RunTilesRequest.simulateOutOfMemory. */
  simulateOutOfMemory?: RunTilesRequest['simulateOutOfMemory'];
}

export interface EnhanceOutput { path: string; seed: number; width: number; height: number }

export interface EnhanceResult {
  outputs: EnhanceOutput[];
  input: ImageInfo;
  ms: number;
  /** Tile edge (LR px) finally used, after any shrink-and-retry. */
  tile: number;
  /** Every tile size tried, first to last. */
  tileSizes: number[];
  provider: string;
  format: ConcreteFormat;
}

export interface OutputPlan {
  format: ConcreteFormat;
  width: number;
  height: number;
  /** Integer box reduction applied to the model output. */
  reduce: number;
  outputs: { path: string; seed: number }[];
}

const MAX_VARIATIONS = 16;

/** Output size for an upright width x height input. */
export function outputSize(width: number, height: number, modelScale: number, opts: Pick<ResolvedOptions, 'scale' | 'targetWidth'>, file?: string):
  { width: number; height: number; reduce: number } {
  if (opts.targetWidth !== undefined && opts.targetWidth !== null && opts.targetWidth > 0) {
    const tw = Math.round(opts.targetWidth);
    if (tw > width * modelScale) {
      throw new DuoscaleError('E_BAD_OPTION', `target width ${tw} px is more than the model's ${modelScale}x (${width * modelScale} px)`, {
        file, hint: `Choose a target width of at most ${width * modelScale} px` });
    }
    let reduce = 1;
    for (const k of [modelScale, 4, 2, 1]) {
      if (modelScale % k === 0 && (width * modelScale) / k >= tw) { reduce = k; break; }
    }
    return { width: tw, height: Math.max(1, Math.round((height * tw) / width)), reduce };
  }
  const scale = opts.scale ?? modelScale;
  if (![1, 2, 4].includes(scale) || modelScale % scale !== 0) {
    throw new DuoscaleError('E_BAD_OPTION', `output scale ${scale} is not possible with a ${modelScale}x model`, {
      file, hint: 'Use scale 1, 2 or 4 (at most the model\'s scale)' });
  }
  return { width: width * scale, height: height * scale, reduce: modelScale / scale };
}

/**
 * Where the outputs of one photo will go, without running anything (the job queue uses it to
 * skip work already on disk).
 */
export function planOutputs(req: { input: string; inputFormat: string; width: number; height: number; outputDir: string;
  relativeDir?: string; modelId: string; modelScale: number; options: ResolvedOptions; date?: Date }): OutputPlan {
  const o = req.options;
  const format = resolveFormat(o.format, req.inputFormat);
  const size = outputSize(req.width, req.height, req.modelScale, o, req.input);
  if (size.width > MAX_DIMENSION[format] || size.height > MAX_DIMENSION[format]) {
    throw new DuoscaleError('E_BAD_OPTION', `the result would be ${size.width}x${size.height}, too large for ${format.toUpperCase()} (max ${MAX_DIMENSION[format]} px a side)`, {
      file: req.input, hint: 'Choose PNG or TIFF output, or a smaller scale' });
  }
  const variations = Math.max(1, Math.min(MAX_VARIATIONS, Math.floor(o.variations ?? 1)));
  const ext = path.extname(req.input);
  const base = path.basename(req.input, ext);
  const dir = path.resolve(req.outputDir, req.relativeDir ?? '');
  const rel = path.relative(path.resolve(req.outputDir), dir);
  if (rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new DuoscaleError('E_BAD_OPTION', `the sub-folder "${req.relativeDir}" leads outside the output folder`, {
      file: req.input, hint: 'Use a relative folder inside the output folder' });
  }
  const scaleToken = o.targetWidth ? `w${Math.round(o.targetWidth)}` : String(o.scale ?? req.modelScale);
  const outputs: { path: string; seed: number }[] = [];
  for (let v = 0; v < variations; v++) {
    const seed = ((o.seed ?? 0) + v) >>> 0;
    const name = expandName(o.naming, { name: base, ext: ext.replace(/^\./, ''), scale: scaleToken, model: req.modelId, seed, date: dateToken(req.date) }, variations > 1);
    outputs.push({ path: path.join(dir, name + EXTENSIONS[format]), seed });
  }
  return { format, width: size.width, height: size.height, reduce: size.reduce, outputs };
}

function interleaveAlpha(colour: Uint8Array | Uint16Array, alpha: Uint8Array | Uint16Array, n: number, cc: 1 | 3): Uint8Array | Uint16Array {
  const out = colour instanceof Uint16Array ? new Uint16Array(n * (cc + 1)) : new Uint8Array(n * (cc + 1));
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < cc; c++) out[i * (cc + 1) + c] = colour[i * cc + c];
    out[i * (cc + 1) + cc] = alpha[i];
  }
  return out;
}

/**
 * Grey output for grey photos: Rec. 709 luma of the (gamma-encoded) RGB the model made. For a
 * grey input the model sees R = G = B, so this only folds away the model's small colour drift.
 */
function toGrey(rgb: Uint8Array | Uint16Array, n: number): Uint8Array | Uint16Array {
  const out = rgb instanceof Uint16Array ? new Uint16Array(n) : new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.round(0.2126 * rgb[i * 3] + 0.7152 * rgb[i * 3 + 1] + 0.0722 * rgb[i * 3 + 2]);
  return out;
}

/**
 * Enhances one photo.
 * @throws {DuoscaleError} for bad input (E_NOT_FOUND, E_EMPTY, E_TRUNCATED, E_NOT_IMAGE, E_CORRUPT,
 *   E_TOO_LARGE), bad output (E_OUTPUT_UNWRITABLE, E_WOULD_OVERWRITE), E_BAD_OPTION, E_CANCELLED,
 *   E_OUT_OF_MEMORY, E_INFERENCE.
 */
export async function enhanceFile(req: EnhanceRequest): Promise<EnhanceResult> {
  const t0 = performance.now();
  const input = path.resolve(req.input);
  const o = req.options;
  const m = req.model.manifest;
  const s = m.scale;
  const maxPx = o.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS;

  const probed = await probeImage(input, maxPx);
  const info = probed.info;
  const outPlan = planOutputs({ input, inputFormat: info.format, width: info.width, height: info.height, outputDir: req.outputDir,
    relativeDir: req.relativeDir, modelId: req.model.id, modelScale: s, options: o });
  const outDir = path.dirname(outPlan.outputs[0].path);
  for (const out of outPlan.outputs) {
    if (await samePath(out.path, input)) {
      throw new DuoscaleError('E_WOULD_OVERWRITE', 'the output would overwrite the original', {
        file: input, hint: 'Choose another output folder or a naming template that changes the name' });
    }
  }
  await ensureWritableDir(outDir);
  throwIfAborted(req.signal, input);

  // One hidden work folder per photo: the decoded input and one intermediate PNG at a time.
  const workDir = path.join(outDir, `.duoscale-${randomBytes(6).toString('hex')}.tmp`);
  await fs.mkdir(workDir);
  const outputs: EnhanceOutput[] = [];
  let lastTileSizes: number[] = [];
  let tile = 0;
  let provider = '';
  let upright: ImageInfo = info;
  try {
    const img = await openImageRows(input, path.join(workDir, 'input.v'), maxPx, probed);
    try {
      upright = { ...img.info, width: img.width, height: img.height };
      const W = img.width;
      const H = img.height;
      const depth16 = img.depth16 && (outPlan.format === 'png' || outPlan.format === 'tiff');
      const session = await getSession(req.model, o.provider, o.threads);
      provider = session.provider;

      tile = o.tile && o.tile > 0 ? o.tile : chooseTileSize({
        recommended: m.tile.size, padMultiple: m.pad_multiple, budgetBytes: os.freemem() * 0.5,
        scale: s, noiseChannels: m.noise_shape.channels, params: m.params });

      const k = outPlan.reduce;
      const f = s / k; // factor of the band files relative to the input
      const bandW = W * f;
      const grey = upright.grayscale;
      const channels = ((grey ? 1 : 3) + (img.hasAlpha ? 1 : 0)) as 1 | 2 | 3 | 4;
      const alphaUp = img.hasAlpha ? new PlaneUpscaler((y0, y1) => img.alphaRows(y0, y1), W, H, f) : null;
      const exif = o.keepMetadata && img.exif ? exifWithOrientation1(img.exif) : undefined;
      const xmp = o.keepMetadata && img.xmp ? xmpWithOrientation1(img.xmp) : undefined;
      const readRows = (y0: number, y1: number) => img.rows(y0, y1).rgb;
      // Quantised rows of the largest band, reused for every band.
      let qbuf: Uint8Array | Uint16Array | null = null;

      let variationIndex = 0;
      for (const target of outPlan.outputs) {
        const tmpPath = tempPathFor(target.path);
        const source = path.join(workDir, 'upscaled.png');
        const writer = new PngStreamWriter({ file: source, width: bandW, height: H * f, channels, depth16, exif });
        try {
          const sink = {
            rows: async (data: Float32Array, y0: number, y1: number) => {
              const n = y1 - y0;
              if (!qbuf || qbuf.length < data.length) qbuf = depth16 ? new Uint16Array(data.length) : new Uint8Array(data.length);
              let rgb = quantize(data, depth16, qbuf.subarray(0, data.length));
              rgb = boxReduce(rgb, W * s, n, 3, k);
              const rows = n / k;
              const px = rows * bandW;
              const colour = grey ? toGrey(rgb, px) : rgb;
              const samples = alphaUp ? interleaveAlpha(colour, toDepth(alphaUp.rows(y0 / k, y1 / k), depth16), px, grey ? 1 : 3) : colour;
              await writer.push(samples, rows);
            },
            reset: () => writer.reset(),
          };
          const v = variationIndex;
          const r = await runTiles({
            session, rows: readRows, width: W, height: H, channels: 3, seed: target.seed, restore: o.restore, tile, overlap: m.tile.overlap,
            sink, signal: req.signal, file: input, simulateOutOfMemory: req.simulateOutOfMemory,
            onTile: (done, total) => req.onTile?.(v * total + done, total * outPlan.outputs.length),
          });
          lastTileSizes = r.tileSizes;
          await writer.finish();
          throwIfAborted(req.signal, input);
          let iccFile: string | undefined;
          if (o.keepMetadata && img.icc) {
            iccFile = path.join(workDir, 'profile.icc');
            await fs.writeFile(iccFile, img.icc);
          }
          try {
            await encodeOutput({
              source, width: bandW, height: H * f, outWidth: outPlan.width, outHeight: outPlan.height,
              format: outPlan.format, quality: o.quality, depth16, grayscale: upright.grayscale, hasAlpha: img.hasAlpha,
              keepMetadata: o.keepMetadata, icc: img.icc, iccKind: upright.iccKind, iccFile, xmp, tmpPath,
            });
          } catch (e) {
            throw new DuoscaleError('E_OUTPUT_UNWRITABLE', `could not encode the result as ${outPlan.format} (${(e as Error).message.split('\n')[0]})`, {
              file: target.path, hint: 'Check free disk space, or choose another output format', cause: e });
          }
          await commitFile(tmpPath, target.path);
          outputs.push({ path: target.path, seed: target.seed, width: outPlan.width, height: outPlan.height });
        } finally {
          writer.abort();
          await fs.rm(source, { force: true });
          await fs.rm(tmpPath, { force: true });
        }
        variationIndex++;
      }
    } finally {
      img.close();
    }
  } finally {
    await fs.rm(workDir, { recursive: true, force: true });
  }
  return {
    outputs, input: upright, ms: performance.now() - t0, tile: lastTileSizes[lastTileSizes.length - 1] ?? tile,
    tileSizes: lastTileSizes, provider, format: outPlan.format,
  };
}

function toDepth(a: Uint8Array | Uint16Array, depth16: boolean): Uint8Array | Uint16Array {
  if (depth16 === a instanceof Uint16Array) return a;
  if (depth16) { const o = new Uint16Array(a.length); for (let i = 0; i < a.length; i++) o[i] = a[i] * 257; return o; }
  const o = new Uint8Array(a.length); for (let i = 0; i < a.length; i++) o[i] = Math.round(a[i] / 257); return o;
}
