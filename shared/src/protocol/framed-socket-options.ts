/**
 * FramedSocket's options, their defaults, and the one function that resolves and validates them
 * (`resolveFramedSocketOptions`), so a socket — or a server, for all its connections — checks
 * its settings once, up front, and the send path, the receive path and the keepalive can take
 * them as given. Every limit is finite; an invalid combination is ERR_INVALID_ARGUMENT here,
 * never a surprise later.
 */
import { MigrationError } from '../errors.ts';
import { DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_META_BYTES, DEFAULT_PAGE_SIZE, MAX_FRAME_LIMIT } from './frame.ts';
import { FrameDecoder, type FrameDecoderOptions } from './frame-decoder.ts';
import type { PageSink } from './page-sink.ts';
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

/** Connect timeout when FramedConnectOptions gives none. */
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** Where and how long to connect: FramedConnectOptions' own fields, checked, defaults filled in. */
export function resolveConnectTarget(options: FramedConnectOptions): {
  host: string;
  port: number;
  connectTimeoutMs: number;
} {
  const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  checkInt('connectTimeoutMs', connectTimeoutMs, 0, 2 ** 31 - 1);
  checkInt('port', options.port, 0, 65535);
  return { host: options.host ?? '127.0.0.1', port: options.port, connectTimeoutMs };
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
  new FrameDecoder(decoderOptionsOf(r));
  return Object.freeze(r);
}

/** The FrameDecoder settings of a FramedSocket with these options (the sink is set separately). */
export function decoderOptionsOf(opts: Readonly<Resolved>): FrameDecoderOptions {
  return {
    maxFrameBytes: opts.maxFrameBytes,
    maxMetaBytes: opts.maxMetaBytes,
    pageSize: opts.pageSize,
    versions: opts.versions,
    role: opts.role,
    ...(opts.pageCount === undefined ? {} : { pageCount: opts.pageCount }),
  };
}
