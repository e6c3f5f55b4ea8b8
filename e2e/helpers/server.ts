// Starts the real `duoscale serve` as a child process and reads the URL it prints.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FIXTURE_MODELS = path.join(REPO, 'app', 'test', 'fixtures');

export interface Served {
  url: string;
  origin: string;
  log: () => string;
  stop: () => Promise<void>;
}

/**
 * `node bin/duoscale.mjs serve --port 0` with DUOSCALE_HOME = home and the tiny fixture
 * model as the shipped models folder. Resolves once the printed URL (with token) is seen.
 */
export async function serve(home: string, env: Record<string, string> = {}): Promise<Served> {
  const child = spawn(process.execPath, [path.join(REPO, 'bin', 'duoscale.mjs'), 'serve', '--port', '0'], {
    cwd: REPO,
    env: { ...process.env, DUOSCALE_HOME: home, DUOSCALE_MODELS_DIR: FIXTURE_MODELS, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
  child.stderr!.on('data', (c: Buffer) => { out += c.toString(); });

  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error('`duoscale serve` printed no URL within 30 s')), 30_000);
    const onData = () => {
      const m = /(http:\/\/(?:127\.0\.0\.1|localhost|\[::1\]):\d+\/\S*token=[\w-]+)/.exec(out);
      if (m) { cleanup(); resolve(m[1]); }
    };
    const onExit = (code: number | null) => fail(new Error(`\`duoscale serve\` exited with code ${code} before printing its URL`));
    function cleanup() {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.stderr!.off('data', onData);
      child.off('exit', onExit);
    }
    function fail(err: Error) { cleanup(); child.kill('SIGKILL'); reject(new Error(`${err.message}\n--- output ---\n${out}`)); }
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', onExit);
  });

  return {
    url,
    origin: new URL(url).origin,
    log: () => out,
    stop: () => stop(child),
  };
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 8_000);
    child.once('exit', () => { clearTimeout(kill); resolve(); });
    child.kill('SIGTERM');
  });
}
