// FAKE electron module for tests on machines without the Electron binary. The test bundles
// main/main.ts with esbuild, aliasing 'electron' to this file, runs it in Node and reads what
// main.ts did from `fake` (exported and on globalThis). Only the calls main/ makes exist here.

type Fn = (...args: any[]) => any;

export interface FakeRecord {
  setPath: [string, string][];
  order: string[];
  schemes: any[];
  protocolHandlers: Map<string, Fn>;
  ipcHandlers: Map<string, Fn>;
  appHandlers: Map<string, Fn[]>;
  windows: FakeBrowserWindow[];
  menu: any;
  permissionRequest: Fn | null;
  permissionCheck: Fn | null;
  errors: [string, string][];
  opened: string[];
  quitCalls: number;
}

export const fake: FakeRecord = {
  setPath: [],
  order: [],
  schemes: [],
  protocolHandlers: new Map(),
  ipcHandlers: new Map(),
  appHandlers: new Map(),
  windows: [],
  menu: null,
  permissionRequest: null,
  permissionCheck: null,
  errors: [],
  opened: [],
  quitCalls: 0,
};
(globalThis as any).__duoscaleFakeElectron = fake;

const paths = new Map<string, string>();

export const app = {
  isPackaged: false,
  getAppPath: () => process.env.FAKE_ELECTRON_APP_PATH ?? process.cwd(),
  setPath(name: string, value: string) {
    fake.order.push(`setPath:${name}`);
    fake.setPath.push([name, value]);
    paths.set(name, value);
  },
  getPath: (name: string) => paths.get(name) ?? `/fake/${name}`,
  requestSingleInstanceLock() {
    fake.order.push('requestSingleInstanceLock');
    return true;
  },
  whenReady: () => Promise.resolve(),
  on(event: string, fn: Fn) {
    const list = fake.appHandlers.get(event) ?? [];
    list.push(fn);
    fake.appHandlers.set(event, list);
    return app;
  },
  quit() {
    fake.quitCalls++;
  },
  exit(code: number) {
    fake.errors.push(['exit', String(code)]);
  },
};

export const protocol = {
  registerSchemesAsPrivileged(list: any[]) {
    fake.order.push('registerSchemesAsPrivileged');
    fake.schemes.push(...list);
  },
  handle(scheme: string, fn: Fn) {
    fake.protocolHandlers.set(scheme, fn);
  },
};

export const session = {
  defaultSession: {
    setPermissionRequestHandler(fn: Fn) {
      fake.permissionRequest = fn;
    },
    setPermissionCheckHandler(fn: Fn) {
      fake.permissionCheck = fn;
    },
    setDevicePermissionHandler(_fn: Fn) {},
  },
};

export const ipcMain = {
  handle(channel: string, fn: Fn) {
    if (fake.ipcHandlers.has(channel)) throw new Error(`second handler for ${channel}`);
    fake.ipcHandlers.set(channel, fn);
  },
  removeHandler(channel: string) {
    fake.ipcHandlers.delete(channel);
  },
};

let nextId = 1;
export class FakeWebContents {
  readonly id = nextId++;
  readonly sent: [string, unknown][] = [];
  readonly listeners = new Map<string, Fn>();
  windowOpenHandler: Fn | null = null;
  send(channel: string, payload: unknown) {
    this.sent.push([channel, payload]);
  }
  on(event: string, fn: Fn) {
    this.listeners.set(event, fn);
    return this;
  }
  setWindowOpenHandler(fn: Fn) {
    this.windowOpenHandler = fn;
  }
}

export class FakeBrowserWindow {
  static focused: FakeBrowserWindow | null = null;
  static getFocusedWindow() {
    return FakeBrowserWindow.focused;
  }
  static getAllWindows() {
    return fake.windows;
  }
  readonly webContents = new FakeWebContents();
  readonly loaded: string[] = [];
  constructor(readonly options: any) {
    fake.windows.push(this);
    // Electron emits web-contents-created for every new webContents.
    for (const fn of fake.appHandlers.get('web-contents-created') ?? []) fn({}, this.webContents);
  }
  once(_e: string, _fn: Fn) {}
  on(_e: string, _fn: Fn) {}
  loadURL(url: string) {
    this.loaded.push(url);
    return Promise.resolve();
  }
  isDestroyed() {
    return false;
  }
  isMinimized() {
    return false;
  }
  restore() {}
  focus() {}
  show() {}
}
export { FakeBrowserWindow as BrowserWindow };

export const Menu = {
  buildFromTemplate: (t: any) => ({ template: t }),
  setApplicationMenu(m: any) {
    fake.menu = m;
  },
};

export const dialog = {
  showOpenDialog: async () => ({ canceled: true, filePaths: [] }),
  showSaveDialog: async () => ({ canceled: true }),
  showErrorBox(title: string, message: string) {
    fake.errors.push([title, message]);
  },
};

export const shell = {
  showItemInFolder(_p: string) {},
  openExternal: async (url: string) => {
    fake.opened.push(url);
  },
  openPath: async (_p: string) => '',
};

export default { app, protocol, session, ipcMain, BrowserWindow: FakeBrowserWindow, Menu, dialog, shell };
