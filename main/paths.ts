// Where the Electron app keeps its data. Tests point it elsewhere with DUOSCALE_HOME or
// --user-data-dir=PATH (Playwright's Electron fixtures pass a fresh temp folder per test).

import path from 'node:path';

/**
 * The user-data folder requested on the command line or in the environment, or null for
 * the OS default. The command line wins over DUOSCALE_HOME.
 *
 * @example userDataOverride(['electron', '.', '--user-data-dir=/tmp/x'], {}) === '/tmp/x'
 */
export function userDataOverride(argv: readonly string[], env: NodeJS.ProcessEnv): string | null {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--user-data-dir=')) return path.resolve(a.slice('--user-data-dir='.length));
    if (a === '--user-data-dir' && argv[i + 1]) return path.resolve(argv[i + 1]!);
  }
  return env.DUOSCALE_HOME ? path.resolve(env.DUOSCALE_HOME) : null;
}

/**
 * Folder of the shipped models: `resources/models` inside the packaged app
 * (electron-builder extraResources), `<app>/resources/models` when run from the repo.
 */
export function builtinModelsDir(opts: { packaged: boolean; resourcesPath: string; appPath: string; env: NodeJS.ProcessEnv }): string {
  if (opts.env.DUOSCALE_MODELS_DIR) return path.resolve(opts.env.DUOSCALE_MODELS_DIR);
  return opts.packaged ? path.join(opts.resourcesPath, 'models') : path.join(opts.appPath, 'resources', 'models');
}

/**
 * Folder of the built renderer: `resources/renderer` in the packaged app (an extra resource,
 * plain files outside the asar), `<app>/dist/renderer` when run from the repo.
 */
export function rendererDir(opts: { packaged: boolean; resourcesPath: string; appPath: string }): string {
  return opts.packaged ? path.join(opts.resourcesPath, 'renderer') : path.join(opts.appPath, 'dist', 'renderer');
}
