/**
 * The agent side of the control channel: a WebSocket server that dispatches requests to a
 * handler table and broadcasts events. Every reply carries the request's id; a failing handler
 * answers `{ id, error: { code, message } }` and the connection stays up. Only the table's own
 * commands are dispatched (not "constructor" or "toString" inherited from Object.prototype).
 * A WebSocket upgrade carrying an Origin header — a browser page — is refused with HTTP 403
 * unless that origin is in `allowOrigins`; clients that are not browsers send none.
 *
 * With `tls` (issue 12) the channel is wss with mutual TLS 1.3: the client must present a
 * certificate of the fleet CA (no certificate, another CA → the handshake fails, nothing is
 * dispatched); its identity (CN, role) is kept with the connection, and every request is checked
 * with `authorize(role, command, args)` before any handler runs — refused, the reply is
 * ERR_FORBIDDEN and the handler is never called (default deny; role `agent` gets nothing here).
 * Without `tls` it is plaintext ws with no authorization, as before; the agent decides where
 * that is allowed. Handlers get the caller (or null on plaintext) as their second argument.
 *
 * Availability (issue 13): at most `maxClients` clients are connected at once — an upgrade
 * beyond that is refused with HTTP 503, which the client reports as ERR_TOO_MANY_CLIENTS — and
 * each connection may send `rateLimit` requests (a token bucket, rate-limit.ts). A request over
 * it is answered ERR_RATE_LIMITED before anything else looks at it, the connection stays up, and
 * the server stops reading that connection until its next token is due: a client that retries at
 * once just waits (TCP backpressure), so a flood costs the agent about twice the rate per client.
 * A client that keeps sending while refused — more than a burst of requests inside one such
 * pause, i.e. it does not wait for replies — is disconnected (close code 1008). With `tls`, TCP
 * connections are capped too (maxClients + HANDSHAKE_SLOTS) and a TLS handshake or an upgrade
 * request must complete within HANDSHAKE_TIMEOUT_MS, so idle unauthenticated connections cannot
 * hold the cap.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from 'pino';
import { identityOf, type TlsCredentials } from '../channel/tls.ts';
import { listenError } from '../address.ts';
import { MigrationError, toMigrationError } from '../errors.ts';
import { authorize, type Role } from '../security/roles.ts';
import type { CommandArgs, CommandName, CommandResult, ControlEvents, ControlRequest, EventName } from './messages.ts';
import { checkRateLimit, DEFAULT_RATE_LIMIT, TokenBucket, type RateLimit } from './rate-limit.ts';

/** Most control clients connected at once, by default. */
export const DEFAULT_MAX_CLIENTS = 64;
/** With tls: TCP connections allowed beyond maxClients, for clients still in their TLS handshake or upgrade. */
const HANDSHAKE_SLOTS = 16;
/** With tls: how long a connection may take to finish its TLS handshake, and then its upgrade request. */
const HANDSHAKE_TIMEOUT_MS = 5000;

/** Who sent a request, from the client certificate verified by the TLS handshake. */
export interface ControlCaller {
  /** The certificate's common name. */
  name: string;
  role: Role;
}

/** What a handler learns besides its args. */
export interface CommandContext {
  /** The verified caller; null on a plaintext server, where nobody proved who they are. */
  caller: ControlCaller | null;
}

export type CommandHandlers = {
  [C in CommandName]?: (args: CommandArgs<C>, context: CommandContext) => Promise<CommandResult<C>> | CommandResult<C>;
};

export interface ControlServerOptions {
  host: string;
  /** 0 picks a free port (see `address()`). */
  port: number;
  logger: Logger;
  /** Largest accepted request, bytes. @default 1 MiB */
  maxPayload?: number;
  /**
   * Browser origins allowed to open the control channel, exactly as a browser sends them
   * (e.g. "https://console.example:8443"). An upgrade with any other Origin header is refused
   * with 403. @default none: no browser page can drive this agent
   */
  allowOrigins?: readonly string[];
  /**
   * Serve wss with mutual TLS 1.3: the fleet CA, this agent's certificate and key (PEM, as
   * loadPki() gives them). Clients must present a certificate of that CA, and each command is
   * authorized by its role. @default none: plaintext ws, no authorization
   */
  tls?: TlsCredentials;
  /** Called for every client connected (its remote address), e.g. to warn about plaintext. */
  onConnection?: (remote: string) => void;
  /**
   * Called for every request the role check refused, before the refusal is answered (awaited:
   * e.g. an audit log that must hold the attempt first). Its own failure is logged, not answered.
   */
  onRefused?: (refusal: { caller: ControlCaller; command: string; args: unknown; error: MigrationError }) => unknown;
  /**
   * Most clients connected at once; an upgrade beyond it is refused with HTTP 503 (the client's
   * ERR_TOO_MANY_CLIENTS). @default 64
   */
  maxClients?: number;
  /**
   * Requests each connection may send: `burst` at once, `ratePerSec` sustained (a token bucket).
   * One over it is answered ERR_RATE_LIMITED and the connection stays up. @default 50/s, burst 100
   */
  rateLimit?: RateLimit;
}

type AnyHandler = (args: unknown, context: CommandContext) => Promise<unknown> | unknown;

export class ControlServer {
  readonly #wss: WebSocketServer;
  /** The HTTPS server the ws server rides on, with `tls`. */
  readonly #https: https.Server | undefined;
  readonly #handlers: CommandHandlers;
  readonly #logger: Logger;
  readonly #rateLimit: RateLimit;
  readonly #onRefused: ControlServerOptions['onRefused'];

  private constructor(
    wss: WebSocketServer,
    httpsServer: https.Server | undefined,
    handlers: CommandHandlers,
    logger: Logger,
    options: Pick<ControlServerOptions, 'onConnection' | 'onRefused'> & { rateLimit: RateLimit },
  ) {
    this.#wss = wss;
    this.#https = httpsServer;
    this.#handlers = handlers;
    this.#logger = logger;
    this.#rateLimit = options.rateLimit;
    this.#onRefused = options.onRefused;
    wss.on('connection', (socket, req) => {
      options.onConnection?.(`${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`);
      this.#serve(socket, httpsServer ? callerOf(req) : null);
    });
  }

  /** Start listening; resolves once bound, rejects with ERR_ADDRESS_IN_USE or ERR_ADDRESS_NOT_AVAILABLE if it cannot bind. */
  static start(options: ControlServerOptions, handlers: CommandHandlers): Promise<ControlServer> {
    const allowOrigins = [...(options.allowOrigins ?? [])];
    const { logger } = options;
    let limits: { maxClients: number; rateLimit: RateLimit };
    try {
      limits = resolveLimits(options);
    } catch (error) {
      return Promise.reject(error);
    }
    const { maxClients } = limits;
    let wss: WebSocketServer | undefined;
    const verifyClient = (
      info: { req: IncomingMessage },
      accept: (ok: boolean, code?: number, message?: string) => void,
    ): void => {
      // Browsers send Origin; the old hybi-08 handshake ws still accepts named it Sec-WebSocket-Origin.
      const header = info.req.headers.origin ?? info.req.headers['sec-websocket-origin'];
      const origin = Array.isArray(header) ? header.join(', ') : header;
      if (!originAllowed(origin, allowOrigins)) {
        logger.warn(
          { origin, remote: info.req.socket.remoteAddress },
          'control connection refused: its Origin is not in --allow-origin (403)',
        );
        return accept(false, 403, 'Forbidden');
      }
      if (options.tls) {
        // The handshake already refused unverified certificates; this also needs a name and a role.
        try {
          callerOf(info.req);
        } catch (error) {
          logger.warn(
            { err: error, remote: info.req.socket.remoteAddress },
            'control connection refused: no usable client certificate (401)',
          );
          return accept(false, 401, 'Unauthorized');
        }
      }
      // Upgrades complete synchronously once accepted, so clients.size is exact here.
      if ((wss?.clients.size ?? 0) >= maxClients) {
        logger.warn(
          { remote: info.req.socket.remoteAddress, maxClients },
          'control connection refused: too many control clients (503)',
        );
        return accept(false, 503, 'Service Unavailable');
      }
      accept(true);
    };
    const maxPayload = options.maxPayload ?? 1024 * 1024;
    const httpsServer = options.tls ? createHttpsServer(options.tls, logger, maxClients) : undefined;
    return new Promise((resolve, reject) => {
      const server = httpsServer
        ? new WebSocketServer({ server: httpsServer, maxPayload, verifyClient })
        : new WebSocketServer({ host: options.host, port: options.port, maxPayload, verifyClient });
      wss = server;
      const onListening = (): void => {
        server.off('error', onError);
        resolve(
          new ControlServer(server, httpsServer, handlers, logger, {
            onConnection: options.onConnection,
            onRefused: options.onRefused,
            rateLimit: limits.rateLimit,
          }),
        );
      };
      const onError = (error: Error): void => {
        server.close();
        reject(listenError('the control API', options, error));
      };
      // The WebSocketServer re-emits its HTTP(S) server's errors, so this one listener hears a
      // failed listen either way (and an unheard one would crash the process).
      server.once('error', onError);
      if (httpsServer) httpsServer.listen(options.port, options.host, onListening);
      else server.once('listening', onListening);
    });
  }

  /** The bound address, e.g. to learn the port after listening on 0. */
  address(): { host: string; port: number } {
    const address = this.#wss.address();
    if (typeof address === 'string' || address === null) throw new MigrationError('ERR_INTERNAL', 'no TCP address');
    return { host: address.address, port: address.port };
  }

  /** Send an event to every connected client. */
  emit<E extends EventName>(event: E, data: ControlEvents[E]): void {
    const text = JSON.stringify({ event, data, timestamp: Date.now() });
    for (const client of this.#wss.clients) {
      if (client.readyState === client.OPEN) client.send(text);
    }
  }

  async close(): Promise<void> {
    for (const client of this.#wss.clients) client.terminate();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
    const server = this.#https;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  #serve(socket: WebSocket, caller: ControlCaller | null): void {
    if (caller) this.#logger.debug({ caller }, 'control client connected');
    socket.on('error', (error) => this.#logger.debug({ err: error }, 'control client error'));
    const bucket = new TokenBucket(this.#rateLimit);
    let resumeTimer: NodeJS.Timeout | undefined;
    let refusedWhilePaused = 0;
    socket.on('close', () => clearTimeout(resumeTimer));
    socket.on('message', (data, isBinary) => {
      if (socket.readyState !== socket.OPEN) return;
      const text = isBinary ? null : data.toString();
      if (bucket.take()) {
        void this.#answer(socket, text, caller);
        return;
      }
      // Over its rate: refuse, and read nothing more from it until its next token is due.
      const waitMs = bucket.waitMs();
      if (resumeTimer !== undefined && ++refusedWhilePaused > this.#rateLimit.burst) {
        this.#logger.warn({ caller }, 'control client disconnected: it keeps sending while rate limited');
        socket.close(1008, 'rate limit exceeded');
        // Read again, to get the client's close frame (what it sent before is dropped, unanswered).
        clearTimeout(resumeTimer);
        socket.resume();
        return;
      }
      this.#refuse(socket, text, waitMs);
      if (resumeTimer === undefined) {
        socket.pause();
        resumeTimer = setTimeout(() => {
          resumeTimer = undefined;
          refusedWhilePaused = 0;
          if (socket.readyState === socket.OPEN) socket.resume();
        }, waitMs);
      }
    });
  }

  /** Answer a request over the client's rate: ERR_RATE_LIMITED, with its id if it has one. */
  #refuse(socket: WebSocket, text: string | null, waitMs: number): void {
    let id = 0;
    try {
      id = parseRequest(text).id;
    } catch {
      // Malformed as well: answered with id 0, like any malformed request.
    }
    const { ratePerSec, burst } = this.#rateLimit;
    const error = new MigrationError(
      'ERR_RATE_LIMITED',
      `too many requests from this client (limit ${ratePerSec}/s, burst ${burst}); retry in ${waitMs} ms`,
    );
    if (socket.readyState === socket.OPEN) socket.send(JSON.stringify({ id, error: error.toJSON() }));
  }

  async #refused(refusal: Parameters<NonNullable<ControlServerOptions['onRefused']>>[0]): Promise<void> {
    try {
      await this.#onRefused?.(refusal);
    } catch (error) {
      this.#logger.error({ err: error, command: refusal.command }, 'could not record a refused command');
    }
  }

  async #answer(socket: WebSocket, text: string | null, caller: ControlCaller | null): Promise<void> {
    let id = 0;
    try {
      const request = parseRequest(text);
      id = request.id;
      const args: unknown = request.args ?? {};
      // Authorize before anything else looks at the command: default deny, no handler runs.
      if (this.#https) {
        if (!caller) throw new MigrationError('ERR_UNAUTHENTICATED', 'this connection carries no verified identity');
        const verdict = authorize(caller.role, request.command, args);
        if (!verdict.allowed) {
          this.#logger.warn({ caller, command: request.command }, 'control command refused');
          const error = new MigrationError(
            'ERR_FORBIDDEN',
            `refused "${request.command}" for "${caller.name}" (role ${caller.role}): ${verdict.reason}`,
          );
          await this.#refused({ caller, command: request.command, args, error });
          throw error;
        }
      }
      // Own properties only: "constructor", "toString", "__proto__"… are no commands.
      const handler = Object.hasOwn(this.#handlers, request.command)
        ? (this.#handlers[request.command as CommandName] as AnyHandler | undefined)
        : undefined;
      if (typeof handler !== 'function') {
        throw new MigrationError(
          'ERR_CONTROL',
          `unknown command "${request.command}"; this agent knows: ${Object.keys(this.#handlers).join(', ')}`,
        );
      }
      const result = await handler(args, { caller });
      socket.send(JSON.stringify({ id, return: result ?? null }));
    } catch (error) {
      const failure = toMigrationError(error);
      if (failure.code === 'ERR_INTERNAL') this.#logger.error({ err: error }, 'control command failed');
      if (socket.readyState === socket.OPEN) {
        socket.send(JSON.stringify({ id, error: failure.toJSON() }));
      }
    }
  }
}

/**
 * The HTTPS server for wss: TLS 1.3, client certificates of the fleet CA required (the handshake
 * fails without one). A failed handshake is logged; a plain HTTP request is told to upgrade.
 */
function createHttpsServer(credentials: TlsCredentials, logger: Logger, maxClients: number): https.Server {
  const { ca, cert, key } = credentials;
  const server = https.createServer({
    ca,
    cert,
    key,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    headersTimeout: HANDSHAKE_TIMEOUT_MS,
    requestTimeout: HANDSHAKE_TIMEOUT_MS,
    connectionsCheckingInterval: 1000,
  });
  // Connected clients, plus a few still in their handshake: beyond that, TCP connections are
  // dropped before any TLS work (a client sees the connection reset).
  server.maxConnections = maxClients + HANDSHAKE_SLOTS;
  server.on('tlsClientError', (error, socket) =>
    logger.warn({ err: error, remote: socket.remoteAddress }, 'control connection refused: TLS handshake failed'),
  );
  server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' }).end('control channel: use WebSocket\n');
  });
  return server;
}

/** The limits in force: the options' or the defaults, checked (ERR_INVALID_ARGUMENT). */
function resolveLimits(options: ControlServerOptions): { maxClients: number; rateLimit: RateLimit } {
  const maxClients = options.maxClients ?? DEFAULT_MAX_CLIENTS;
  if (!(Number.isSafeInteger(maxClients) && maxClients >= 1)) {
    throw new MigrationError('ERR_INVALID_ARGUMENT', `maxClients must be a whole number ≥ 1, got ${maxClients}`);
  }
  return { maxClients, rateLimit: checkRateLimit(options.rateLimit ?? DEFAULT_RATE_LIMIT, 'control rate limit') };
}

/** The verified caller of a wss connection; ERR_UNAUTHENTICATED / ERR_CERTIFICATE when there is none. */
function callerOf(req: IncomingMessage): ControlCaller {
  const { name, role } = identityOf(req.socket as TLSSocket);
  return { name, role };
}

/** No Origin header (not a browser), or one listed exactly. */
function originAllowed(origin: string | undefined, allowOrigins: readonly string[]): boolean {
  return origin === undefined || allowOrigins.includes(origin);
}

function parseRequest(text: string | null): ControlRequest {
  if (text === null) throw new MigrationError('ERR_CONTROL', 'control requests are JSON text frames, not binary');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new MigrationError('ERR_CONTROL', 'control request is not valid JSON');
  }
  const request = value as Partial<ControlRequest> | null;
  if (
    typeof request !== 'object' ||
    request === null ||
    typeof request.id !== 'number' ||
    typeof request.command !== 'string'
  ) {
    throw new MigrationError('ERR_CONTROL', 'control request must be {"id": number, "command": string, "args"?: {}}');
  }
  return request as ControlRequest;
}
