// `duoscale`: the command-line program (bin/duoscale.mjs loads this file through tsx).
//
//   duoscale enhance FILES|DIRS -o OUT [options]      enhance photos (progress on stderr, outputs on stdout)
//   duoscale catalog list|show ID|export              the history
//   duoscale models list|info ID|import FILE.onnx|remove ID|default ID
//   duoscale jobs | resume JOB_ID                     unfinished and past batches
//   duoscale bench [--quick]                          speed and memory (npm run bench)
//   duoscale serve [--port N]                         the web mode
//
// Exit codes: 0 ok, 1 some photo failed (each listed with its reason), 2 bad usage or setup,
// 130 interrupted (Ctrl-C cancels the running batch cleanly).
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { EnhanceOptions, JobSummary, ResultRecord } from '../api.ts';
import { DuoscaleService } from '../service.ts';
import { ProgressView, formatDuration } from './progress.ts';

const HELP = `duoscale - enhance and upscale photos offline (single-step diffusion super-resolution)

Usage:
  duoscale enhance FILES|DIRS -o OUT [options]
  duoscale catalog list [--search TEXT] [--model ID] [--status done|failed|running] [--from DATE] [--to DATE] [--limit N] [--json]
  duoscale catalog show RESULT_ID [--json]
  duoscale catalog export [--csv] [-o FILE]
  duoscale models list [--json] | info ID | import FILE.onnx | remove ID | default ID
  duoscale jobs [--json]
  duoscale resume JOB_ID
  duoscale bench [--quick] [--sizes 256,512] [--tiles 64,128]
  duoscale serve [--port N] [--host 127.0.0.1]

Enhance options:
  -o, --output DIR        output folder (required; created if missing)
  -s, --scale 1|2|4       output scale (default 4)
      --width PX          output width instead of a scale (height follows)
  -m, --model ID          model (default: settings' default, else the shipped general model)
  -f, --format FMT        same|jpeg|png|webp|tiff|avif (default: same as the input)
  -q, --quality N         1-100 for lossy formats
      --naming TEMPLATE   e.g. "{name}_x{scale}_{model}" (tokens: name ext scale model seed date)
      --tile N            tile edge in input pixels (0 = automatic)
      --seed N            noise seed (default 0: same input, same output)
      --variations N      N outputs from seeds seed..seed+N-1
      --restore on|off|R  also repair noise, JPEG artefacts and blur (on = 1; R from 0 to 1;
                          default off); models without a restore input ignore it
  -r, --recursive         walk folders recursively (the folder structure is kept in OUT)
      --provider P        auto|cpu|cuda|dml|coreml
      --threads N         inference threads (0 = automatic)
      --force             redo work the catalog says is already done
      --no-metadata       do not copy ICC/EXIF/XMP into the outputs

Global options:
      --home DIR          user data folder (default $DUOSCALE_HOME or the OS app-data folder)
      --models-dir DIR    folder of shipped models (default $DUOSCALE_MODELS_DIR or resources/models)
  -h, --help              this text
      --version           print the version
`;

class UsageError extends Error {}

type Values = Record<string, string | boolean | string[] | undefined>;

function parse(argv: string[], options: ParseArgsConfig['options']): { values: Values; positionals: string[] } {
  try {
    const r = parseArgs({
      args: argv, allowPositionals: true, strict: true,
      options: { ...options, home: { type: 'string' }, 'models-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
    return { values: r.values as Values, positionals: r.positionals };
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/^TypeError \[[A-Z_]+\]: /, ''));
  }
}

function int(v: unknown, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new UsageError(`--${name} must be a whole number, got "${v}"`);
  return n;
}

function restoreValue(v: string): number {
  if (v === 'on') return 1;
  if (v === 'off') return 0;
  const n = Number(v);
  if (v.trim() === '' || !(n >= 0 && n <= 1)) throw new UsageError(`--restore must be on, off or a number from 0 to 1, got "${v}"`);
  return n;
}

async function openService(values: Values): Promise<DuoscaleService> {
  const s = await DuoscaleService.open({
    home: values.home as string | undefined,
    builtinModels: values['models-dir'] as string | undefined,
  });
  for (const w of s.settings.warnings) process.stderr.write(`warning: ${w}\n`);
  const r = s.recovered;
  if (r.resultsDropped || r.resultsRolledForward || r.jobsInterrupted) {
    process.stderr.write(`Recovered from an interrupted run: ${r.resultsRolledForward} output(s) finished, ` +
      `${r.resultsDropped} partial output(s) removed, ${r.jobsInterrupted} job(s) can be resumed.\n`);
  }
  return s;
}

async function withService<T>(values: Values, fn: (s: DuoscaleService) => Promise<T>): Promise<T> {
  const s = await openService(values);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

// ------------------------------------------------------------------ enhance

async function cmdEnhance(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    output: { type: 'string', short: 'o' }, scale: { type: 'string', short: 's' }, width: { type: 'string' },
    model: { type: 'string', short: 'm' }, format: { type: 'string', short: 'f' }, quality: { type: 'string', short: 'q' },
    naming: { type: 'string' }, tile: { type: 'string' }, seed: { type: 'string' }, variations: { type: 'string' },
    restore: { type: 'string' },
    recursive: { type: 'boolean', short: 'r' }, provider: { type: 'string' }, threads: { type: 'string' },
    force: { type: 'boolean' }, 'no-metadata': { type: 'boolean' },
  });
  if (values.help) { process.stdout.write(HELP); return 0; }
  if (!positionals.length) throw new UsageError('name at least one photo or folder: duoscale enhance photo.jpg -o out/');
  if (!values.output) throw new UsageError('say where the results go with -o OUT (a folder)');
  const options: EnhanceOptions = {};
  if (values.scale !== undefined) options.scale = int(values.scale, 'scale') as 1 | 2 | 4;
  if (values.width !== undefined) options.targetWidth = int(values.width, 'width');
  if (values.model !== undefined) options.model = values.model as string;
  if (values.format !== undefined) options.format = (values.format === 'jpg' ? 'jpeg' : values.format) as EnhanceOptions['format'];
  if (values.quality !== undefined) options.quality = int(values.quality, 'quality');
  if (values.naming !== undefined) options.naming = values.naming as string;
  if (values.tile !== undefined) options.tile = int(values.tile, 'tile');
  if (values.seed !== undefined) options.seed = int(values.seed, 'seed');
  if (values.variations !== undefined) options.variations = int(values.variations, 'variations');
  if (values.restore !== undefined) options.restore = restoreValue(values.restore as string);
  if (values.force) options.force = true;
  if (values['no-metadata']) options.keepMetadata = false;

  const service = await openService(values);
  const view = new ProgressView();
  let job: JobSummary | null = null;
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    view.println('Stopping after the current tile (Ctrl-C again to quit at once)...');
    if (job) void service.cancel({ jobId: job.id });
  };
  process.on('SIGINT', onSigint);
  try {
    const session: Record<string, unknown> = {};
    if (values.provider !== undefined) session.provider = values.provider;
    if (values.threads !== undefined) session.threads = int(values.threads, 'threads');
    if (Object.keys(session).length) service.settings.override(session);
    const off = service.onEvent((e) => view.handle(e));
    const req = {
      inputs: positionals.map((p) => path.resolve(p)),
      outputDir: path.resolve(values.output as string),
      ...(values.recursive ? { recursive: true } : {}),
      ...(Object.keys(options).length ? { options } : {}),
    };
    const t0 = Date.now();
    job = await service.batch(req, { resumeSame: true });
    if (job.done + job.skipped + job.failed > 0) {
      view.println(`Resuming an interrupted batch (${job.done + job.skipped} of ${job.total} already finished).`);
    }
    if (interrupted) await service.cancel({ jobId: job.id });
    const final = await service.waitJob(job.id);
    off();
    view.finish();
    return report(final, (Date.now() - t0) / 1000, interrupted);
  } finally {
    process.off('SIGINT', onSigint);
    await service.close();
  }
}

function report(job: JobSummary, seconds: number, interrupted: boolean): number {
  for (const it of job.items) for (const o of it.outputs) process.stdout.write(`${o}\n`);
  const failed = job.items.filter((i) => i.state === 'failed');
  const parts = [`${job.done} enhanced`];
  if (job.skipped) parts.push(`${job.skipped} already done (skipped; --force redoes them)`);
  if (failed.length) parts.push(`${failed.length} failed`);
  const cancelled = job.items.filter((i) => i.state === 'cancelled').length;
  if (cancelled) parts.push(`${cancelled} cancelled`);
  process.stderr.write(`${parts.join(', ')} in ${formatDuration(seconds)}.\n`);
  if (failed.length) {
    const reasons = new Set(failed.map((f) => f.error ?? f.input));
    if (reasons.size === 1 && failed.length > 1 && !failed[0].error?.includes(failed[0].input)) {
      process.stderr.write(`\nFailed (${failed.length}): ${[...reasons][0]}\n`); // one cause for all (no model, output folder)
    } else {
      process.stderr.write(`\nFailed (${failed.length}):\n`);
      for (const f of failed) process.stderr.write(`  ${f.error ?? f.input}\n`);
    }
  }
  if (interrupted || job.state === 'cancelled') return 130;
  if (job.state === 'failed' && !failed.length) return 1;
  return failed.length ? 1 : 0;
}

// ------------------------------------------------------------------ catalog

const CSV_FIELDS: (keyof ResultRecord)[] = ['id', 'imageId', 'imagePath', 'model', 'status', 'outputPath', 'width', 'height', 'ms', 'createdAt', 'error'];

function csvCell(v: unknown): string {
  const s = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

async function cmdCatalog(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'list') {
    const { values } = parse(rest, {
      search: { type: 'string' }, model: { type: 'string' }, status: { type: 'string' }, from: { type: 'string' },
      to: { type: 'string' }, limit: { type: 'string' }, offset: { type: 'string' }, json: { type: 'boolean' },
    });
    return withService(values, async (s) => {
      const q: Record<string, unknown> = {};
      for (const k of ['search', 'model', 'status', 'from', 'to'] as const) if (values[k] !== undefined) q[k] = values[k];
      if (values.limit !== undefined) q.limit = int(values.limit, 'limit');
      if (values.offset !== undefined) q.offset = int(values.offset, 'offset');
      const r = await s.catalogList(q);
      if (values.json) {
        process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      } else {
        for (const x of r.results) {
          process.stdout.write(`${String(x.id).padStart(5)}  ${x.status.padEnd(7)} ${x.createdAt.slice(0, 19).replace('T', ' ')}  ${x.model}  ` +
            `${x.imagePath} -> ${x.outputPath ?? x.error ?? ''}\n`);
        }
        process.stderr.write(`${r.results.length} of ${r.total} result(s)\n`);
      }
      return 0;
    });
  }
  if (sub === 'show') {
    const { values, positionals } = parse(rest, { json: { type: 'boolean' } });
    const id = int(positionals[0], 'id');
    if (!id) throw new UsageError('catalog show needs a result id (see `duoscale catalog list`)');
    return withService(values, async (s) => {
      const r = s.catalog.getResult(id);
      if (!r) { process.stderr.write(`No result with id ${id}. See \`duoscale catalog list\`.\n`); return 1; }
      const img = await s.catalogImage({ imageId: r.imageId });
      if (values.json) {
        process.stdout.write(JSON.stringify({ result: r, ...img }, null, 2) + '\n');
      } else {
        const i = img.image;
        process.stdout.write(`Image ${i.id}: ${i.path}\n  ${i.width}x${i.height} ${i.format}, ${i.bytes} bytes, sha256 ${i.sha256}\n` +
          `  metadata: ${JSON.stringify(i.metadata)}\n\nResults of this image:\n`);
        for (const x of img.results) {
          process.stdout.write(`${x.id === id ? '*' : ' '}${String(x.id).padStart(5)}  ${x.status.padEnd(7)} ${x.model} seed ${x.params.seed} ` +
            `${x.width ?? '?'}x${x.height ?? '?'} ${x.ms ?? '?'} ms  ${x.outputPath ?? x.error ?? ''}\n      params ${JSON.stringify(x.params)}\n`);
        }
      }
      return 0;
    });
  }
  if (sub === 'export') {
    const { values } = parse(rest, { csv: { type: 'boolean' }, output: { type: 'string', short: 'o' } });
    return withService(values, async (s) => {
      const rows = s.catalog.allResults();
      const text = values.csv
        ? [CSV_FIELDS.join(','), ...rows.map((r) => CSV_FIELDS.map((f) => csvCell(r[f])).join(','))].join('\n') + '\n'
        : JSON.stringify({ exportedAt: new Date().toISOString(), results: rows }, null, 2) + '\n';
      if (values.output) {
        const out = path.resolve(values.output as string);
        const tmp = `${out}.${process.pid}.tmp`;
        fs.writeFileSync(tmp, text);
        fs.renameSync(tmp, out);
        process.stderr.write(`Wrote ${rows.length} result(s) to ${out}\n`);
      } else {
        process.stdout.write(text);
      }
      return 0;
    });
  }
  throw new UsageError(`unknown catalog command "${sub ?? ''}"; use list, show or export`);
}

// ------------------------------------------------------------------ models

async function cmdModels(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parse(rest, { json: { type: 'boolean' } });
  return withService(values, async (s) => {
    if (sub === 'list' || sub === undefined) {
      const list = await s.modelsList();
      if (values.json) {
        process.stdout.write(JSON.stringify(list, null, 2) + '\n');
      } else {
        if (!list.length) process.stderr.write(`No models installed (looked in ${s.paths.builtinModels} and ${s.paths.userModels}).\n`);
        for (const m of list) {
          process.stdout.write(`${m.isDefault ? '*' : ' '} ${m.id.padEnd(28)} ${m.task.padEnd(8)} x${m.scale}  ${(m.params / 1e6).toFixed(2)}M params  ` +
            `${m.builtin ? 'shipped' : 'imported'}${m.experimental ? ', experimental' : ''}\n`);
        }
        for (const r of s.registry.refused()) process.stderr.write(`refused: ${r.reason}\n`);
      }
      return 0;
    }
    const id = positionals[0];
    if (!id) throw new UsageError(`models ${sub} needs ${sub === 'import' ? 'an .onnx file' : 'a model id'}`);
    if (sub === 'info') {
      const info = (await s.modelsList()).find((m) => m.id === id) ?? (await s.registry.get(id));
      if (values.json) process.stdout.write(JSON.stringify(info, null, 2) + '\n');
      else process.stdout.write(`${info.id} (${info.task}, x${info.scale}, ${info.steps} step(s), ${info.params} params)\n${info.path}\n` +
        `metrics: ${JSON.stringify(info.metrics)}\n\n${info.card || '(no model card)'}\n`);
      return 0;
    }
    if (sub === 'import') {
      const info = await s.modelImport({ onnxPath: path.resolve(id) });
      process.stdout.write(`Imported ${info.id} into ${s.paths.userModels}\n`);
      return 0;
    }
    if (sub === 'remove') {
      await s.modelRemove({ id });
      process.stdout.write(`Removed ${id}\n`);
      return 0;
    }
    if (sub === 'default') {
      await s.modelSetDefault({ id });
      process.stdout.write(`Default model: ${id}\n`);
      return 0;
    }
    throw new UsageError(`unknown models command "${sub}"; use list, info, import, remove or default`);
  });
}

// ------------------------------------------------------------------ jobs

async function cmdJobs(argv: string[]): Promise<number> {
  const { values } = parse(argv, { json: { type: 'boolean' } });
  return withService(values, async (s) => {
    const jobs = await s.jobs();
    if (values.json) { process.stdout.write(JSON.stringify(jobs, null, 2) + '\n'); return 0; }
    for (const j of jobs) {
      process.stdout.write(`${j.id}  ${j.state.padEnd(9)} ${j.createdAt.slice(0, 19).replace('T', ' ')}  ` +
        `${j.done} done, ${j.skipped} skipped, ${j.failed} failed of ${j.total}\n`);
    }
    if (!jobs.length) process.stderr.write('No jobs yet.\n');
    return 0;
  });
}

async function cmdResume(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {});
  if (!positionals[0]) throw new UsageError('resume needs a job id (see `duoscale jobs`)');
  const service = await openService(values);
  const view = new ProgressView();
  try {
    const off = service.onEvent((e) => view.handle(e));
    const t0 = Date.now();
    const job = await service.resume({ jobId: positionals[0] });
    const final = job.state === 'queued' || job.state === 'running' ? await service.waitJob(job.id) : job;
    off();
    view.finish();
    return report(final, (Date.now() - t0) / 1000, false);
  } finally {
    await service.close();
  }
}

// ------------------------------------------------------------------ bench / serve

async function cmdBench(argv: string[]): Promise<number> {
  const { runBench } = await import('../bench/main.ts');
  return runBench(argv);
}

async function cmdServe(argv: string[]): Promise<number> {
  const { values } = parse(argv, { port: { type: 'string' }, host: { type: 'string' }, static: { type: 'string' } });
  const service = await openService(values);
  const { startServer } = await import('../server/index.ts');
  const { REPO_ROOT } = await import('../paths.ts');
  const staticDir = path.resolve((values.static as string | undefined) ?? path.join(REPO_ROOT, 'dist', 'renderer'));
  if (!fs.existsSync(path.join(staticDir, 'index.html'))) {
    process.stderr.write(`warning: ${staticDir} has no built renderer; run \`npm run build:renderer\` first (the API works without it).\n`);
  }
  const server = await startServer({
    service, staticDir, port: int(values.port, 'port') ?? 0,
    host: ((values.host as string | undefined) ?? '127.0.0.1') as '127.0.0.1',
  });
  process.stdout.write(`Duoscale web mode: ${server.url}\n(loopback only; Ctrl-C stops it)\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await server.close();
  await service.close();
  return 0;
}

// ------------------------------------------------------------------ entry

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'enhance': return await cmdEnhance(rest);
      case 'catalog': return await cmdCatalog(rest);
      case 'models': return await cmdModels(rest);
      case 'jobs': return await cmdJobs(rest);
      case 'resume': return await cmdResume(rest);
      case 'bench': return await cmdBench(rest);
      case 'serve': return await cmdServe(rest);
      case '--version': case 'version': {
        const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
        process.stdout.write(`duoscale ${pkg.version}\n`);
        return 0;
      }
      case undefined: case '-h': case '--help': case 'help':
        process.stdout.write(HELP);
        return cmd === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${cmd}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`duoscale: ${err.message}\nRun \`duoscale --help\` for usage.\n`);
      return 2;
    }
    process.stderr.write(`duoscale: ${(err as Error).message}\n`);
    if (process.env.DUOSCALE_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    return 2;
  }
}

// Run directly (`node --import tsx app/cli/main.ts ...`); bin/duoscale.mjs calls main() itself.
if (process.argv[1] && /cli[\\/]main\.ts$/.test(process.argv[1])) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
