/**
 * FramedSocket: frames over one TCP connection, with backpressure both ways, heartbeats and an
 * idle timeout. Shape of libp2p's MessageStream: `send()` returns false when the write buffer is
 * above its high-water mark and the caller awaits `onDrain()`; a hard cap turns a caller that
 * ignores that into `ERR_BUFFER_OVERFLOW` instead of unbounded memory.
 *
 * Receive path (the bottleneck, see PERFORMANCE.md): the socket reads into one reused buffer
 * (`onread`) and each read is fed straight to the FrameDecoder, which copies only what it must
 * keep and streams Pages bytes to the PageSink (one copy, into guest memory). If the sink offers
 * `pageTarget`, it goes one step further: once a Pages frame's header and metadata have been
 * read (exactly, so no payload byte lands in the scratch buffer), each run of pages is read by
 * the kernel straight into guest memory — no user-space copy. A connecting socket sets `onread`
 * directly; an accepted one is re-wrapped: a `pauseOnConnect` server hands over a socket that
 * has not read yet, and its libuv handle is moved into a new `net.Socket` created with `onread`
 * (`adopt`). Any other socket falls back to `'data'` events (`readMode: 'data'`).
 *
 * Send path: `send(msg)` writes `[header+meta(, payload)]`; `sendPagesFrom(batch, memory)` and
 * `sendPages(batch, views)` write the header and metadata followed by views of guest memory (no
 * copy) inside `cork()`/`uncork()`, so a batch leaves in one `writev`.
 *
 * Lifecycle and errors: the first error wins. It is emitted once as `'error'` (only when someone
 * listens — an unobserved protocol error must not crash the process), then `'close'` carries it
 * (or `undefined` for a clean close); `closed` resolves with the same value. Errors detected
 * locally (bad frames, idle timeout, a listener throwing a MigrationError) are reported to the
 * peer with an `Error` frame before the connection is closed. Heartbeat frames are handled here
 * and not emitted unless `emitHeartbeats` is set.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { MigrationError, toMigrationError } from '../errors.ts';
import {
  encodeFrame,
  encodePages,
  encodePagesFrom,
  frameByteLength,
  type EncodeOptions,
  type PagesBatch,
} from './encode.ts';
import { DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_META_BYTES, DEFAULT_PAGE_SIZE, MAX_FRAME_LIMIT } from './frame.ts';
import { FrameDecoder, type PageSink } from './frame-decoder.ts';
import { msg, MsgType, peerError, type Message } from './messages.ts';
import { PROTOCOL_VERSION, SUPPORTED_VERSIONS } from './version.ts';

/** FramedSocket settings. Every limit is finite; invalid combinations throw ERR_INVALID_ARGUMENT. */
export interface FramedSocketOptions {
  /** Largest frame sent or accepted. @default 16 MiB */
  maxFrameBytes?: number;
  /** Largest metadata accepted. @default 1 MiB */
  maxMetaBytes?: number;
  /** `send()` returns false once this many bytes wait to be written. @default 4 MiB */
  writeHighWaterMark?: number;
  /**
   * Hard cap on bytes waiting to be written; a send that would pass it fails the connection
   * with ERR_BUFFER_OVERFLOW (must be ≥ writeHighWaterMark + maxFrameBytes). @default 64 MiB
   */
  maxWriteBufferBytes?: number;
  /** Size of the reused read buffer. @default 256 KiB */
  readBufferBytes?: number;
  /**
   * When the sink offers `pageTarget`, read runs of pages at least this long straight into guest
   * memory (no user-space copy); 0 = never. @default 65536
   */
  minInPlaceBytes?: number;
  /** Send a Heartbeat after this long without sending anything; 0 = never. @default 1000 */
  heartbeatIntervalMs?: number;
  /**
   * Fail with ERR_IDLE_TIMEOUT after receiving nothing for this long (not counted while reading
   * is paused); 0 = never. Must exceed heartbeatIntervalMs. @default 10000
   */
  idleTimeoutMs?: number;
  /** Page size for Pages frames (a received Setup updates the decoder). @default 4096 */
  pageSize?: number;
  /** Page count for range checks of received page numbers. @default undefined (unchecked) */
  pageCount?: number;
  /** Receives Pages bytes (see PageSink); without one, Pages arrive assembled in `data`. @default undefined */
  sink?: PageSink;
  /** This end's role for direction checks of received messages. @default 'any' */
  role?: 'source' | 'dest' | 'any';
  /** Protocol version written in frame headers. @default PROTOCOL_VERSION */
  version?: number;
  /** Protocol versions accepted in received headers. @default SUPPORTED_VERSIONS */
  versions?: readonly number[];
  /** Emit received Heartbeat frames as messages. @default false */
  emitHeartbeats?: boolean;
  /** Disable Nagle (small control frames leave at once). @default true */
  noDelay?: boolean;
  /** Tell the peer about locally detected errors with an Error frame. @default true */
  notifyPeerOnError?: boolean;
  /** How long to wait for that Error frame to flush before destroying the socket. @default 1000 */
  lingerMs?: number;
}

/** Options of `FramedSocket.connect`. */
export interface FramedConnectOptions extends FramedSocketOptions {
  port: number;
  /** @default '127.0.0.1' */
  host?: string;
  /** Give up (ERR_CONNECTION) when not connected within this time; 0 = never. @default 10000 */
  connectTimeoutMs?: number;
}

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

/** FramedSocketOptions with every default filled in (from `resolveFramedSocketOptions`). */
export interface ResolvedFramedSocketOptions {
  maxFrameBytes: number;
  maxMetaBytes: number;
  writeHighWaterMark: number;
  maxWriteBufferBytes: number;
  readBufferBytes: number;
  minInPlaceBytes: number;
  heartbeatIntervalMs: number;
  idleTimeoutMs: number;
  pageSize: number;
  pageCount: number | undefined;
  sink: PageSink | undefined;
  role: 'source' | 'dest' | 'any';
  version: number;
  versions: readonly number[];
  emitHeartbeats: boolean;
  noDelay: boolean;
  notifyPeerOnError: boolean;
  lingerMs: number;
}

type Resolved = ResolvedFramedSocketOptions;

function invalid(text: string): MigrationError {
  return new MigrationError('ERR_INVALID_ARGUMENT', `FramedSocket: ${text}`);
}

function checkInt(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalid(`${name} must be an integer in [${min}, ${max}], got ${value}`);
  }
}

/** Resolve and validate options once (exported for tests and for servers that pre-validate). */
export function resolveFramedSocketOptions(options?: FramedSocketOptions): Readonly<Resolved> {
  const maxFrameBytes = options?.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  const writeHighWaterMark = options?.writeHighWaterMark ?? 4 * 1024 * 1024;
  const r: Resolved = {
    maxFrameBytes,
    maxMetaBytes: options?.maxMetaBytes ?? Math.min(DEFAULT_MAX_META_BYTES, maxFrameBytes),
    writeHighWaterMark,
    maxWriteBufferBytes: options?.maxWriteBufferBytes ?? Math.max(64 * 1024 * 1024, writeHighWaterMark + maxFrameBytes),
    readBufferBytes: options?.readBufferBytes ?? 256 * 1024,
    minInPlaceBytes: options?.minInPlaceBytes ?? 64 * 1024,
    heartbeatIntervalMs: options?.heartbeatIntervalMs ?? 1000,
    idleTimeoutMs: options?.idleTimeoutMs ?? 10_000,
    pageSize: options?.pageSize ?? DEFAULT_PAGE_SIZE,
    pageCount: options?.pageCount,
    sink: options?.sink,
    role: options?.role ?? 'any',
    version: options?.version ?? PROTOCOL_VERSION,
    versions: options?.versions ?? SUPPORTED_VERSIONS,
    emitHeartbeats: options?.emitHeartbeats ?? false,
    noDelay: options?.noDelay ?? true,
    notifyPeerOnError: options?.notifyPeerOnError ?? true,
    lingerMs: options?.lingerMs ?? 1000,
  };
  checkInt('maxFrameBytes', r.maxFrameBytes, 64, MAX_FRAME_LIMIT);
  checkInt('writeHighWaterMark', r.writeHighWaterMark, 1, MAX_FRAME_LIMIT);
  checkInt('maxWriteBufferBytes', r.maxWriteBufferBytes, 1, Number.MAX_SAFE_INTEGER);
  if (r.maxWriteBufferBytes < r.writeHighWaterMark + r.maxFrameBytes) {
    throw invalid('maxWriteBufferBytes must be ≥ writeHighWaterMark + maxFrameBytes');
  }
  checkInt('readBufferBytes', r.readBufferBytes, 1024, 64 * 1024 * 1024);
  checkInt('minInPlaceBytes', r.minInPlaceBytes, 0, MAX_FRAME_LIMIT);
  checkInt('heartbeatIntervalMs', r.heartbeatIntervalMs, 0, 2 ** 31 - 1);
  checkInt('idleTimeoutMs', r.idleTimeoutMs, 0, 2 ** 31 - 1);
  if (r.idleTimeoutMs > 0 && r.heartbeatIntervalMs > 0 && r.idleTimeoutMs <= r.heartbeatIntervalMs) {
    throw invalid('idleTimeoutMs must exceed heartbeatIntervalMs (or one of them be 0)');
  }
  checkInt('version', r.version, 1, 255);
  checkInt('lingerMs', r.lingerMs, 0, 2 ** 31 - 1);
  // The decoder validates maxMetaBytes, pageSize, pageCount, versions and role.
  new FrameDecoder({
    maxFrameBytes: r.maxFrameBytes,
    maxMetaBytes: r.maxMetaBytes,
    pageSize: r.pageSize,
    versions: r.versions,
    role: r.role,
    ...(r.pageCount === undefined ? {} : { pageCount: r.pageCount }),
  });
  return Object.freeze(r);
}

/** Node internals used to re-wrap an accepted socket's handle (stable since Node 12). */
interface SocketInternals {
  _handle: { reading?: boolean; readStart?: unknown } | null;
  _server: net.Server | null;
  server: net.Server | null;
  connecting: boolean;
}

interface DrainWaiter {
  resolve: () => void;
  reject: (err: MigrationError) => void;
}

/** Frames over a TCP socket; see the file comment. Create with `connect`, `adopt` or `createFramedServer`. */
export class FramedSocket extends EventEmitter<FramedSocketEvents> {
  /** How bytes are read: into one reused buffer, or fresh buffers from 'data' events. */
  readonly readMode: 'onread' | 'data';
  /** Resolves once closed, with the first error or undefined. */
  readonly closed: Promise<MigrationError | undefined>;
  readonly stats: FramedSocketStats = { bytesSent: 0, bytesReceived: 0, framesSent: 0 };

  readonly #socket: net.Socket;
  readonly #opts: Readonly<Resolved>;
  readonly #decoder: FrameDecoder;
  readonly #encode: EncodeOptions;
  readonly #drainWaiters: DrainWaiter[] = [];
  #resolveClosed!: (err: MigrationError | undefined) => void;
  #error: MigrationError | undefined;
  #closing = false;
  #isClosed = false;
  #paused = false;
  #timer: NodeJS.Timeout | undefined;
  #rxSeen = false;
  #txSeen = false;
  #lastRx = performance.now();
  #lastTx = performance.now();
  #heartbeatSeq = 0;
  /** onread mode: the scratch buffer, and whether the last buffer handed out was guest memory. */
  #scratch: Buffer | undefined;
  #readInPlace = false;
  /** After an in-place read, read the next header and metadata exactly, to keep payloads in place. */
  #exactSections = false;

  private constructor(socket: net.Socket, opts: Readonly<Resolved>, readMode: 'onread' | 'data', scratch?: Buffer) {
    super();
    this.#socket = socket;
    this.#scratch = scratch;
    this.#opts = opts;
    this.readMode = readMode;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    this.#decoder = new FrameDecoder({
      maxFrameBytes: opts.maxFrameBytes,
      maxMetaBytes: opts.maxMetaBytes,
      pageSize: opts.pageSize,
      versions: opts.versions,
      role: opts.role,
      ...(opts.sink === undefined ? {} : { sink: opts.sink }),
      ...(opts.pageCount === undefined ? {} : { pageCount: opts.pageCount }),
    });
    this.#encode = { version: opts.version, maxFrameBytes: opts.maxFrameBytes, pageSize: opts.pageSize };
    socket.on('error', (err) => this.#socketOnError(err));
    socket.on('end', () => this.#socketOnEnd());
    socket.on('close', () => this.#socketOnClose());
    socket.on('drain', () => this.#socketOnDrain());
    if (readMode === 'data') socket.on('data', (chunk: Buffer) => this.#onBytes(chunk, chunk.length));
    if (opts.noDelay) socket.setNoDelay(true);
    if ((socket as unknown as SocketInternals).connecting) socket.once('connect', () => this.#startTimer());
    else this.#startTimer();
    socket.resume();
  }

  /** Connect to a FramedSocket server; reads use a reused buffer. Rejects with ERR_CONNECTION. */
  static connect(options: FramedConnectOptions): Promise<FramedSocket> {
    const opts = resolveFramedSocketOptions(options);
    const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    checkInt('connectTimeoutMs', connectTimeoutMs, 0, 2 ** 31 - 1);
    checkInt('port', options.port, 0, 65535);
    const scratch = Buffer.allocUnsafe(opts.readBufferBytes);
    const ref: { framed?: FramedSocket } = {};
    const socket = net.connect({
      host: options.host ?? '127.0.0.1',
      port: options.port,
      writableHighWaterMark: opts.writeHighWaterMark,
      onread: FramedSocket.#onreadFor(ref, scratch),
    } as net.NetConnectOpts);
    const f = new FramedSocket(socket, opts, 'onread', scratch);
    ref.framed = f;
    return new Promise((resolve, reject) => {
      const timer =
        connectTimeoutMs > 0
          ? setTimeout(() => {
              f.destroy(new MigrationError('ERR_CONNECTION', `connect to port ${options.port} timed out`));
            }, connectTimeoutMs)
          : undefined;
      const onClose = (err: MigrationError | undefined): void => {
        clearTimeout(timer);
        reject(err ?? new MigrationError('ERR_CONNECTION', 'connection closed while connecting'));
      };
      f.once('close', onClose);
      socket.once('connect', () => {
        clearTimeout(timer);
        f.off('close', onClose);
        resolve(f);
      });
    });
  }

  /**
   * Wrap an accepted socket. A socket from a `pauseOnConnect` server that has not read yet gets
   * its handle moved into a socket reading into a reused buffer (`readMode: 'onread'`); any other
   * socket is read through 'data' events.
   */
  static adopt(socket: net.Socket, options?: FramedSocketOptions): FramedSocket {
    return FramedSocket.adoptResolved(socket, resolveFramedSocketOptions(options));
  }

  /** `adopt` with options already resolved by `resolveFramedSocketOptions` (servers resolve once). */
  static adoptResolved(socket: net.Socket, opts: Readonly<ResolvedFramedSocketOptions>): FramedSocket {
    const inner = socket as unknown as SocketInternals;
    const handle = inner._handle;
    if (
      handle !== null &&
      handle.reading === false &&
      typeof handle.readStart === 'function' &&
      !inner.connecting &&
      !socket.destroyed &&
      socket.readableLength === 0 &&
      socket.listenerCount('data') === 0
    ) {
      const scratch = Buffer.allocUnsafe(opts.readBufferBytes);
      const ref: { framed?: FramedSocket } = {};
      const server = inner._server;
      inner._handle = null;
      inner._server = null;
      const rewrapped = new net.Socket({
        handle,
        writableHighWaterMark: opts.writeHighWaterMark,
        onread: FramedSocket.#onreadFor(ref, scratch),
      } as net.SocketConstructorOpts);
      // Keep the server's connection count right: the re-wrapped socket decrements it on close.
      const rewrappedInner = rewrapped as unknown as SocketInternals;
      rewrappedInner._server = server;
      rewrappedInner.server = server;
      const framed = new FramedSocket(rewrapped, opts, 'onread', scratch);
      ref.framed = framed;
      return framed;
    }
    const hwm = Math.max(opts.writeHighWaterMark, socket.writableHighWaterMark);
    const adjusted = Object.freeze({
      ...opts,
      writeHighWaterMark: hwm,
      maxWriteBufferBytes: Math.max(opts.maxWriteBufferBytes, hwm + opts.maxFrameBytes),
    });
    return new FramedSocket(socket, adjusted, 'data');
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
    this.#decoder.setGeometry(geometry);
    this.#encode.pageSize = geometry.pageSize;
  }

  /** Install or remove the PageSink for received Pages frames. */
  setSink(sink: PageSink | undefined): void {
    this.#decoder.setSink(sink);
  }

  /**
   * Send one message. Returns false when the write buffer is at or above writeHighWaterMark:
   * await `onDrain()` before sending more. Throws the connection's error once it failed, and
   * ERR_BUFFER_OVERFLOW (failing the connection) if the frame would pass maxWriteBufferBytes.
   */
  send(message: Message): boolean {
    this.#checkWritable();
    return this.#write(encodeFrame(message, this.#encode));
  }

  /**
   * Send several messages as one write (`cork`/`uncork`): e.g. CpuState, DeviceState and
   * StopCopyEnd at the stop point. Same return and errors as `send`.
   */
  sendAll(messages: readonly Message[]): boolean {
    this.#checkWritable();
    this.#socket.cork();
    try {
      let ok = true;
      for (const m of messages) ok = this.#write(encodeFrame(m, this.#encode));
      return ok;
    } finally {
      this.#socket.uncork();
    }
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
    this.#checkWritable();
    return this.#write(encodePages(batch, views, this.#encode));
  }

  /**
   * Send a page batch cut straight from guest memory (one view per run of consecutive pages; see
   * `encodePagesFrom`). Same return and errors as `send`.
   */
  sendPagesFrom(batch: PagesBatch, memory: Uint8Array, firstPage = 0): boolean {
    this.#checkWritable();
    return this.#write(encodePagesFrom(batch, memory, firstPage, this.#encode));
  }

  /**
   * Resolves when the write buffer is below writeHighWaterMark (at once if it already is);
   * rejects with the connection's error if it closes first, or with ERR_CANCELLED on abort.
   */
  onDrain(options?: { signal?: AbortSignal }): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#isClosed || this.#closing) {
      return Promise.reject(new MigrationError('ERR_CONNECTION', 'connection is closed'));
    }
    if (this.#socket.writableLength < this.#opts.writeHighWaterMark) return Promise.resolve();
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

  /** Stop reading (the peer's sends back up into its own buffer); the idle timer is suspended. */
  pause(): void {
    this.#paused = true;
    this.#socket.pause();
  }

  /** Resume reading. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#lastRx = performance.now();
    if (!this.#closing) this.#socket.resume();
  }

  /**
   * Close gracefully: pending writes are flushed, then the peer has lingerMs to close its side
   * before the socket is destroyed. Resolves when closed.
   */
  close(): Promise<MigrationError | undefined> {
    if (!this.#closing && !this.#isClosed) {
      this.#closing = true;
      this.#stopTimer();
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
    this.#stopTimer();
    this.#socket.destroy();
  }

  // ---- receive ----

  /**
   * The `onread` option: Node asks `buffer()` where to read next (after every read) and calls
   * `callback` with what landed there. Usually that is the scratch buffer; inside a run of pages
   * whose sink offers `pageTarget`, it is guest memory itself.
   */
  static #onreadFor(ref: { framed?: FramedSocket }, scratch: Buffer): net.OnReadOpts {
    return {
      buffer: () => (ref.framed === undefined ? scratch : ref.framed.#nextReadBuffer()),
      callback: (n: number, buf: Uint8Array) => {
        const framed = ref.framed;
        if (framed === undefined) return true;
        return framed.#readInPlace ? framed.#onBytesInPlace(n) : framed.#onBytes(buf, n);
      },
    };
  }

  #nextReadBuffer(): Uint8Array {
    const scratch = this.#scratch!;
    this.#readInPlace = false;
    const min = this.#opts.minInPlaceBytes;
    if (min === 0 || this.#closing) return scratch;
    // Called by Node's read loop: nothing may throw out of here (it would crash the process).
    try {
      const decoder = this.#decoder;
      const target = decoder.readTarget(min);
      if (target !== undefined) {
        this.#readInPlace = true;
        this.#exactSections = true;
        return target;
      }
      if (this.#exactSections && decoder.state !== 'payload') {
        // Read just the header, then just the metadata, so the payload can go in place.
        return scratch.subarray(0, Math.max(1, Math.min(scratch.length, decoder.sectionRemaining)));
      }
    } catch (err) {
      this.#fail(toMigrationError(err), true);
    }
    this.#exactSections = false;
    return scratch;
  }

  #onBytesInPlace(length: number): boolean {
    if (this.#closing) return true;
    this.#rxSeen = true;
    this.stats.bytesReceived += length;
    try {
      this.#decoder.consumedInPlace(length, this.#deliver);
    } catch (err) {
      this.#fail(toMigrationError(err), true);
      return true;
    }
    return !this.#paused;
  }

  #deliver = (message: Message): void => {
    if (this.#closing) return;
    if (message.type === MsgType.Heartbeat && !this.#opts.emitHeartbeats) return;
    // The peer is closing and said why: that is this connection's error (unless one came first).
    if (message.type === MsgType.Error && this.#error === undefined) this.#error = peerError(message);
    this.emit('message', message);
  };

  #onBytes(chunk: Uint8Array, length: number): boolean {
    // Closing: keep reading (and discard) so the peer's end is seen and the socket closes.
    if (this.#closing) return true;
    this.#rxSeen = true;
    this.stats.bytesReceived += length;
    try {
      this.#decoder.feed(chunk, this.#deliver, length);
    } catch (err) {
      this.#fail(toMigrationError(err), true);
      return true; // keep reading (discarding) until the peer closes or lingerMs passes
    }
    return !this.#paused;
  }

  #socketOnEnd(): void {
    if (this.#closing) return;
    try {
      this.#decoder.end();
    } catch (err) {
      this.#fail(toMigrationError(err), false);
    }
  }

  #socketOnError(err: Error & { code?: string }): void {
    const text = err.code ? `${err.code}: ${err.message}` : err.message;
    this.#fail(new MigrationError('ERR_CONNECTION', text, { cause: err }), false);
  }

  #socketOnClose(): void {
    this.#isClosed = true;
    this.#closing = true;
    this.#stopTimer();
    const err = this.#error;
    const waiters = this.#drainWaiters.splice(0);
    for (const w of waiters) w.reject(err ?? new MigrationError('ERR_CONNECTION', 'connection closed'));
    this.emit('close', err);
    this.#resolveClosed(err);
  }

  #socketOnDrain(): void {
    const waiters = this.#drainWaiters.splice(0);
    for (const w of waiters) w.resolve();
    this.emit('drain');
  }

  // ---- send ----

  #checkWritable(): void {
    if (this.#error) throw this.#error;
    if (this.#closing || this.#isClosed) throw new MigrationError('ERR_CONNECTION', 'connection is closed');
  }

  #write(buffers: Uint8Array[]): boolean {
    const socket = this.#socket;
    const bytes = frameByteLength(buffers);
    if (socket.writableLength + bytes > this.#opts.maxWriteBufferBytes) {
      const err = new MigrationError(
        'ERR_BUFFER_OVERFLOW',
        `write buffer would hold ${socket.writableLength + bytes} bytes, over its ${this.#opts.maxWriteBufferBytes}-byte cap (send() returned false and onDrain() was not awaited)`,
      );
      this.#fail(err, false);
      throw err;
    }
    if (buffers.length === 1) {
      socket.write(buffers[0]!);
    } else {
      socket.cork();
      for (const b of buffers) socket.write(b);
      socket.uncork();
    }
    this.stats.bytesSent += bytes;
    this.stats.framesSent++;
    this.#txSeen = true;
    return socket.writableLength < this.#opts.writeHighWaterMark;
  }

  // ---- timers and failure ----

  #startTimer(): void {
    if (this.#closing) return;
    const { heartbeatIntervalMs: hb, idleTimeoutMs: idle } = this.#opts;
    if (hb === 0 && idle === 0) return;
    const period = Math.max(5, Math.min(hb > 0 ? hb / 2 : Infinity, idle > 0 ? idle / 4 : Infinity));
    this.#lastRx = this.#lastTx = performance.now();
    this.#timer = setInterval(() => this.#tick(), period);
    this.#timer.unref();
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    const now = performance.now();
    const { heartbeatIntervalMs: hb, idleTimeoutMs: idle } = this.#opts;
    if (this.#rxSeen) {
      this.#rxSeen = false;
      this.#lastRx = now;
    } else if (idle > 0 && !this.#paused && now - this.#lastRx > idle) {
      this.#fail(
        new MigrationError('ERR_IDLE_TIMEOUT', `nothing received for ${Math.round(now - this.#lastRx)} ms`),
        true,
      );
      return;
    }
    if (this.#txSeen) {
      this.#txSeen = false;
      this.#lastTx = now;
    } else if (hb > 0 && now - this.#lastTx >= hb && this.#socket.writableLength === 0) {
      // Only when nothing is queued: queued bytes will reach the peer and count as activity.
      this.#lastTx = now;
      try {
        this.#write(encodeFrame(msg.heartbeat(++this.#heartbeatSeq), this.#encode));
      } catch {
        // #write has failed the connection already.
      }
    }
  }

  #emitError(err: MigrationError): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  /** Record the first error, tell the peer if asked, and close. Later errors are ignored. */
  #fail(err: MigrationError, notifyPeer: boolean): void {
    if (this.#isClosed || (this.#error !== undefined && this.#closing)) return;
    this.#error ??= err;
    this.#closing = true;
    this.#stopTimer();
    this.#emitError(this.#error);
    const socket = this.#socket;
    if (notifyPeer && this.#opts.notifyPeerOnError && socket.writable && !socket.destroyed) {
      // Reading goes on (discarding) so the peer's close is noticed; lingerMs bounds the wait.
      socket.resume();
      socket.end(Buffer.concat(encodeFrame(msg.errorFrom(err), this.#encode)));
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

/**
 * A TCP server whose connections are FramedSockets reading into reused buffers. Options are
 * validated once, here. Call `listen()` on the result as on any net.Server.
 */
export function createFramedServer(
  options: FramedSocketOptions | undefined,
  onConnection: (socket: FramedSocket) => void,
): net.Server {
  const opts = resolveFramedSocketOptions(options);
  return net.createServer({ pauseOnConnect: true }, (socket) => {
    onConnection(FramedSocket.adoptResolved(socket, opts));
  });
}
