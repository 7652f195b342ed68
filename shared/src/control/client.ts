/**
 * The client side of the control channel (used by the CLI and the tests): typed requests that
 * resolve with the agent's `return` or reject with its MigrationError, and an event stream.
 * With `tls` it speaks wss with a client certificate and trusts only the fleet CA; the server's
 * certificate must carry the URL's host (DNS or IP SAN), as any TLS client checks.
 */
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import nodeTls from 'node:tls';
import WebSocket from 'ws';
import type { TlsCredentials } from '../channel/tls.ts';
import { MigrationError, ERROR_CODES, type ErrorCode } from '../errors.ts';
import type { CommandArgs, CommandName, CommandResult, ControlEvent, ControlEvents, EventName } from './messages.ts';

export interface ControlClientOptions {
  /** How long the connection and WebSocket handshake may take. @default 5000 */
  timeoutMs?: number;
  /**
   * Connect over wss with this client certificate and key, trusting only `ca` (PEM, as loadPki()
   * gives them). A URL without a scheme then means wss://. @default none: ws:// without a certificate
   */
  tls?: TlsCredentials;
  /**
   * The name the agent's certificate must carry, when it differs from the URL's host (e.g. an
   * agent named `agent-a` reached at 127.0.0.1). @default the URL's host
   */
  expectName?: string;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: MigrationError) => void;
}

export class ControlClient {
  readonly #socket: WebSocket;
  readonly #pending = new Map<number, Pending>();
  readonly #events = new EventEmitter();
  /** Not on #events: an agent's event may carry any name. */
  readonly #closeListeners: Array<(error: MigrationError) => void> = [];
  #nextId = 1;
  #closedError: MigrationError | undefined;
  /** The name on the agent's verified certificate (wss), null on ws. */
  readonly agentName: string | null;

  private constructor(socket: WebSocket, agentName: string | null) {
    this.#socket = socket;
    this.agentName = agentName;
    socket.on('message', (data) => this.#onMessage(data.toString()));
    socket.on('close', () => this.#failAll(new MigrationError('ERR_CONNECTION', 'control connection closed')));
    socket.on('error', (error) => this.#failAll(new MigrationError('ERR_CONNECTION', error.message, { cause: error })));
  }

  /**
   * Connect to an agent's control URL, e.g. "ws://127.0.0.1:7171" or, with `tls`,
   * "wss://agent-a:7171" (a bare "host:port" works too). Rejects with ERR_UNAUTHENTICATED when
   * TLS fails — the server refused our certificate, or its own is not of our CA or not for that
   * host — with ERR_INVALID_ARGUMENT for a certificate over ws://, with ERR_TOO_MANY_CLIENTS when
   * the agent serves its most control clients already (HTTP 503), else with ERR_CONNECTION.
   */
  static connect(url: string, options: ControlClientOptions = {}): Promise<ControlClient> {
    const { timeoutMs = 5000, tls, expectName } = options;
    const target = /^wss?:\/\//.test(url) ? url : `${tls ? 'wss' : 'ws'}://${url}`;
    const secure = target.startsWith('wss://');
    if (tls && !secure) {
      return Promise.reject(
        new MigrationError('ERR_INVALID_ARGUMENT', `${target}: a client certificate is only sent over wss://`),
      );
    }
    // Node's TLS server drops a connection whose client certificate it refuses without an alert,
    // right after a TLS 1.3 handshake that looked complete to us: watch for exactly that.
    let handshaken = false;
    let agentName: string | null = null;
    const createConnection = (connectOptions: nodeTls.ConnectionOptions): nodeTls.TLSSocket => {
      // As ws's own tlsConnect: no path; SNI for a host name, none for an IP address.
      const host = expectName ?? connectOptions.host ?? '';
      const socket = nodeTls.connect({
        ...connectOptions,
        path: undefined,
        servername: isIP(host) ? '' : host,
        ...(expectName
          ? { checkServerIdentity: (_host: string, cert) => nodeTls.checkServerIdentity(expectName, cert) }
          : {}),
      });
      socket.once('secureConnect', () => {
        handshaken = true;
        // Verified by now (rejectUnauthorized, and the host or expectName checked): the agent's name.
        const cn = socket.getPeerCertificate().subject?.CN;
        agentName = (Array.isArray(cn) ? cn[0] : cn) ?? null;
      });
      return socket;
    };
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(target, {
        handshakeTimeout: timeoutMs,
        ...(tls
          ? {
              ca: tls.ca,
              cert: tls.cert,
              key: tls.key,
              minVersion: 'TLSv1.3' as const,
              createConnection: createConnection as unknown as WebSocket.ClientOptions['createConnection'],
            }
          : {}),
        rejectUnauthorized: true,
      });
      socket.once('open', () => resolve(new ControlClient(socket, agentName)));
      socket.once('unexpected-response', (_request, response) => {
        const status = response.statusCode ?? 0;
        socket.terminate();
        reject(
          status === 401
            ? new MigrationError('ERR_UNAUTHENTICATED', `${target} refused our certificate (HTTP 401)`)
            : status === 503
              ? new MigrationError(
                  'ERR_TOO_MANY_CLIENTS',
                  `${target} serves its most control clients already (HTTP 503); retry later`,
                )
              : new MigrationError('ERR_CONNECTION', `${target} refused the control connection (HTTP ${status})`),
        );
      });
      socket.once('error', (error) => {
        socket.terminate();
        reject(connectError(target, secure, handshaken, error));
      });
    });
  }

  /** Send a command and wait for its answer. */
  request<C extends CommandName>(command: C, args: CommandArgs<C>): Promise<CommandResult<C>> {
    if (this.#closedError) return Promise.reject(this.#closedError);
    const id = this.#nextId++;
    return new Promise<CommandResult<C>>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.#socket.send(JSON.stringify({ id, command, args }));
    });
  }

  /** Subscribe to an agent event. Returns the unsubscribe function. */
  on<E extends EventName>(event: E, listener: (data: ControlEvents[E], timestamp: number) => void): () => void {
    const wrapped = (message: ControlEvent): void => listener(message.data as ControlEvents[E], message.timestamp);
    this.#events.on(event, wrapped);
    return () => this.#events.off(event, wrapped);
  }

  /**
   * Called once when the connection ends for any reason (the agent stopped, the network, or
   * close()), with why — at once if it has already ended.
   */
  onClose(listener: (error: MigrationError) => void): void {
    if (this.#closedError) listener(this.#closedError);
    else this.#closeListeners.push(listener);
  }

  close(): void {
    this.#socket.close();
  }

  #onMessage(text: string): void {
    let message: { id?: number; return?: unknown; error?: { code: string; message: string }; event?: string };
    try {
      message = JSON.parse(text) as typeof message;
    } catch {
      return;
    }
    if (typeof message.event === 'string') {
      this.#events.emit(message.event, message as ControlEvent);
      return;
    }
    if (typeof message.id !== 'number') return;
    const pending = this.#pending.get(message.id);
    if (!pending) return;
    this.#pending.delete(message.id);
    if (message.error) {
      const code = (message.error.code in ERROR_CODES ? message.error.code : 'ERR_CONTROL') as ErrorCode;
      pending.reject(new MigrationError(code, message.error.message));
    } else {
      pending.resolve(message.return);
    }
  }

  #failAll(error: MigrationError): void {
    this.#closedError ??= error;
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
    for (const listener of this.#closeListeners.splice(0)) listener(this.#closedError);
  }
}

/** TLS alerts the server sends when it refuses our certificate (OpenSSL error codes, via node). */
const REFUSED_BY_SERVER = /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_/;

/** Certificate checks node's TLS client fails on the server's certificate. */
const SERVER_NOT_TRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * A typed error for a failed connect: TLS failures are ERR_UNAUTHENTICATED, with the reason. A
 * connection reset after our TLS handshake completed and before any HTTP answer is the server
 * refusing our certificate (node's TLS server drops it without an alert).
 */
function connectError(target: string, secure: boolean, handshaken: boolean, error: Error): MigrationError {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  if (secure && handshaken && (code === 'ECONNRESET' || code === 'EPIPE')) {
    return new MigrationError(
      'ERR_UNAUTHENTICATED',
      `${target} refused our client certificate: it closed the connection right after the TLS handshake ` +
        `(a certificate not of its CA, expired, or none) (${error.message})`,
      { cause: error },
    );
  }
  if (secure && REFUSED_BY_SERVER.test(code)) {
    return new MigrationError('ERR_UNAUTHENTICATED', `${target} refused our client certificate: ${error.message}`, {
      cause: error,
    });
  }
  if (secure && SERVER_NOT_TRUSTED.has(code)) {
    return new MigrationError(
      'ERR_UNAUTHENTICATED',
      `${target} is not trusted: its certificate is not of our CA or not for this host (${code}): ${error.message}`,
      { cause: error },
    );
  }
  return new MigrationError('ERR_CONNECTION', `cannot reach agent at ${target}: ${error.message}`, { cause: error });
}
