// Where Duoscale keeps its files. Nothing here imports Electron: the Electron main process
// passes its own `app.getPath('userData')` through DUOSCALE_HOME or the `home` option instead.
//
// DUOSCALE_HOME            user data folder (catalog.sqlite, settings.json, models/, thumbs/)
// DUOSCALE_MODELS_DIR      folder of shipped ("builtin") models; default <repo>/resources/models
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository (or unpacked app) root: app/paths.ts lives one level below it. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The OS convention for per-user application data, with a `Duoscale` folder in it. */
export function defaultHome(platform: NodeJS.Platform = process.platform, env: NodeJS.ProcessEnv = process.env): string {
  const home = os.homedir();
  if (platform === 'win32') return path.join(env.APPDATA || path.join(home, 'AppData', 'Roaming'), 'Duoscale');
  if (platform === 'darwin') return path.join(home, 'Library', 'Application Support', 'Duoscale');
  return path.join(env.XDG_CONFIG_HOME || path.join(home, '.config'), 'Duoscale');
}

export interface DuoscalePaths {
  home: string;
  catalog: string;
  settings: string;
  userModels: string;
  builtinModels: string;
  thumbs: string;
  trainingRuns: string;
}

/** All paths, resolved from explicit overrides first, then env vars, then OS defaults. */
export function resolvePaths(over: { home?: string; builtinModels?: string } = {}, env: NodeJS.ProcessEnv = process.env): DuoscalePaths {
  const home = path.resolve(over.home || env.DUOSCALE_HOME || defaultHome(process.platform, env));
  const builtinModels = path.resolve(over.builtinModels || env.DUOSCALE_MODELS_DIR || path.join(REPO_ROOT, 'resources', 'models'));
  return {
    home,
    catalog: path.join(home, 'catalog.sqlite'),
    settings: path.join(home, 'settings.json'),
    userModels: path.join(home, 'models'),
    builtinModels,
    thumbs: path.join(home, 'thumbs'),
    trainingRuns: path.join(home, 'runs'),
  };
}
