// DEV HARNESS ONLY: serves dist/renderer with the fake service. `npx tsx e2e/harness/dev-serve.ts`
import { startServer } from '../../app/server/index.ts';
import { createFakeService } from './fake-service.ts';

const service = await createFakeService('/tmp/duoscale-harness');
const server = await startServer({ service, staticDir: 'dist/renderer', port: Number(process.env.PORT ?? 0), validate: (_m, a) => a });
console.log(server.url);
