/**
 * The destination's gate for data connections still in their handshake — the ones that have not
 * proved anything yet (TCP accepted; TLS, then Hello → Welcome, not done). Two limits bound what
 * such peers cost (admission.ts decides):
 *
 *   count     at most `maxInHandshake` at once; one more is refused at accept, before TLS, with
 *             a plaintext Error frame ERR_TOO_MANY_CONNECTIONS (a raw client reads the code; a TLS
 *             client sees its handshake fail) — one small write, then the socket is closed
 *   deadline  `timeoutMs` from accept, absolute: heartbeats do not extend it. A connection whose
 *             TLS handshake has not finished by then is destroyed; one past TLS is failed with
 *             ERR_TIMEOUT (an Error frame) by whoever waits on `signal`. The same deadline bounds
 *             the wait for the connection's first message after the handshake (the daemon reads
 *             it with `signal`), so a peer that finished the handshake and then idles is closed too.
 *
 * A connection stops counting when its handshake finished (`done()`) or it closed. Refusals are
 * logged at most once a second (a flood would otherwise flood the log).
 */
import type net from 'node:net';
import type { Logger } from 'pino';
import { refuseOverLimit } from '../admission.ts';
import { MigrationError } from '../errors.ts';
import { encodeFrameBytes, msg } from '../protocol/index.ts';

export interface HandshakeGateOptions {
  /** Connections in their handshake at once. */
  maxInHandshake: number;
  /** From accept to the first message; for the handshake itself, and (signal) after it. */
  timeoutMs: number;
  logger: Logger;
}

/** One accepted connection on its way through the handshake. */
export interface PendingConnection {
  /** Aborts at the connection's deadline, its reason an ERR_TIMEOUT MigrationError. */
  readonly signal: AbortSignal;
  /** Its TLS handshake finished: from now on the deadline fails it through `signal`, not by destroying it. */
  secured(): void;
  /** Hello → Welcome done: it no longer counts against the limit (the deadline still holds for `signal`). */
  done(): void;
}

/** How long a refused connection may take to read its Error frame before it is destroyed. */
const REFUSAL_GRACE_MS = 1_000;
/** At most one warning about refusals per this many ms. */
const WARN_INTERVAL_MS = 1_000;

export class HandshakeGate {
  readonly #options: HandshakeGateOptions;
  #inHandshake = 0;
  /** TLS connections by remote address: the TLS server hands over the TLS socket, not the TCP one. */
  readonly #byRemote = new Map<string, PendingConnection>();
  #refusedSinceWarn = 0;
  #lastWarn = -Infinity;

  constructor(options: HandshakeGateOptions) {
    this.#options = options;
  }

  /** Connections in their handshake now. */
  get inHandshake(): number {
    return this.#inHandshake;
  }

  /**
   * A TCP connection was accepted: undefined when it was refused (and is being closed), else its
   * pending entry, whose deadline runs from now.
   */
  admit(raw: net.Socket): PendingConnection | undefined {
    raw.on('error', () => {}); // a reset during refusal or before TLS is the peer's business
    const refused = refuseOverLimit(
      this.#inHandshake,
      this.#options.maxInHandshake,
      'ERR_TOO_MANY_CONNECTIONS',
      'data connections in their handshake',
      '--max-unauthenticated',
    );
    if (refused) {
      this.#refuse(raw, refused);
      return undefined;
    }
    return this.#track(raw);
  }

  /** The entry of a connection by its socket's remote address (the TLS socket over an admitted one). */
  pendingOf(socket: net.Socket): PendingConnection | undefined {
    return this.#byRemote.get(remoteKey(socket));
  }

  #track(raw: net.Socket): PendingConnection {
    const { timeoutMs, logger } = this.#options;
    const key = remoteKey(raw);
    const controller = new AbortController();
    let counted = true;
    let isSecured = false;
    const uncount = (): void => {
      if (!counted) return;
      counted = false;
      this.#inHandshake--;
    };
    const timer = setTimeout(() => {
      const error = new MigrationError('ERR_TIMEOUT', `no handshake and first message within ${timeoutMs} ms`);
      if (counted)
        logger.debug({ event: 'handshake.timeout', peer: key }, 'closing a connection at its handshake deadline');
      controller.abort(error);
      if (!isSecured) raw.destroy();
    }, timeoutMs);
    timer.unref();
    const pending: PendingConnection = {
      signal: controller.signal,
      secured: () => {
        isSecured = true;
      },
      done: uncount,
    };
    this.#inHandshake++;
    this.#byRemote.set(key, pending);
    raw.once('close', () => {
      clearTimeout(timer);
      uncount();
      if (this.#byRemote.get(key) === pending) this.#byRemote.delete(key);
    });
    return pending;
  }

  #refuse(raw: net.Socket, error: MigrationError): void {
    raw.end(encodeFrameBytes(msg.errorFrom(error)));
    setTimeout(() => raw.destroy(), REFUSAL_GRACE_MS).unref();
    this.#refusedSinceWarn++;
    const now = performance.now();
    if (now - this.#lastWarn < WARN_INTERVAL_MS) return;
    this.#options.logger.warn(
      { event: 'handshake.refused', err: error, refused: this.#refusedSinceWarn },
      'refused data connections: too many in their handshake',
    );
    this.#refusedSinceWarn = 0;
    this.#lastWarn = now;
  }
}

function remoteKey(socket: net.Socket): string {
  return `${socket.remoteAddress ?? '?'}|${socket.remotePort ?? '?'}`;
}
