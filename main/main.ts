// Electron main process: orders the setup steps, nothing else (business logic lives in app/).
//
// Data folder: DUOSCALE_HOME or --user-data-dir=PATH (tests), else the OS default shared with
// the CLI (app/paths.ts). Electron's own profile goes to <home>/electron so the whole app
// state lives in one folder a test can throw away.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BrowserWindow, Menu, app, dialog, ipcMain, protocol, session, shell } from 'electron';
import { defaultHome } from '../app/paths.ts';
import { DuoscaleService } from '../app/service.ts';
import { setupCatalog } from './catalog.ts';
import { APP_SCHEME, EVENT_CHANNEL, IMG_SCHEME } from './channels.ts';
import type { AnyEvent, ShellView } from './channels.ts';
import { exportCatalog, pickPaths, setupDialogs } from './dialogs.ts';
import { setupEnhance } from './enhance.ts';
import { setupEvents } from './events.ts';
import { createContext, missingHandlers } from './ipc.ts';
import type { MainContext } from './ipc.ts';
import { menuTemplate } from './menu.ts';
import { setupModels } from './models.ts';
import { builtinModelsDir, rendererDir, userDataOverride } from './paths.ts';
import { createAppHandler, createImageHandler } from './protocol.ts';
import { isTrustedSender, permissionAllowed } from './security.ts';
import { setupSettings } from './settings.ts';
import { setupTraining } from './training.ts';
import { applyGuards, createMainWindow } from './windows.ts';

const here = path.dirname(fileURLToPath(import.meta.url)); // dist/main after build:main
const PRELOAD = path.join(here, 'preload.cjs');

const home = userDataOverride(process.argv, process.env) ?? defaultHome();
process.env.DUOSCALE_HOME = home;
app.setPath('userData', path.join(home, 'electron'));
const builtinModels = builtinModelsDir({
  packaged: app.isPackaged,
  resourcesPath: process.resourcesPath,
  appPath: app.getAppPath(),
  env: process.env,
});
// The Python trainer package ships as an extra resource; training needs the user's Python + PyTorch.
const trainerDir = app.isPackaged ? path.join(process.resourcesPath, 'trainer') : path.join(app.getAppPath(), 'trainer');

// Must happen before 'ready'. Both schemes are standard + secure so CSP 'self' and
// relative URLs behave as on https; neither bypasses CSP.
protocol.registerSchemesAsPrivileged([
  { scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true, codeCache: true } },
  { scheme: IMG_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true, stream: true } },
]);

app.on('web-contents-created', (_event, contents) => applyGuards(contents));

// The lock lives in the userData folder set above, so tests with their own folders run side by side.
if (!app.requestSingleInstanceLock()) {
  app.quit();
} else {
  main().catch((err: Error) => {
    dialog.showErrorBox('Duoscale could not start', `${err.message}\n\nData folder: ${home}`);
    app.exit(1);
  });
}

async function main(): Promise<void> {
  await app.whenReady();

  const ses = session.defaultSession;
  ses.setPermissionRequestHandler((_wc, permission, callback) => callback(permissionAllowed(permission)));
  ses.setPermissionCheckHandler((_wc, permission) => permissionAllowed(permission));
  ses.setDevicePermissionHandler(() => false);

  const service = await DuoscaleService.open({
    home,
    builtinModels,
    reveal: async (file) => shell.showItemInFolder(file),
    trainer: fs.existsSync(path.join(trainerDir, 'duoscale_trainer')) ? { trainerDir } : {},
  });

  protocol.handle(
    APP_SCHEME,
    createAppHandler(rendererDir({ packaged: app.isPackaged, resourcesPath: process.resourcesPath, appPath: app.getAppPath() })),
  );
  protocol.handle(IMG_SCHEME, createImageHandler(service));

  const windows = new Set<BrowserWindow>();
  const ownWebContents = (id: number) => [...windows].some((w) => !w.isDestroyed() && w.webContents.id === id);
  const ctx: MainContext = createContext({
    ipc: ipcMain,
    service,
    isTrusted: (event) => isTrustedSender(event, ownWebContents),
    shell: {
      showOpenDialog: (o) => {
        const w = BrowserWindow.getFocusedWindow();
        return w ? dialog.showOpenDialog(w, o) : dialog.showOpenDialog(o);
      },
      showSaveDialog: (o) => {
        const w = BrowserWindow.getFocusedWindow();
        return w ? dialog.showSaveDialog(w, o) : dialog.showSaveDialog(o);
      },
    },
  });

  setupEnhance(ctx);
  setupCatalog(ctx);
  setupModels(ctx);
  setupSettings(ctx);
  setupTraining(ctx);
  setupDialogs(ctx);
  const missing = missingHandlers(ctx);
  if (missing.length > 0) throw new Error(`No IPC handler for: ${missing.join(', ')}`);

  const send = (e: AnyEvent, only?: BrowserWindow | null) => {
    for (const w of only ? [only] : windows) if (!w.isDestroyed()) w.webContents.send(EVENT_CHANNEL, e);
  };
  setupEvents(service, (e) => send(e));

  const openWindow = () => {
    const win = createMainWindow(PRELOAD);
    windows.add(win);
    win.on('closed', () => windows.delete(win));
    return win;
  };
  const focused = () => BrowserWindow.getFocusedWindow() ?? [...windows][0] ?? null;
  const fail = (title: string) => (err: Error) => dialog.showErrorBox(title, err.message);

  Menu.setApplicationMenu(
    Menu.buildFromTemplate(
      menuTemplate(
        {
          openPhotos: () =>
            pickPaths(ctx.shell, { folders: false, multiple: true })
              .then((paths) => paths && send({ type: 'open-paths', paths, source: 'menu' }, focused()))
              .catch(fail('Cannot open photos')),
          openFolder: () =>
            pickPaths(ctx.shell, { folders: true, multiple: true })
              .then((paths) => paths && send({ type: 'open-paths', paths, source: 'menu' }, focused()))
              .catch(fail('Cannot open the folder')),
          exportCatalog: () => void exportCatalog(ctx).catch(fail('Cannot export the catalog')),
          navigate: (view: ShellView) => send({ type: 'navigate', view }, focused()),
          openDataFolder: () => void shell.openPath(home),
        },
        { platform: process.platform, dev: !app.isPackaged },
      ),
    ),
  );

  openWindow();

  app.on('second-instance', () => {
    const win = [...windows][0] ?? openWindow();
    if (win.isMinimized()) win.restore();
    win.focus();
  });
  app.on('activate', () => {
    if (windows.size === 0) openWindow();
  });
  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit();
  });
  let closing = false;
  app.on('before-quit', (event) => {
    if (closing) return;
    closing = true;
    event.preventDefault();
    // Let the queue stop at a tile boundary and the catalog close cleanly before exiting.
    service.close().finally(() => app.quit());
  });
}
