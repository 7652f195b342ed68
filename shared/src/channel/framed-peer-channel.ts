/**
 * PeerChannel over a FramedSocket: an inbox queue in front of the socket's 'message' events, so
 * the state machines can `await next()` in order, and one sticky first error that fails every
 * waiting and later call. The inbox is bounded: past INBOX_HIGH queued messages the socket
 * stops reading (TCP pushes back on the peer) until the consumer has taken it down to
 * INBOX_LOW — a consumer that falls behind never lets a peer grow our memory. An Error frame from the peer becomes that error: the peer's code is
 * kept when this build knows it (so ERR_DIGEST_MISMATCH found by the destination is reported as
 * such at the source), ERR_PEER_ABORTED otherwise; the message says it came from the peer.
 */
import { ERROR_CODES, MigrationError, type ErrorCode } from '../errors.ts';
import {
  messageName,
  msg,
  MsgType,
  type Capability,
  type FramedSocket,
  type Message,
  type MessageOf,
  type PagesBatch,
} from '../protocol/index.ts';
import type { PeerChannel } from './peer-channel.ts';
import type { PeerIdentity } from './tls.ts';

/** Queued messages at which reading pauses, and at which it resumes. */
export const INBOX_HIGH = 256;
export const INBOX_LOW = 64;

interface Waiter {
  resolve: (message: Message) => void;
  reject: (error: MigrationError) => void;
}

export class FramedPeerChannel implements PeerChannel {
  #remoteAgentId: string;
  #handshakeRttMs: number;
  readonly #socket: FramedSocket;
  readonly #inbox: Message[] = [];
  readonly #waiters: Waiter[] = [];
  #failure: MigrationError | undefined;
  #closed = false;
  #capabilities: ReadonlySet<Capability> = new Set();
  #peer: PeerIdentity | undefined;
  /** True while this channel paused the socket because the inbox was full. */
  #inboxFull = false;
  #resolveFailed: (error: MigrationError) => void = () => {};
  readonly #failed = new Promise<MigrationError>((resolve) => (this.#resolveFailed = resolve));
  /** Message types handed to a handler instead of the inbox (route()). */
  readonly #routes = new Map<Message['type'], (message: Message) => void>();

  constructor(socket: FramedSocket, handshake: { remoteAgentId: string; rttMs: number }) {
    this.#socket = socket;
    this.#remoteAgentId = handshake.remoteAgentId;
    this.#handshakeRttMs = handshake.rttMs;
    socket.on('message', (message) => this.#onMessage(message));
    socket.on('error', (error) => this.#setFailure(error));
    socket.on('close', (error) => {
      this.#closed = true;
      this.#setFailure(error ?? new MigrationError('ERR_CONNECTION', `connection to ${this.remoteAgentId} closed`));
    });
  }

  get remoteAgentId(): string {
    return this.#remoteAgentId;
  }

  get handshakeRttMs(): number {
    return this.#handshakeRttMs;
  }

  get capabilities(): ReadonlySet<Capability> {
    return this.#capabilities;
  }

  get peer(): PeerIdentity | undefined {
    return this.#peer;
  }

  /** Record the peer's verified identity (mutual TLS), before any frame is read. */
  authenticated(peer: PeerIdentity): void {
    this.#peer = peer;
  }

  /** Record who the peer is once the handshake told us (the RTT it measured, what was negotiated). */
  identify(remoteAgentId: string, rttMs: number, capabilities: ReadonlySet<Capability>): void {
    this.#remoteAgentId = remoteAgentId;
    this.#handshakeRttMs = rttMs;
    this.#capabilities = capabilities;
  }

  /** Messages received and not yet taken by next(). */
  get queued(): number {
    return this.#inbox.length;
  }

  /** True while reading is paused because the inbox is full. */
  get readingPaused(): boolean {
    return this.#inboxFull;
  }

  get failure(): MigrationError | undefined {
    return this.#failure;
  }

  get bytesSent(): number {
    return this.#socket.stats.bytesSent;
  }

  get bytesReceived(): number {
    return this.#socket.stats.bytesReceived;
  }

  send(message: Message, onWritten?: () => void): boolean {
    if (this.#failure) throw this.#failure;
    return this.#socket.send(message, onWritten);
  }

  sendPages(batch: PagesBatch, views: readonly Uint8Array[]): boolean {
    if (this.#failure) throw this.#failure;
    return this.#socket.sendPages(batch, views);
  }

  async drained(signal?: AbortSignal): Promise<void> {
    if (this.#failure) throw this.#failure;
    await this.#socket.onDrain(signal ? { signal } : undefined);
  }

  next(signal?: AbortSignal): Promise<Message> {
    const queued = this.#inbox.shift();
    if (this.#inboxFull && this.#inbox.length <= INBOX_LOW) {
      this.#inboxFull = false;
      this.#socket.resume();
    }
    if (queued) return Promise.resolve(queued);
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise<Message>((resolve, reject) => {
      const waiter: Waiter = {
        resolve: (message) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(message);
        },
        reject: (error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      };
      const onAbort = (): void => {
        const index = this.#waiters.indexOf(waiter);
        if (index >= 0) this.#waiters.splice(index, 1);
        reject(
          signal?.reason instanceof MigrationError ? signal.reason : new MigrationError('ERR_CANCELLED', 'aborted'),
        );
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  whenFailed(): Promise<MigrationError> {
    return this.#failed;
  }

  route<T extends Message['type']>(type: T, handler: (message: MessageOf<T>) => void): () => void {
    const h = handler as (message: Message) => void;
    this.#routes.set(type, h);
    return () => {
      if (this.#routes.get(type) === h) this.#routes.delete(type);
    };
  }

  async expect<T extends Message['type']>(type: T, signal?: AbortSignal): Promise<MessageOf<T>> {
    const message = await this.next(signal);
    if (message.type !== type) {
      throw new MigrationError(
        'ERR_UNEXPECTED_MESSAGE',
        `expected ${messageName(type)} from ${this.remoteAgentId}, got ${messageName(message.type)}`,
      );
    }
    return message as MessageOf<T>;
  }

  abort(error: MigrationError): void {
    this.#setFailure(error);
    if (this.#closed) return;
    try {
      this.#socket.send(msg.errorFrom(error));
    } catch {
      // The link is already gone: nothing to tell.
    }
    void this.#socket.close();
    // A peer that never reads must not keep the socket open: close() flushes, destroy() after a grace.
    setTimeout(() => this.#socket.destroy(), 1000).unref();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#socket.close();
  }

  #onMessage(message: Message): void {
    if (message.type === MsgType.Error) {
      const code: ErrorCode = message.code in ERROR_CODES ? (message.code as ErrorCode) : 'ERR_PEER_ABORTED';
      this.#setFailure(new MigrationError(code, `${this.remoteAgentId}: ${message.message}`));
      return;
    }
    const routed = this.#routes.get(message.type);
    if (routed) return routed(message);
    const waiter = this.#waiters.shift();
    if (waiter) return waiter.resolve(message);
    this.#inbox.push(message);
    if (!this.#inboxFull && this.#inbox.length >= INBOX_HIGH) {
      this.#inboxFull = true;
      this.#socket.pause();
    }
  }

  #setFailure(error: MigrationError): void {
    if (this.#failure) return;
    this.#failure = error;
    this.#resolveFailed(error);
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
  }
}
