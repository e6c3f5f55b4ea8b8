// Raw HTTP helpers for the server tests. node:http (not fetch) so a test can send any Host,
// Origin or un-normalised path it likes.

import http from 'node:http';

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  text: string;
  json(): any;
}

export function request(
  port: number,
  opts: { method?: string; path: string; headers?: Record<string, string>; body?: string },
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        agent: false, // fresh socket each time: a pooled keep-alive socket could belong to a closed server
        method: opts.method ?? 'GET',
        path: opts.path,
        headers: { host: `127.0.0.1:${port}`, ...opts.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          const text = body.toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text, json: () => JSON.parse(text) });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

/** POST /api/<method> with the token header and a JSON body. */
export function apiCall(port: number, token: string, method: string, arg?: unknown, headers: Record<string, string> = {}): Promise<RawResponse> {
  return request(port, {
    method: 'POST',
    path: `/api/${method}`,
    headers: { 'content-type': 'application/json', 'x-duoscale-token': token, ...headers },
    body: arg === undefined ? '' : JSON.stringify(arg),
  });
}

/**
 * Opens the event stream and resolves with the first `data:` event that `accept` takes.
 * `ready` runs once the stream's headers have arrived (so events emitted after it are seen).
 */
export function nextEvent(
  port: number,
  token: string,
  accept: (e: any) => boolean,
  ready: () => void | Promise<void>,
  timeoutMs = 10_000,
): Promise<{ event: any; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port, agent: false, path: `/api/events?token=${encodeURIComponent(token)}`, headers: { host: `127.0.0.1:${port}` } },
      (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`event stream answered ${res.statusCode}`));
          res.resume();
          return;
        }
        let buf = '';
        const timer = setTimeout(() => {
          req.destroy();
          reject(new Error(`no matching event within ${timeoutMs} ms; got: ${buf.slice(0, 500)}`));
        }, timeoutMs);
        res.setEncoding('utf8');
        res.on('end', () => {
          clearTimeout(timer);
          reject(new Error('event stream ended'));
        });
        res.on('data', (chunk: string) => {
          buf += chunk;
          let idx: number;
          while ((idx = buf.indexOf('\n\n')) !== -1) {
            const block = buf.slice(0, idx);
            buf = buf.slice(idx + 2);
            const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
            if (!data) continue;
            const event = JSON.parse(data);
            if (accept(event)) {
              clearTimeout(timer);
              req.destroy();
              resolve({ event, headers: res.headers });
              return;
            }
          }
        });
        Promise.resolve(ready()).catch((err) => {
          clearTimeout(timer);
          req.destroy();
          reject(err);
        });
      },
    );
    req.on('error', (err) => {
      if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(err);
    });
  });
}
