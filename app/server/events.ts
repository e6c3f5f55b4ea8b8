// Server-sent event fan-out: one subscription to the service, many browser streams.

import type { ServerResponse } from 'node:http';
import type { DuoscaleEvent } from '../api.ts';

const HEARTBEAT_MS = 15_000; // keeps proxies and idle-timeouts from closing a quiet stream

export class EventHub {
  private readonly clients = new Set<ServerResponse>();
  private readonly heartbeat: NodeJS.Timeout;

  constructor() {
    this.heartbeat = setInterval(() => this.write(': ping\n\n'), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  get size(): number {
    return this.clients.size;
  }

  /** Turns `res` into an event stream and keeps it until the client goes away. */
  attach(res: ServerResponse, headers: Record<string, string>): void {
    res.writeHead(200, {
      ...headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    // `retry` sets the browser's reconnect delay; the comment flushes headers at once.
    res.write('retry: 2000\n: connected\n\n');
    this.clients.add(res);
    res.on('close', () => this.clients.delete(res));
  }

  /** Sends one event to every open stream. JSON.stringify never emits raw newlines, so one `data:` line suffices. */
  publish(event: DuoscaleEvent): void {
    this.write(`data: ${JSON.stringify(event)}\n\n`);
  }

  close(): void {
    clearInterval(this.heartbeat);
    for (const res of this.clients) res.end();
    this.clients.clear();
  }

  private write(chunk: string): void {
    for (const res of this.clients) {
      if (!res.writableEnded) res.write(chunk);
    }
  }
}
