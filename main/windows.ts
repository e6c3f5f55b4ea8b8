// The main window and the guards every webContents gets.

import { BrowserWindow, shell } from 'electron';
import type { WebContents } from 'electron';
import { APP_ORIGIN } from './channels.ts';
import { isAppUrl, isExternalWebUrl, secureWebPreferences } from './security.ts';

/** Navigation and new-window rules for any webContents (windows, and anything else that appears). */
export function applyGuards(contents: WebContents): void {
  contents.on('will-navigate', (event, url) => {
    if (!isAppUrl(url)) event.preventDefault();
  });
  contents.on('will-redirect', (event, url) => {
    if (!isAppUrl(url)) event.preventDefault();
  });
  contents.on('will-attach-webview', (event) => event.preventDefault());
  contents.setWindowOpenHandler(({ url }) => {
    // Links to documentation etc. open in the user's browser; no new Electron windows.
    if (isExternalWebUrl(url)) void shell.openExternal(url);
    return { action: 'deny' };
  });
}

/** Creates the main window showing duoscale://app/index.html. */
export function createMainWindow(preload: string): BrowserWindow {
  const win = new BrowserWindow({
    width: 1400,
    height: 900,
    minWidth: 900,
    minHeight: 600,
    show: false,
    backgroundColor: '#111214', // matches the dark theme; no white flash before the first paint
    title: 'Duoscale',
    webPreferences: secureWebPreferences(preload),
  });
  win.once('ready-to-show', () => win.show());
  void win.loadURL(`${APP_ORIGIN}/index.html`);
  return win;
}
