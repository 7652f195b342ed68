/**
 * A FramedSocket's send path: messages → encoded frames → the socket, with backpressure. Shape of
 * libp2p's MessageStream: every send returns false once the write buffer is at or above
 * `writeHighWaterMark` and the caller awaits `onDrain()`; a hard cap (`maxWriteBufferBytes`)
 * turns a caller that ignores that into ERR_BUFFER_OVERFLOW instead of unbounded memory.
 *
 * Page batches leave without a copy: `sendPagesFrom(batch, memory)` and `sendPages(batch, views)`
 * write the header and metadata followed by views of guest memory inside `cork()`/`uncork()`, so
 * a batch goes out in one `writev`. The connection's lifecycle (is it still writable? fail it)
 * is FramedSocket's, reached through the SenderLink it gives this class.
 */
import type net from 'node:net';
import { MigrationError } from '../errors.ts';
import {
  encodeFrame,
  encodePages,
  encodePagesFrom,
  frameByteLength,
  type EncodeOptions,
  type PagesBatch,
} from './encode.ts';
import type { ResolvedFramedSocketOptions } from './framed-socket-options.ts';
import type { FramedSocketStats } from './framed-socket.ts';
import type { Message } from './message-types.ts';

/** What the send path needs from its connection. */
export interface SenderLink {
  /** The connection's error, or ERR_CONNECTION once it is closing or closed; undefined while writable. */
  unwritable(): MigrationError | undefined;
  /** Fail the connection with `error` (a send overflowed the write buffer). */
  fail(error: MigrationError): void;
  /** A frame was written (keepalive). */
  sent(): void;
}

interface DrainWaiter {
  resolve: () => void;
  reject: (err: MigrationError) => void;
}

export class FrameSender {
  readonly #socket: net.Socket;
  readonly #highWaterMark: number;
  readonly #maxBuffered: number;
  readonly #encode: EncodeOptions;
  readonly #stats: FramedSocketStats;
  readonly #link: SenderLink;
  readonly #drainWaiters: DrainWaiter[] = [];

  constructor(
    socket: net.Socket,
    opts: Readonly<ResolvedFramedSocketOptions>,
    stats: FramedSocketStats,
    link: SenderLink,
  ) {
    this.#socket = socket;
    this.#highWaterMark = opts.writeHighWaterMark;
    this.#maxBuffered = opts.maxWriteBufferBytes;
    this.#encode = { version: opts.version, maxFrameBytes: opts.maxFrameBytes, pageSize: opts.pageSize };
    this.#stats = stats;
    this.#link = link;
  }

  /** Page size of Pages frames sent from now on. */
  set pageSize(pageSize: number) {
    this.#encode.pageSize = pageSize;
  }

  /** One message; see FramedSocket.send. */
  send(message: Message, onWritten?: () => void): boolean {
    this.#checkWritable();
    return this.write(this.encode(message), onWritten);
  }

  /** Several messages as one write; see FramedSocket.sendAll. */
  sendAll(messages: readonly Message[]): boolean {
    this.#checkWritable();
    this.#socket.cork();
    try {
      let ok = true;
      for (const m of messages) ok = this.write(this.encode(m));
      return ok;
    } finally {
      this.#socket.uncork();
    }
  }

  /** A page batch from views of guest memory; see FramedSocket.sendPages. */
  sendPages(batch: PagesBatch, views: readonly Uint8Array[]): boolean {
    this.#checkWritable();
    return this.write(encodePages(batch, views, this.#encode));
  }

  /** A page batch cut straight from guest memory; see FramedSocket.sendPagesFrom. */
  sendPagesFrom(batch: PagesBatch, memory: Uint8Array, firstPage: number): boolean {
    this.#checkWritable();
    return this.write(encodePagesFrom(batch, memory, firstPage, this.#encode));
  }

  /** The frame of `message` with this connection's version, limits and page size. */
  encode(message: Message): Uint8Array[] {
    return encodeFrame(message, this.#encode);
  }

  /**
   * Write one encoded frame, unless it would pass maxWriteBufferBytes: then fail the connection
   * and throw ERR_BUFFER_OVERFLOW. Returns false at or above writeHighWaterMark. Does not check
   * that the connection is writable (the keepalive's heartbeats come through here).
   * `onWritten` is called once the socket holds no reference to the buffers any more (they
   * went to the kernel, or the connection was torn down), so their memory may be reused.
   */
  write(buffers: Uint8Array[], onWritten?: () => void): boolean {
    const socket = this.#socket;
    const bytes = frameByteLength(buffers);
    if (socket.writableLength + bytes > this.#maxBuffered) {
      const err = new MigrationError(
        'ERR_BUFFER_OVERFLOW',
        `write buffer would hold ${socket.writableLength + bytes} bytes, over its ${this.#maxBuffered}-byte cap (send() returned false and onDrain() was not awaited)`,
      );
      this.#link.fail(err);
      throw err;
    }
    // Node calls a write's callback after the chunk left its buffer, with an error if the
    // socket was destroyed first: either way it is done with the memory.
    const done = onWritten && ((): void => onWritten());
    if (buffers.length === 1) {
      socket.write(buffers[0]!, done);
    } else {
      socket.cork();
      for (let i = 0; i < buffers.length; i++) socket.write(buffers[i]!, i === buffers.length - 1 ? done : undefined);
      socket.uncork();
    }
    this.#stats.bytesSent += bytes;
    this.#stats.framesSent++;
    this.#link.sent();
    return socket.writableLength < this.#highWaterMark;
  }

  /** See FramedSocket.onDrain. */
  onDrain(options?: { signal?: AbortSignal }): Promise<void> {
    const unwritable = this.#link.unwritable();
    if (unwritable) return Promise.reject(unwritable);
    if (this.#socket.writableLength < this.#highWaterMark) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const signal = options?.signal;
      const onAbort = (): void => {
        const i = this.#drainWaiters.indexOf(waiter);
        if (i >= 0) this.#drainWaiters.splice(i, 1);
        reject(new MigrationError('ERR_CANCELLED', 'onDrain aborted'));
      };
      const waiter: DrainWaiter = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#drainWaiters.push(waiter);
    });
  }

  /** The socket drained: every onDrain waiter resolves. */
  drained(): void {
    for (const w of this.#drainWaiters.splice(0)) w.resolve();
  }

  /** The socket closed: every onDrain waiter rejects with `error`. */
  closed(error: MigrationError): void {
    for (const w of this.#drainWaiters.splice(0)) w.reject(error);
  }

  #checkWritable(): void {
    const unwritable = this.#link.unwritable();
    if (unwritable) throw unwritable;
  }
}
