/**
 * FramedSocket: frames over one TCP connection, with backpressure both ways, heartbeats and an
 * idle timeout. This file owns the connection's lifecycle — creating it (`connect`, `adopt`),
 * its events, pausing, closing and the first error — and puts together the parts that each own
 * one concern:
 *
 * - framed-socket-options.ts: the options, their defaults and their validation;
 * - frame-sender.ts: the send path (encoding, cork/uncork, write-buffer caps, `onDrain`);
 * - frame-receiver.ts: the receive path (`onread` into a reused buffer or into guest memory,
 *   the FrameDecoder, the PageSink);
 * - keepalive.ts: heartbeats and the idle timeout;
 * - socket-handle.ts: the re-wrap of an accepted socket's handle (Node private API);
 * - framed-server.ts: `createFramedServer`, whose connections are FramedSockets.
 *
 * Lifecycle and errors: the first error wins. It is emitted once as `'error'` (only when someone
 * listens — an unobserved protocol error must not crash the process), then `'close'` carries it
 * (or `undefined` for a clean close); `closed` resolves with the same value. Errors detected
 * locally (bad frames, idle timeout, a listener throwing a MigrationError) are reported to the
 * peer with an `Error` frame before the connection is closed; an `Error` frame received from the
 * peer becomes the connection's error (ERR_PEER_ABORTED). Heartbeat frames are handled below
 * the events and not emitted unless `emitHeartbeats` is set.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { MigrationError, toMigrationError } from '../errors.ts';
import type { PagesBatch } from './encode.ts';
import { msg, peerError } from './message-factories.ts';
import { MsgType, type Message } from './message-types.ts';
import type { PageSink } from './page-sink.ts';
import {
  resolveConnectTarget,
  resolveFramedSocketOptions,
  type FramedConnectOptions,
  type FramedSocketOptions,
  type ResolvedFramedSocketOptions,
} from './framed-socket-options.ts';
import { FrameReceiver } from './frame-receiver.ts';
import { FrameSender } from './frame-sender.ts';
import { Keepalive } from './keepalive.ts';
import { canReadTlsWith, canRewrap, readTlsWith, rewrap } from './socket-handle.ts';

/** Events of a FramedSocket. */
export interface FramedSocketEvents {
  /** A decoded message, in stream order (Pages go to the sink instead when one is set). */
  message: [message: Message];
  /** The first error (always a MigrationError); emitted only if listened to; 'close' follows. */
  error: [error: MigrationError];
  /** The write buffer emptied after `send()` returned false. */
  drain: [];
  /** The connection is closed; `error` is the first error, undefined for a clean close. */
  close: [error: MigrationError | undefined];
}

/** Byte and frame counters. */
export interface FramedSocketStats {
  bytesSent: number;
  bytesReceived: number;
  framesSent: number;
}

type Resolved = Readonly<ResolvedFramedSocketOptions>;

/** Makes the socket, given the `onread` option of the receive path (undefined in 'data' mode). */
type OpenSocket = (onread: net.OnReadOpts | undefined) => net.Socket;

/** Frames over a TCP socket; see the file comment. Create with `connect`, `adopt` or `createFramedServer`. */
export class FramedSocket extends EventEmitter<FramedSocketEvents> {
  /** How bytes are read: into one reused buffer, or fresh buffers from 'data' events. */
  readonly readMode: 'onread' | 'data';
  /** Resolves once closed, with the first error or undefined. */
  readonly closed: Promise<MigrationError | undefined>;
  readonly stats: FramedSocketStats = { bytesSent: 0, bytesReceived: 0, framesSent: 0 };

  readonly #socket: net.Socket;
  readonly #opts: Resolved;
  readonly #receiver: FrameReceiver;
  readonly #sender: FrameSender;
  readonly #keepalive: Keepalive;
  #resolveClosed!: (err: MigrationError | undefined) => void;
  #error: MigrationError | undefined;
  #closing = false;
  #isClosed = false;
  #paused = false;

  private constructor(opts: Resolved, readMode: 'onread' | 'data', open: OpenSocket) {
    super();
    this.#opts = opts;
    this.readMode = readMode;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    this.#receiver = new FrameReceiver(opts, readMode, this.stats, {
      isClosing: () => this.#closing,
      isPaused: () => this.#paused,
      received: () => this.#keepalive.received(),
      message: (message) => this.#onMessage(message),
      fail: (error, notifyPeer) => this.#fail(error, notifyPeer),
    });
    const socket = open(readMode === 'onread' ? this.#receiver.onread() : undefined);
    this.#socket = socket;
    this.#sender = new FrameSender(socket, opts, this.stats, {
      unwritable: () =>
        this.#error ??
        (this.#closing || this.#isClosed ? new MigrationError('ERR_CONNECTION', 'connection is closed') : undefined),
      fail: (error) => this.#fail(error, false),
      sent: () => this.#keepalive.sent(),
    });
    this.#keepalive = new Keepalive(opts, {
      isPaused: () => this.#paused,
      isWriteIdle: () => socket.writableLength === 0,
      sendHeartbeat: (seq) => {
        try {
          this.#sender.write(this.#sender.encode(msg.heartbeat(seq)));
        } catch {
          // write has failed the connection already.
        }
      },
      idle: (error) => this.#fail(error, true),
    });
    socket.on('error', (err) => this.#socketOnError(err));
    socket.on('end', () => this.#receiver.end());
    socket.on('close', () => this.#socketOnClose());
    socket.on('drain', () => this.#socketOnDrain());
    if (readMode === 'data') socket.on('data', (chunk: Buffer) => this.#receiver.onData(chunk));
    if (opts.noDelay) socket.setNoDelay(true);
    if (socket.connecting) socket.once('connect', () => this.#startKeepalive());
    else this.#startKeepalive();
    socket.resume();
  }

  /** Connect to a FramedSocket server; reads use a reused buffer. Rejects with ERR_CONNECTION. */
  static connect(options: FramedConnectOptions): Promise<FramedSocket> {
    const opts = resolveFramedSocketOptions(options);
    const { host, port, connectTimeoutMs } = resolveConnectTarget(options);
    const f = new FramedSocket(opts, 'onread', (onread) =>
      net.connect({ host, port, writableHighWaterMark: opts.writeHighWaterMark, onread } as net.NetConnectOpts),
    );
    return new Promise((resolve, reject) => {
      const timer =
        connectTimeoutMs > 0
          ? setTimeout(() => {
              f.destroy(new MigrationError('ERR_CONNECTION', `connect to port ${port} timed out`));
            }, connectTimeoutMs)
          : undefined;
      const onClose = (err: MigrationError | undefined): void => {
        clearTimeout(timer);
        reject(err ?? new MigrationError('ERR_CONNECTION', 'connection closed while connecting'));
      };
      f.once('close', onClose);
      f.socket.once('connect', () => {
        clearTimeout(timer);
        f.off('close', onClose);
        resolve(f);
      });
    });
  }

  /**
   * Wrap an accepted socket. A socket from a `pauseOnConnect` server that has not read yet gets
   * its handle moved into a socket reading into a reused buffer (`readMode: 'onread'`); an
   * established TLS socket that nothing has read from yet is given `onread` in place (its handle
   * decrypts into the reused buffer or guest memory; socket-handle.ts); any other socket is read
   * through 'data' events.
   */
  static adopt(socket: net.Socket, options?: FramedSocketOptions): FramedSocket {
    return FramedSocket.adoptResolved(socket, resolveFramedSocketOptions(options));
  }

  /** `adopt` with options already resolved by `resolveFramedSocketOptions` (servers resolve once). */
  static adoptResolved(socket: net.Socket, opts: Readonly<ResolvedFramedSocketOptions>): FramedSocket {
    if (canRewrap(socket)) {
      return new FramedSocket(opts, 'onread', (onread) => rewrap(socket, onread!, opts.writeHighWaterMark));
    }
    const hwm = Math.max(opts.writeHighWaterMark, socket.writableHighWaterMark);
    const adjusted = Object.freeze({
      ...opts,
      writeHighWaterMark: hwm,
      maxWriteBufferBytes: Math.max(opts.maxWriteBufferBytes, hwm + opts.maxFrameBytes),
    });
    if (canReadTlsWith(socket)) return new FramedSocket(adjusted, 'onread', (onread) => readTlsWith(socket, onread!));
    return new FramedSocket(adjusted, 'data', () => socket);
  }

  /** Bytes accepted by `send` and not yet handed to the kernel. */
  get writableLength(): number {
    return this.#socket.writableLength;
  }

  /** True once reading is paused by `pause()`. */
  get isPaused(): boolean {
    return this.#paused;
  }

  /** The underlying socket (for addresses and tests; do not read or write it directly). */
  get socket(): net.Socket {
    return this.#socket;
  }

  /** Page geometry used for Pages frames in both directions (a received Setup updates it too). */
  setGeometry(geometry: { pageSize: number; pageCount?: number | undefined }): void {
    this.#receiver.decoder.setGeometry(geometry);
    this.#sender.pageSize = geometry.pageSize;
  }

  /** Install or remove the PageSink for received Pages frames. */
  setSink(sink: PageSink | undefined): void {
    this.#receiver.decoder.setSink(sink);
  }

  /**
   * Send one message. Returns false when the write buffer is at or above writeHighWaterMark:
   * await `onDrain()` before sending more. Throws the connection's error once it failed, and
   * ERR_BUFFER_OVERFLOW (failing the connection) if the frame would pass maxWriteBufferBytes.
   * `onWritten`: called once the socket is done with the message's payload bytes (they may be
   * reused then), also when the connection is torn down first.
   */
  send(message: Message, onWritten?: () => void): boolean {
    return this.#sender.send(message, onWritten);
  }

  /**
   * Send several messages as one write (`cork`/`uncork`): e.g. CpuState, DeviceState and
   * StopCopyEnd at the stop point. Same return and errors as `send`.
   */
  sendAll(messages: readonly Message[]): boolean {
    return this.#sender.sendAll(messages);
  }

  /** Hold writes until `uncork()` so several sends leave together (calls nest, as on net.Socket). */
  cork(): void {
    this.#socket.cork();
  }

  /** Release writes held since `cork()`. */
  uncork(): void {
    this.#socket.uncork();
  }

  /**
   * Send a page batch whose raw pages' bytes are `views` (subarrays of guest memory, in batch
   * order, any split). The views are not copied: they must not change until written — which is
   * what pre-copy wants anyway (a page dirtied meanwhile is re-sent next round). Same return and
   * errors as `send`.
   */
  sendPages(batch: PagesBatch, views: readonly Uint8Array[]): boolean {
    return this.#sender.sendPages(batch, views);
  }

  /**
   * Send a page batch cut straight from guest memory (one view per run of consecutive pages; see
   * `encodePagesFrom`). Same return and errors as `send`.
   */
  sendPagesFrom(batch: PagesBatch, memory: Uint8Array, firstPage = 0): boolean {
    return this.#sender.sendPagesFrom(batch, memory, firstPage);
  }

  /**
   * Resolves when the write buffer is below writeHighWaterMark (at once if it already is);
   * rejects with the connection's error if it closes first, or with ERR_CANCELLED on abort.
   */
  onDrain(options?: { signal?: AbortSignal }): Promise<void> {
    return this.#sender.onDrain(options);
  }

  /** Stop reading (the peer's sends back up into its own buffer); the idle timer is suspended. */
  pause(): void {
    this.#paused = true;
    this.#socket.pause();
  }

  /** Resume reading. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#keepalive.readingResumed();
    if (!this.#closing) this.#socket.resume();
  }

  /**
   * Close gracefully: pending writes are flushed, then the peer has lingerMs to close its side
   * before the socket is destroyed. Resolves when closed.
   */
  close(): Promise<MigrationError | undefined> {
    if (!this.#closing && !this.#isClosed) {
      this.#closing = true;
      this.#keepalive.stop();
      this.#socket.end(() => this.#lingerThenDestroy());
    }
    return this.closed;
  }

  /** Close at once. With `err`, it becomes the connection's error (if it is the first). */
  destroy(err?: unknown): void {
    if (err !== undefined && this.#error === undefined && !this.#isClosed) {
      this.#error = toMigrationError(err);
      this.#emitError(this.#error);
    }
    this.#closing = true;
    this.#keepalive.stop();
    this.#socket.destroy();
  }

  #startKeepalive(): void {
    if (!this.#closing) this.#keepalive.start();
  }

  #onMessage(message: Message): void {
    // The peer is closing and said why: that is this connection's error (unless one came first).
    if (message.type === MsgType.Error && this.#error === undefined) this.#error = peerError(message);
    this.emit('message', message);
  }

  #socketOnError(err: Error & { code?: string }): void {
    const text = err.code ? `${err.code}: ${err.message}` : err.message;
    this.#fail(new MigrationError('ERR_CONNECTION', text, { cause: err }), false);
  }

  #socketOnClose(): void {
    this.#isClosed = true;
    this.#closing = true;
    this.#keepalive.stop();
    const err = this.#error;
    this.#sender.closed(err ?? new MigrationError('ERR_CONNECTION', 'connection closed'));
    this.emit('close', err);
    this.#resolveClosed(err);
  }

  #socketOnDrain(): void {
    this.#sender.drained();
    this.emit('drain');
  }

  #emitError(err: MigrationError): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  /** Record the first error, tell the peer if asked, and close. Later errors are ignored. */
  #fail(err: MigrationError, notifyPeer: boolean): void {
    if (this.#isClosed || (this.#error !== undefined && this.#closing)) return;
    this.#error ??= err;
    this.#closing = true;
    this.#keepalive.stop();
    this.#emitError(this.#error);
    const socket = this.#socket;
    if (notifyPeer && this.#opts.notifyPeerOnError && socket.writable && !socket.destroyed) {
      // Reading goes on (discarding) so the peer's close is noticed; lingerMs bounds the wait.
      socket.resume();
      socket.end(Buffer.concat(this.#sender.encode(msg.errorFrom(err))));
      this.#lingerThenDestroy();
      return;
    }
    socket.destroy();
  }

  #lingerThenDestroy(): void {
    if (this.#isClosed) return;
    setTimeout(() => this.#socket.destroy(), this.#opts.lingerMs).unref();
  }
}
