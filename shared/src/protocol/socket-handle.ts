/**
 * The one place that touches Node's private socket internals. The receive path wants every
 * socket to read through the `onread` option (into one reused buffer, or straight into guest
 * memory). A connecting socket gets it from `net.connect`, public API. An accepted socket cannot:
 * `net.Server` creates it. So a `pauseOnConnect` server's socket, which has not read a byte yet,
 * has its libuv handle moved into a new `net.Socket` created with `onread` — through `_handle`
 * and `_server`, which are private (stable since Node 12). If Node changes them, this file is
 * what breaks, and `canRewrap` says no: FramedSocket then reads through 'data' events instead.
 */
import net from 'node:net';
import { TLSSocket } from 'node:tls';

/** The private fields of a net.Socket this file uses. */
interface SocketInternals {
  _handle: { reading?: boolean; readStart?: unknown } | null;
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
