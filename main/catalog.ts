// IPC for the catalog: listing, details, deleting results, image URLs, reveal in folder.
// imageUrl answers duoscale-img://<kind>/<id> (served by protocol.ts for catalog ids only);
// revealInFolder goes through the service, which checks the path is in the catalog and then
// calls Electron's shell.showItemInFolder (passed as `reveal` in main.ts).
import { handle } from './ipc.ts';
import type { MainContext } from './ipc.ts';

export function setupCatalog(ctx: MainContext): void {
  const s = ctx.service;
  handle(ctx, 'catalogList', (a) => s.catalogList(a));
  handle(ctx, 'catalogImage', (a) => s.catalogImage(a));
  handle(ctx, 'deleteResult', (a) => s.deleteResult(a));
  handle(ctx, 'imageUrl', (a) => s.imageUrl(a));
  handle(ctx, 'revealInFolder', (a) => s.revealInFolder(a));
}
