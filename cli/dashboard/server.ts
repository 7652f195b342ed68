/**
 * The dashboard's HTTP server: `GET /` is the page (page.ts), `GET /events` a Server-Sent Events
 * stream of page views (view.ts) — the whole view at once, then again whenever it changed. Nothing
 * else: browsers only read. SSE rather than a WebSocket because the flow is one-way: there is
 * nothing a browser may send, so there is no message parser to bound; EventSource reconnects by
 * itself; and a cross-origin page cannot read the stream (no CORS headers are ever sent), whereas
 * any page may open a WebSocket anywhere.
 *
 * Who may look: the page has no login, so the command (commands/dashboard.ts) listens on loopback
 * unless told otherwise. On loopback the Host header must name a loopback host with our port,
 * so a web page whose name an attacker re-points at 127.0.0.1 (DNS rebinding) gets 403, not the
 * figures; a request whose Origin is not ours is refused too.
 *
 * Bounds (a browser, or anything else that connects, is untrusted):
 *  - at most `maxBrowsers` event streams; one more is refused with 503 (the page retries later);
 *  - TCP connections at most maxBrowsers + PAGE_SLOTS, more dropped at accept;
 *  - request headers at most 8 KiB, within 5 s; no request body is read — one announced is 400;
 *  - a stream whose browser does not read (more than MAX_BUFFERED_BYTES queued) is dropped: it
 *    reconnects and gets the current view, nothing is lost but intermediate frames;
 *  - views go out at most every MIN_INTERVAL_MS, however often the model changes (an agent
 *    flooding events costs one serialisation per interval, not one per event per browser).
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { answerClientError, formatHostPort, listenError, MigrationError, type HostPort } from '@livemig/shared';
import { isLoopbackHostHeader } from './listen-address.ts';
import { PAGE_CSP, PAGE_HTML } from './page.ts';

/** Connections beyond the event streams: page loads, and a browser opening its next stream. */
const PAGE_SLOTS = 8;
/** Request headers at most this many bytes (a browser sends well under 2 KiB). */
const MAX_HEADER_BYTES = 8 * 1024;
/** Headers must arrive within this time. */
const REQUEST_TIMEOUT_MS = 5000;
/** A stream with more than this queued for its browser is dropped. */
export const MAX_BUFFERED_BYTES = 1 << 20;
/** At most one view per this many ms to every browser. */
export const MIN_INTERVAL_MS = 100;
/** A comment line this often keeps idle streams open through proxies and finds dead ones. */
const HEARTBEAT_MS = 15_000;
/** How long a browser waits before reconnecting a dropped stream (SSE `retry:`). */
const RECONNECT_MS = 1000;

export interface DashboardServerOptions extends HostPort {
  /** The view to send, as JSON-able data; called when a browser connects and after changed(). */
  view: () => unknown;
  /** Event streams at once. @default 32 */
  maxBrowsers?: number;
  /**
   * Accept any Host header (a dashboard listening beyond loopback on purpose: its names are not
   * ours to know). @default false: loopback names with our port only
   */
  anyHost?: boolean;
}

export class DashboardServer {
  readonly #server: http.Server;
  readonly #options: DashboardServerOptions;
  readonly #streams = new Set<ServerResponse>();
  readonly #heartbeat: NodeJS.Timeout;
  #throttle: NodeJS.Timeout | undefined;
  #pending = false;
  #closed = false;

  private constructor(server: http.Server, options: DashboardServerOptions) {
    this.#server = server;
    this.#options = options;
    this.#heartbeat = setInterval(() => this.#writeAll(': keepalive\n\n'), HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  /** Listen; rejects with ERR_ADDRESS_IN_USE or ERR_ADDRESS_NOT_AVAILABLE when it cannot bind. */
  static start(options: DashboardServerOptions): Promise<DashboardServer> {
    const maxBrowsers = options.maxBrowsers ?? 32;
    if (!(Number.isSafeInteger(maxBrowsers) && maxBrowsers >= 1)) {
      throw new MigrationError('ERR_INVALID_ARGUMENT', `maxBrowsers must be a whole number ≥ 1, got ${maxBrowsers}`);
    }
    const server = http.createServer({
      maxHeaderSize: MAX_HEADER_BYTES,
      headersTimeout: REQUEST_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      keepAliveTimeout: REQUEST_TIMEOUT_MS,
      connectionsCheckingInterval: 1000,
    });
    server.maxConnections = maxBrowsers + PAGE_SLOTS;
    server.maxRequestsPerSocket = 100;
    server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
      answerClientError(error, socket);
    });
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => {
        server.close();
        reject(listenError('the dashboard', options, error));
      };
      server.once('error', onError);
      server.listen(options.port, options.host, () => {
        server.off('error', onError);
        const dashboard = new DashboardServer(server, { ...options, maxBrowsers });
        server.on('request', (req: IncomingMessage, res: ServerResponse) => dashboard.#serve(req, res));
        resolve(dashboard);
      });
    });
  }

  /** The bound address (the port, when asked for 0). */
  address(): HostPort {
    const address = this.#server.address();
    if (typeof address === 'string' || address === null) throw new MigrationError('ERR_INTERNAL', 'no TCP address');
    return { host: address.address, port: address.port };
  }

  /** The page's URL. */
  get url(): string {
    return `http://${formatHostPort(this.address())}/`;
  }

  /** Browsers following now. */
  get browsers(): number {
    return this.#streams.size;
  }

  /** The view changed: send it to every browser now, or at the end of the current interval. */
  changed(): void {
    if (this.#closed) return;
    if (this.#throttle) {
      this.#pending = true;
      return;
    }
    this.#broadcast();
    this.#throttle = setTimeout(() => this.#tick(), MIN_INTERVAL_MS);
  }

  /** Stop listening and end every stream; resolves once the port is closed. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#heartbeat);
    clearTimeout(this.#throttle);
    for (const res of this.#streams) res.end();
    this.#streams.clear();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }

  #tick(): void {
    this.#throttle = undefined;
    if (!this.#pending) return;
    this.#pending = false;
    this.changed();
  }

  #broadcast(): void {
    if (this.#streams.size === 0) return;
    this.#writeAll(frame(this.#options.view()));
  }

  #writeAll(text: string): void {
    for (const res of this.#streams) {
      // A browser that does not read is not worth buffering for: it reconnects and starts afresh.
      if (res.writableLength > MAX_BUFFERED_BYTES) {
        res.destroy();
        this.#streams.delete(res);
        continue;
      }
      res.write(text);
    }
  }

  #serve(req: IncomingMessage, res: ServerResponse): void {
    // Nothing a browser sends is read: a request announcing a body is refused before it is.
    const length = req.headers['content-length'];
    if ((length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined) {
      return reply(res, 400, 'no request here has a body\n', { connection: 'close' });
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return reply(res, 405, 'method not allowed: GET only\n', { allow: 'GET, HEAD' });
    }
    const refused = this.#whyRefused(req);
    if (refused) return reply(res, 403, `forbidden: ${refused}\n`);
    const path = (req.url ?? '').split('?')[0];
    if (path === '/') {
      res.writeHead(200, {
        ...SECURITY_HEADERS,
        'content-type': 'text/html; charset=utf-8',
        'content-security-policy': PAGE_CSP,
      });
      res.end(req.method === 'HEAD' ? undefined : PAGE_HTML);
      return;
    }
    if (path === '/events') return this.#stream(req, res);
    reply(res, 404, 'not found: the page is at /\n');
  }

  #stream(req: IncomingMessage, res: ServerResponse): void {
    if (this.#closed || this.#streams.size >= this.#options.maxBrowsers!) {
      return reply(res, 503, `this dashboard serves ${this.#options.maxBrowsers} browsers already; retry later\n`, {
        'retry-after': '5',
      });
    }
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': 'text/event-stream; charset=utf-8',
      connection: 'keep-alive',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    // A stream lives as long as the browser keeps it: no request or idle timeout applies to it.
    req.socket.setTimeout(0);
    this.#streams.add(res);
    const forget = (): void => {
      this.#streams.delete(res);
    };
    res.on('close', forget);
    res.on('error', forget);
    res.write(`retry: ${RECONNECT_MS}\n\n`);
    res.write(frame(this.#options.view()));
  }

  /** Why this request may not see the dashboard, or undefined when it may. */
  #whyRefused(req: IncomingMessage): string | undefined {
    const port = this.address().port;
    const host = req.headers.host;
    if (!this.#options.anyHost && !isLoopbackHostHeader(host, port)) {
      return `Host "${host ?? ''}" is not this dashboard's loopback address (port ${port})`;
    }
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${host ?? ''}`) {
      return `another origin (${origin}) may not read this dashboard`;
    }
    return undefined;
  }
}

/** Headers on every answer: never cached, never sniffed, never framed, no referrer leaked. */
const SECURITY_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
} as const;

/** One SSE message carrying `view` as JSON (JSON has no raw newline, so one `data:` line). */
function frame(view: unknown): string {
  return `data: ${JSON.stringify(view)}\n\n`;
}

function reply(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'text/plain; charset=utf-8', ...headers });
  res.end(body);
}
