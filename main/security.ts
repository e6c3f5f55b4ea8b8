// Security rules of the Electron shell as pure functions, so they are testable without Electron.

import { contentSecurityPolicy } from '../app/server/security.ts';
import { APP_ORIGIN, IMG_SCHEME } from './channels.ts';

/** CSP of the renderer window: the web mode's policy plus catalog images over duoscale-img:. */
export function windowCsp(): string {
  return contentSecurityPolicy([`${IMG_SCHEME}:`]);
}

/** True for URLs of our own renderer (`duoscale://app/...`). */
export function isAppUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === 'duoscale:' && u.host === 'app';
  } catch {
    return false;
  }
}

/** Links the renderer may hand to the OS browser: http(s) only, never file:, javascript: or custom schemes. */
export function isExternalWebUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === 'https:' || u.protocol === 'http:';
  } catch {
    return false;
  }
}

/** What an IPC handler knows about the caller (a subset of Electron's IpcMainInvokeEvent). */
export interface SenderInfo {
  sender: { id: number };
  senderFrame: { url: string; parent: unknown | null } | null;
}

/**
 * True when an IPC message comes from the top frame of one of our windows showing our renderer.
 * Messages from iframes, other pages (after a navigation slipped through) or unknown
 * webContents are refused.
 */
export function isTrustedSender(event: SenderInfo, ourWebContents: (id: number) => boolean): boolean {
  const frame = event.senderFrame;
  if (!frame) return false; // frame already navigated away or destroyed
  if (frame.parent !== null) return false;
  if (!ourWebContents(event.sender.id)) return false;
  return isAppUrl(frame.url) && new URL(frame.url).origin === new URL(`${APP_ORIGIN}/`).origin;
}

/**
 * Permissions the renderer may get. Everything is denied except writing sanitised text to
 * the clipboard (copying a path or an error message).
 */
export function permissionAllowed(permission: string): boolean {
  return permission === 'clipboard-sanitized-write';
}

/** webPreferences of every window. */
export function secureWebPreferences(preload: string) {
  return {
    preload,
    contextIsolation: true,
    sandbox: true,
    nodeIntegration: false,
    nodeIntegrationInWorker: false,
    nodeIntegrationInSubFrames: false,
    webSecurity: true,
    allowRunningInsecureContent: false,
    webviewTag: false,
    navigateOnDragDrop: false,
    spellcheck: false,
    safeDialogs: true,
  } as const;
}
