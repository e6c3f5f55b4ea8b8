// Page object for the Duoscale renderer. Methods are semantic steps and waits
// ("enhance this path", "wait until the job is done"), never sleeps, so the specs read
// as a photographer's actions and stay independent of the transport.
import { expect, type Locator, type Page } from '@playwright/test';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO } from './server.ts';

export const SCREENS = path.join(REPO, 'test-results', 'screens');

export class DuoscaleApp {
  constructor(readonly page: Page) {}

  async open(url: string): Promise<void> {
    await this.page.goto(url);
    await expect(this.page.getByTestId('view-library')).toBeVisible();
  }

  async go(view: 'library' | 'compare' | 'batch' | 'models' | 'settings'): Promise<void> {
    await this.page.getByTestId(`nav-${view}`).click();
    await expect(this.page.getByTestId(`view-${view}`)).toBeVisible();
  }

  /** Answers the web-mode path dialog. */
  async enterPaths(paths: string[]): Promise<void> {
    const input = this.page.getByTestId('path-input');
    await expect(input).toBeVisible();
    await input.fill(paths.join('\n'));
    await this.page.getByTestId('path-ok').click();
    await expect(input).toBeHidden();
  }

  /** Settings → output folder, saved. */
  async setOutputFolder(dir: string): Promise<void> {
    await this.go('settings');
    await this.page.getByTestId('set-output').fill(dir);
    await this.page.getByTestId('save-settings').click();
    await expect(this.page.getByTestId('toast-success')).toContainText('Settings saved');
  }

  async enhancePhoto(file: string): Promise<void> {
    await this.page.getByTestId('enhance-photo').click();
    await this.enterPaths([file]);
  }

  /** Fills the Batch form and starts it. */
  async startBatch(inputs: string[], outputDir: string): Promise<void> {
    await this.go('batch');
    await this.page.getByTestId('add-folder').click();
    await this.enterPaths(inputs);
    await this.page.getByTestId('batch-output').fill(outputDir);
    await this.page.getByTestId('start-batch').click();
    await expect(this.page.getByTestId('job').first()).toBeVisible();
  }

  /** Drops paths on the Batch drop zone the way a file manager does (text/uri-list of file:// URLs). */
  async dropPaths(paths: string[]): Promise<void> {
    const uris = paths.map((p) => pathToFileURL(p).href).join('\r\n');
    await this.page.getByTestId('dropzone').evaluate((el, list) => {
      const dt = new DataTransfer();
      dt.setData('text/uri-list', list);
      el.dispatchEvent(new DragEvent('dragenter', { dataTransfer: dt, bubbles: true, cancelable: true }));
      el.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
      el.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, uris);
  }

  /** The newest job card in the queue. */
  job(): Locator {
    return this.page.getByTestId('job').first();
  }

  async waitForJobState(state: string | RegExp, timeout = 60_000): Promise<void> {
    await expect(this.job()).toHaveAttribute('data-state', state, { timeout });
  }

  async screenshot(name: string): Promise<string> {
    mkdirSync(SCREENS, { recursive: true });
    const file = path.join(SCREENS, `${name}.png`);
    await this.page.screenshot({ path: file });
    return file;
  }
}
