/**
 * The agent side of the control channel: a WebSocket server that dispatches requests to a
 * handler table and broadcasts events. Every reply carries the request's id; a failing handler
 * answers `{ id, error: { code, message } }` and the connection stays up. Only the table's own
 * commands are dispatched (not "constructor" or "toString" inherited from Object.prototype).
 * A WebSocket upgrade carrying an Origin header — a browser page — is refused with HTTP 403
 * unless that origin is in `allowOrigins`; clients that are not browsers send none.
 */
import type { IncomingMessage } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from 'pino';
import { MigrationError, toMigrationError } from '../errors.ts';
import type { CommandArgs, CommandName, CommandResult, ControlEvents, ControlRequest, EventName } from './messages.ts';

export type CommandHandlers = {
  [C in CommandName]?: (args: CommandArgs<C>) => Promise<CommandResult<C>> | CommandResult<C>;
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
}

export class ControlServer {
  readonly #wss: WebSocketServer;
  readonly #handlers: CommandHandlers;
  readonly #logger: Logger;

  private constructor(wss: WebSocketServer, handlers: CommandHandlers, logger: Logger) {
    this.#wss = wss;
    this.#handlers = handlers;
    this.#logger = logger;
    wss.on('connection', (socket) => this.#serve(socket));
  }

  /** Start listening; resolves once bound, rejects with ERR_CONNECTION if it cannot bind. */
  static start(options: ControlServerOptions, handlers: CommandHandlers): Promise<ControlServer> {
    const allowOrigins = [...(options.allowOrigins ?? [])];
    return new Promise((resolve, reject) => {
      const wss = new WebSocketServer({
        host: options.host,
        port: options.port,
        maxPayload: options.maxPayload ?? 1024 * 1024,
        verifyClient: (
          info: { req: IncomingMessage },
          accept: (ok: boolean, code?: number, message?: string) => void,
        ) => {
          // Browsers send Origin; the old hybi-08 handshake ws still accepts named it Sec-WebSocket-Origin.
          const header = info.req.headers.origin ?? info.req.headers['sec-websocket-origin'];
          const origin = Array.isArray(header) ? header.join(', ') : header;
          if (originAllowed(origin, allowOrigins)) return accept(true);
          options.logger.warn(
            { origin, remote: info.req.socket.remoteAddress },
            'control connection refused: its Origin is not in --allow-origin (403)',
          );
          accept(false, 403, 'Forbidden');
        },
      });
      wss.once('listening', () => resolve(new ControlServer(wss, handlers, options.logger)));
      wss.once('error', (error) =>
        reject(
          new MigrationError(
            'ERR_CONNECTION',
            `cannot listen for control on ${options.host}:${options.port}: ${error.message}`,
            {
              cause: error,
            },
          ),
        ),
      );
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
  }

  #serve(socket: WebSocket): void {
    socket.on('error', (error) => this.#logger.debug({ err: error }, 'control client error'));
    socket.on('message', (data, isBinary) => {
      void this.#answer(socket, isBinary ? null : data.toString());
    });
  }

  async #answer(socket: WebSocket, text: string | null): Promise<void> {
    let id = 0;
    try {
      const request = parseRequest(text);
      id = request.id;
      // Own properties only: "constructor", "toString", "__proto__"… are no commands.
      const handler = Object.hasOwn(this.#handlers, request.command)
        ? (this.#handlers[request.command as CommandName] as
            ((args: unknown) => Promise<unknown> | unknown) | undefined)
        : undefined;
      if (typeof handler !== 'function') {
        throw new MigrationError(
          'ERR_CONTROL',
          `unknown command "${request.command}"; this agent knows: ${Object.keys(this.#handlers).join(', ')}`,
        );
      }
      const result = await handler(request.args ?? {});
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
