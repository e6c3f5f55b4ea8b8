// Tile planning: pure arithmetic, no onnxruntime and no image library.
//
// Along each axis tiles of `tile` LR pixels are spread evenly so that neighbours overlap by at
// least `overlap` pixels; every tile lies inside the image, so padding (to the model's
// multiple) only ever happens at the image's right/bottom edge, where a tile is smaller than
// `tile` because the image is.

export interface AxisPlan {
  /** Image length along this axis (LR pixels). */
  length: number;
  /** Length of every tile along this axis (= min(tile, length)). */
  size: number;
  /** Tile start offsets, ascending; starts[last] + size === length. */
  starts: number[];
}

export interface Tile {
  index: number;
  row: number;
  col: number;
  /** Region of the LR image read by this tile. */
  x: number;
  y: number;
  w: number;
  h: number;
  /** Size fed to the model: w, h rounded up to the pad multiple (reflect-padded). */
  padW: number;
  padH: number;
}

export interface TilePlan {
  width: number;
  height: number;
  tile: number;
  overlap: number;
  padMultiple: number;
  cols: AxisPlan;
  rows: AxisPlan;
  /** Row-major: all tiles of row 0, then row 1, ... */
  tiles: Tile[];
}

const roundUp = (v: number, m: number): number => Math.ceil(v / m) * m;

export function planAxis(length: number, tile: number, overlap: number): AxisPlan {
  if (!(Number.isInteger(length) && length >= 1)) throw new RangeError(`length must be a positive integer, got ${length}`);
  if (length <= tile) return { length, size: length, starts: [0] };
  const n = Math.ceil((length - overlap) / (tile - overlap));
  const starts: number[] = [];
  for (let i = 0; i < n; i++) starts.push(Math.round((i * (length - tile)) / (n - 1)));
  return { length, size: tile, starts };
}

/**
 * Plans the tiles of a width x height LR image.
 * @param tile tile edge in LR pixels; rounded down to a multiple of padMultiple (at least one multiple)
 * @param overlap minimum overlap between neighbours in LR pixels; clamped to tile/4
 */
export function plan(width: number, height: number, tile: number, overlap: number, padMultiple: number): TilePlan {
  if (!(Number.isInteger(padMultiple) && padMultiple >= 1)) throw new RangeError(`padMultiple must be a positive integer, got ${padMultiple}`);
  const t = Math.max(padMultiple, Math.floor(tile / padMultiple) * padMultiple, 8);
  const ov = Math.max(0, Math.min(Math.floor(overlap), Math.floor(t / 4)));
  const cols = planAxis(width, t, ov);
  const rows = planAxis(height, t, ov);
  const tiles: Tile[] = [];
  rows.starts.forEach((y, row) => {
    cols.starts.forEach((x, col) => {
      tiles.push({
        index: tiles.length, row, col, x, y, w: cols.size, h: rows.size,
        padW: roundUp(cols.size, padMultiple), padH: roundUp(rows.size, padMultiple),
      });
    });
  });
  return { width, height, tile: t, overlap: ov, padMultiple, cols, rows, tiles };
}

/** Rough bytes one tile needs inside the model runtime (activations dominate). */
export function estimateTileBytes(tile: number, opts: { scale: number; noiseChannels: number; params: number }): number {
  const px = tile * tile;
  const io = px * (3 + opts.noiseChannels + 3 * opts.scale * opts.scale) * 4;
  // Activations of a conv net at LR resolution: assume ~256 float channels alive at peak,
  // more for bigger nets. Deliberately pessimistic; shrink-and-retry covers the rest.
  const width = Math.min(1024, Math.max(64, Math.sqrt(opts.params / 9) * 2));
  return io + px * width * 4 * 4 + opts.params * 4;
}

/**
 * The tile size to start with: the model's recommended size, halved until the estimate fits
 * in `budgetBytes` (typically half of the free memory), never below `minTile`.
 */
export function chooseTileSize(opts: {
  recommended: number; padMultiple: number; budgetBytes: number; scale: number; noiseChannels: number; params: number; minTile?: number;
}): number {
  const min = Math.max(opts.padMultiple, opts.minTile ?? 32);
  let t = Math.max(min, Math.floor(opts.recommended / opts.padMultiple) * opts.padMultiple);
  while (t > min && estimateTileBytes(t, opts) > opts.budgetBytes) t = shrinkTile(t, opts.padMultiple, min) ?? min;
  return t;
}

/** Next smaller tile for shrink-and-retry (about half), or null when already at `min`. */
export function shrinkTile(tile: number, padMultiple: number, min = 32): number | null {
  const lo = Math.max(padMultiple, min);
  if (tile <= lo) return null;
  return Math.max(lo, Math.floor(tile / 2 / padMultiple) * padMultiple);
}
