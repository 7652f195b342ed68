/**
 * The one place that touches Node's private socket internals. The receive path wants every
 * socket to read through the `onread` option (into one reused buffer, or straight into guest
 * memory). A connecting socket gets it from `net.connect`, public API. An accepted socket cannot:
 * `net.Server` creates it. So a `pauseOnConnect` server's socket, which has not read a byte yet,
 * has its libuv handle moved into a new `net.Socket` created with `onread` — through `_handle`
 * and `_server`, which are private (stable since Node 12). If Node changes them, this file is
 * what breaks, and `canRewrap` says no: FramedSocket then reads through 'data' events instead.
 *
 * A TLS socket cannot be re-wrapped (its handle is the cipher), and `new TLSSocket(socket, …)`
 * — how tls.Server makes the sockets it accepts — ignores `onread`. But a TLS handle reads into
 * a user buffer like any stream handle (it is what `tls.connect({ onread })` uses): `readTlsWith`
 * gives an established TLS socket the `onread` option afterwards, by setting the three private
 * fields net.Socket keeps it in (`kBuffer`, `kBufferCb`, `kBufferGen`, found by their symbols'
 * descriptions) and calling `useUserBuffer` on the handle — what net.Socket's constructor does
 * with the option. Each decrypted record is then copied once, by the handle, into the buffer
 * `onread.buffer()` returns: the scratch buffer, or guest memory. `canReadTlsWith` says no (and
 * 'data' events are used) if those fields are not found.
 */
import net from 'node:net';
import { TLSSocket } from 'node:tls';

/** The private fields of a net.Socket this file uses. */
interface SocketInternals {
  _handle: { reading?: boolean; readStart?: unknown; useUserBuffer?: (buffer: Uint8Array) => void } | null;
  _server: net.Server | null;
  server: net.Server | null;
}

function internals(socket: net.Socket): SocketInternals {
  return socket as unknown as SocketInternals;
}

/**
 * True when `socket`'s handle can be moved into a socket reading with `onread`: it has a
 * libuv handle that has not started reading, and nothing has been read or listened for yet.
 */
export function canRewrap(socket: net.Socket): boolean {
  const handle = internals(socket)._handle;
  return (
    // A TLS socket's handle carries the cipher: moving it would bypass decryption.
    !(socket instanceof TLSSocket) &&
    handle !== null &&
    handle.reading === false &&
    typeof handle.readStart === 'function' &&
    !socket.connecting &&
    !socket.destroyed &&
    socket.readableLength === 0 &&
    socket.listenerCount('data') === 0
  );
}

/**
 * Move the handle of an accepted socket (`canRewrap` must be true) into a new net.Socket that
 * reads through `onread`. The old socket is left without a handle and must not be used again.
 */
export function rewrap(socket: net.Socket, onread: net.OnReadOpts, writableHighWaterMark: number): net.Socket {
  const inner = internals(socket);
  const handle = inner._handle;
  const server = inner._server;
  inner._handle = null;
  inner._server = null;
  const rewrapped = new net.Socket({ handle, writableHighWaterMark, onread } as net.SocketConstructorOpts);
  // Keep the server's connection count right: the re-wrapped socket decrements it on close.
  const rewrappedInner = internals(rewrapped);
  rewrappedInner._server = server;
  rewrappedInner.server = server;
  return rewrapped;
}

/** The private symbols net.Socket keeps its `onread` option under. */
interface OnreadKeys {
  buffer: symbol;
  callback: symbol;
  generator: symbol;
}

function onreadKeys(socket: net.Socket): OnreadKeys | undefined {
  const byName = new Map(Object.getOwnPropertySymbols(socket).map((key) => [key.description, key]));
  const [buffer, callback, generator] = [byName.get('kBuffer'), byName.get('kBufferCb'), byName.get('kBufferGen')];
  return buffer && callback && generator ? { buffer, callback, generator } : undefined;
}

/**
 * True when `socket` is a TLS socket that can be given `onread` now: its handle reads into user
 * buffers, the private fields are where `readTlsWith` expects them and unset, and nothing has
 * been read out of it or listened for yet (bytes already decrypted into its readable buffer
 * would be skipped).
 */
export function canReadTlsWith(socket: net.Socket): socket is TLSSocket {
  if (!(socket instanceof TLSSocket)) return false;
  const handle = internals(socket)._handle;
  const keys = onreadKeys(socket);
  const fields = socket as unknown as Record<symbol, unknown>;
  return (
    handle !== null &&
    typeof handle.useUserBuffer === 'function' &&
    keys !== undefined &&
    fields[keys.buffer] == null &&
    fields[keys.callback] == null &&
    fields[keys.generator] == null &&
    !socket.destroyed &&
    socket.readableLength === 0 &&
    socket.listenerCount('data') === 0
  );
}

/**
 * Make an established TLS socket (`canReadTlsWith` must be true) read through `onread` from now
 * on, as if it had been created with it. Returns the same socket.
 */
export function readTlsWith(socket: TLSSocket, onread: net.OnReadOpts): TLSSocket {
  const keys = onreadKeys(socket)!;
  const fields = socket as unknown as Record<symbol, unknown>;
  const generator = typeof onread.buffer === 'function' ? onread.buffer : null;
  const first = generator ? generator() : (onread.buffer as Uint8Array);
  fields[keys.buffer] = first;
  fields[keys.callback] = onread.callback;
  fields[keys.generator] = generator;
  internals(socket)._handle!.useUserBuffer!(first);
  return socket;
}
