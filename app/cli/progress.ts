// Progress display for `duoscale enhance` on stderr.
// On a terminal: one bar redrawn in place (throttled). Elsewhere (pipes, CI, tests): one plain
// line per finished photo, so logs stay readable.
import path from 'node:path';
import type { DuoscaleEvent, JobSummary } from '../api.ts';

export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '--';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export function renderBar(fraction: number, width: number): string {
  const f = Math.min(1, Math.max(0, fraction));
  const full = Math.floor(f * width);
  return '#'.repeat(full) + (full < width ? '>' : '') + '.'.repeat(Math.max(0, width - full - 1));
}

export class ProgressView {
  private last = 0;
  private lineShown = false;
  private tile = { input: '', done: 0, total: 0 };
  private job: JobSummary | null = null;

  constructor(
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly tty = !!process.stderr.isTTY && process.env.TERM !== 'dumb',
  ) {}

  handle(e: DuoscaleEvent): void {
    if (e.type === 'job') {
      this.job = e.job;
      this.draw();
    } else if (e.type === 'tile') {
      this.tile = { input: e.input, done: e.tile, total: e.tiles };
      this.draw();
    } else if (e.type === 'item') {
      const it = e.item;
      if (it.state === 'running' || it.state === 'pending') return;
      const n = this.job ? `[${this.job.done + this.job.failed + this.job.skipped + 1}/${this.job.total}] ` : '';
      const what = it.state === 'done' ? `done     ${it.input} -> ${it.outputs.join(', ')}`
        : it.state === 'skipped' ? `skipped  ${it.input} (identical result exists: ${it.outputs.join(', ')}; --force redoes it)`
          : it.state === 'failed' ? `FAILED   ${it.error ?? it.input}`
            : `${it.state.padEnd(8)} ${it.input}`;
      this.println(`${n}${what}`, false); // the bar is redrawn by the job event that follows
    }
  }

  private draw(force = false): void {
    if (!this.tty || !this.job) return;
    const t = Date.now();
    if (!force && t - this.last < 100) return;
    this.last = t;
    const j = this.job;
    const cols = Math.max(40, (this.out.columns || 80) - 1);
    const head = `${renderBar(j.progress, 24)} ${String(Math.round(j.progress * 100)).padStart(3)}% ` +
      `${j.done + j.skipped + j.failed}/${j.total} ETA ${formatDuration(j.etaSeconds)}`;
    const tile = this.tile.total ? ` ${path.basename(this.tile.input)} tile ${this.tile.done}/${this.tile.total}` : '';
    this.out.write(`\r\x1b[2K${(head + tile).slice(0, cols)}`);
    this.lineShown = true;
  }

  println(line: string, redraw = true): void {
    if (this.tty && this.lineShown) this.out.write('\r\x1b[2K');
    this.out.write(line + '\n');
    this.lineShown = false;
    if (redraw) this.draw(true);
  }

  finish(): void {
    if (this.tty && this.lineShown) this.out.write('\r\x1b[2K');
    this.lineShown = false;
  }
}
