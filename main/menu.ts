// The application menu as data, so its shortcuts are testable without Electron.
// main.ts builds it with Menu.buildFromTemplate(menuTemplate(...)).

import type { MenuItemConstructorOptions } from 'electron';
import type { ShellView } from './channels.ts';

export interface MenuActions {
  openPhotos(): void;
  openFolder(): void;
  exportCatalog(): void;
  navigate(view: ShellView): void;
  openDataFolder(): void;
}

const VIEWS: [ShellView, string][] = [
  ['library', 'Library'],
  ['compare', 'Compare'],
  ['batch', 'Batch'],
  ['models', 'Models'],
  ['settings', 'Settings'],
];

/**
 * Menu template. Shortcuts: Ctrl/Cmd+O open photos, Ctrl/Cmd+Shift+O open a folder,
 * Ctrl/Cmd+E export the catalog, Ctrl/Cmd+1..5 switch views, Ctrl/Cmd+, settings.
 * Reload and developer tools only when `dev` is true.
 */
export function menuTemplate(actions: MenuActions, opts: { platform: NodeJS.Platform; dev: boolean }): MenuItemConstructorOptions[] {
  const mac = opts.platform === 'darwin';
  const template: MenuItemConstructorOptions[] = [];
  if (mac) {
    template.push({
      label: 'Duoscale',
      submenu: [
        { role: 'about' },
        { type: 'separator' },
        { label: 'Settings…', accelerator: 'CmdOrCtrl+,', click: () => actions.navigate('settings') },
        { type: 'separator' },
        { role: 'hide' },
        { role: 'hideOthers' },
        { role: 'unhide' },
        { type: 'separator' },
        { role: 'quit' },
      ],
    });
  }
  template.push({
    label: '&File',
    submenu: [
      { label: 'Open Photos…', accelerator: 'CmdOrCtrl+O', click: () => actions.openPhotos() },
      { label: 'Open Folder…', accelerator: 'CmdOrCtrl+Shift+O', click: () => actions.openFolder() },
      { type: 'separator' },
      { label: 'Export Catalog…', accelerator: 'CmdOrCtrl+E', click: () => actions.exportCatalog() },
      { label: 'Show Data Folder', click: () => actions.openDataFolder() },
      ...(mac
        ? []
        : ([
            { type: 'separator' },
            { label: 'Settings', accelerator: 'CmdOrCtrl+,', click: () => actions.navigate('settings') },
            { type: 'separator' },
            { role: 'quit' },
          ] as MenuItemConstructorOptions[])),
    ],
  });
  template.push({
    label: '&Edit',
    submenu: [
      { role: 'undo' },
      { role: 'redo' },
      { type: 'separator' },
      { role: 'cut' },
      { role: 'copy' },
      { role: 'paste' },
      { role: 'selectAll' },
    ],
  });
  template.push({
    label: '&View',
    submenu: [
      ...VIEWS.map(([view, label], i): MenuItemConstructorOptions => ({
        label,
        accelerator: `CmdOrCtrl+${i + 1}`,
        click: () => actions.navigate(view),
      })),
      { type: 'separator' },
      { role: 'resetZoom' },
      { role: 'zoomIn' },
      { role: 'zoomOut' },
      { type: 'separator' },
      { role: 'togglefullscreen' },
      ...(opts.dev ? ([{ type: 'separator' }, { role: 'reload' }, { role: 'toggleDevTools' }] as MenuItemConstructorOptions[]) : []),
    ],
  });
  template.push({ label: '&Window', submenu: [{ role: 'minimize' }, { role: 'close' }] });
  return template;
}
