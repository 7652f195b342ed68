/**
 * The HTTP endpoint Prometheus scrapes (`--metrics HOST:PORT`): GET /metrics and nothing else.
 * What it serves is AgentMetrics's (metrics.ts); this file only bounds who may ask and how much
 * a request may cost.
 *
 * Transport, decided by the daemon (daemon.ts): plaintext HTTP on loopback; beyond loopback a
 * secure agent serves HTTPS with its own certificate and requires a client certificate of the
 * fleet CA whose role may read (viewer or above — an `agent` certificate is refused with 403),
 * and a plaintext agent refuses to start there without --insecure (plaintext-policy.ts).
 *
 * Bounds: at most `maxConnections` connections (more are dropped at accept); a request's headers
 * at most 8 KiB, within 5 s; no body (400); every method but GET is 405 and every path but
 * /metrics 404. close() drops every connection and frees the port.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { answerClientError, formatHostPort, listenError, MigrationError, type HostPort } from '@livemig/shared';
import { identityOf } from '@livemig/shared/channel';
import { authorize } from '@livemig/shared/security';

/** What a scrape returns. */
export type Exposition = () => Promise<{ contentType: string; text: string }>;

export interface MetricsServerOptions extends HostPort {
  logger: Logger;
  /** Serve HTTPS with these credentials, client certificates of `ca` required. @default plaintext HTTP */
  tls?: { ca: string; cert: string; key: string };
  /** Connections at once; more are dropped at accept. @default 8 */
  maxConnections?: number;
  /** A request's headers must arrive within this time; a response is given this long too. @default 5000 (ms) */
  requestTimeoutMs?: number;
  /** Told of every connection (to warn about plaintext beyond loopback). */
  onConnection?: (remote: string) => void;
}

/** Request headers at most this many bytes (Node's default is 16 KiB; a scrape sends a few hundred). */
const MAX_HEADER_BYTES = 8 * 1024;

export class MetricsServer {
  readonly #server: http.Server | https.Server;
  readonly #secure: boolean;

  private constructor(server: http.Server | https.Server, secure: boolean) {
    this.#server = server;
    this.#secure = secure;
  }

  /** Listen; rejects with ERR_ADDRESS_IN_USE or ERR_ADDRESS_NOT_AVAILABLE when it cannot bind. */
  static start(options: MetricsServerOptions, exposition: Exposition): Promise<MetricsServer> {
    const { logger } = options;
    const timeoutMs = options.requestTimeoutMs ?? 5000;
    const limits = {
      maxHeaderSize: MAX_HEADER_BYTES,
      headersTimeout: timeoutMs,
      requestTimeout: timeoutMs,
      keepAliveTimeout: timeoutMs,
      connectionsCheckingInterval: 1000,
    };
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
      serve(req, res, exposition, options).catch((error: unknown) => {
        logger.error({ err: error }, 'metrics: scrape failed');
        if (!res.headersSent) reply(res, 500, 'internal error\n');
        else res.destroy();
      });
    };
    const server = options.tls
      ? https.createServer(
          {
            ...limits,
            ...options.tls,
            requestCert: true,
            rejectUnauthorized: true,
            minVersion: 'TLSv1.3',
            handshakeTimeout: timeoutMs,
          },
          onRequest,
        )
      : http.createServer(limits, onRequest);
    server.maxConnections = options.maxConnections ?? 8;
    server.maxRequestsPerSocket = 100;
    server.on('connection', (socket: Socket) => {
      options.onConnection?.(`${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`);
    });
    server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
      logger.debug({ err: error }, 'metrics: bad request');
      answerClientError(error, socket);
    });
    if (options.tls) {
      server.on('tlsClientError', (error: Error, socket: TLSSocket) =>
        logger.warn({ err: error, remote: socket.remoteAddress }, 'metrics: TLS handshake refused'),
      );
    }
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => {
        server.close();
        reject(listenError('the metrics endpoint', options, error));
      };
      server.once('error', onError);
      server.listen(options.port, options.host, () => {
        server.off('error', onError);
        server.on('error', (error) => logger.error({ err: error }, 'metrics: server error'));
        resolve(new MetricsServer(server, options.tls !== undefined));
      });
    });
  }

  /** The bound address (the port, when asked for 0). */
  address(): HostPort {
    const address = this.#server.address();
    if (typeof address === 'string' || address === null) throw new MigrationError('ERR_INTERNAL', 'no TCP address');
    return { host: address.address, port: address.port };
  }

  /** Where to scrape: http(s)://HOST:PORT/metrics. */
  get url(): string {
    return `${this.#secure ? 'https' : 'http'}://${formatHostPort(this.address())}/metrics`;
  }

  /** Stop listening and drop every connection; resolves once the port is closed. */
  async close(): Promise<void> {
    const server = this.#server;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }
}

async function serve(
  req: IncomingMessage,
  res: ServerResponse,
  exposition: Exposition,
  options: MetricsServerOptions,
): Promise<void> {
  // A scrape has no body: anything else is refused before it is read.
  if (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') {
    return reply(res, 400, 'a scrape has no body\n', { connection: 'close' });
  }
  if (req.headers['transfer-encoding'] !== undefined) {
    return reply(res, 400, 'a scrape has no body\n', { connection: 'close' });
  }
  const path = (req.url ?? '').split('?')[0];
  if (path !== '/metrics') return reply(res, 404, 'not found: scrape /metrics\n');
  if (req.method !== 'GET') return reply(res, 405, 'method not allowed: GET only\n', { allow: 'GET' });
  if (options.tls) {
    const refused = whyRefused(req.socket as TLSSocket);
    if (refused) {
      options.logger.warn({ remote: req.socket.remoteAddress, reason: refused }, 'metrics: scrape refused (403)');
      return reply(res, 403, `forbidden: ${refused}\n`);
    }
  }
  const { contentType, text } = await exposition();
  res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' });
  res.end(text);
}

/** Why this client may not read the metrics (its certificate's role), or undefined when it may. */
function whyRefused(socket: TLSSocket): string | undefined {
  try {
    // Metrics are read-only figures: whoever may list the VMs may read them (viewer and above).
    const { role } = identityOf(socket);
    return authorize(role, 'query-vms', {}).allowed
      ? undefined
      : `role ${role} may not read metrics (viewer or above may)`;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

function reply(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
  res.end(body);
}
