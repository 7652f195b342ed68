// Give a destination channel's accepted socket Node's `onread` option, so the kernel (or, with TLS,
// the TLS handle) reads each run of pages straight into guest memory: the plain-JavaScript twin of
// shared/src/protocol/socket-handle.ts (which the TypeScript FramedSocket uses), for the channel
// workers that load no TypeScript. The same Node-private fields, the same fallback: where they are
// not as expected, `null` is returned and the caller reads through 'data' events (one copy more).
//
// plain TCP   a pauseOnConnect server's socket, not read from yet, has its libuv handle moved into
//             a new net.Socket created with `onread` (public constructor option);
// TLS         an established TLSSocket gets the three private fields net.Socket keeps `onread` in
//             (kBuffer, kBufferCb, kBufferGen, found by their symbols' descriptions) and its handle
//             is told to read into the user buffer, as net.Socket's constructor does.
import net from 'node:net';
import { TLSSocket } from 'node:tls';

/** A socket reading through `onread` ({ buffer: () => Uint8Array, callback(n, buf) }), or null. */
export function readInPlace(socket, onread) {
  return socket instanceof TLSSocket ? tlsInPlace(socket, onread) : tcpInPlace(socket, onread);
}

function tcpInPlace(socket, onread) {
  const handle = socket._handle;
  if (!handle || handle.reading !== false || typeof handle.readStart !== 'function' || socket.readableLength !== 0)
    return null;
  const server = socket._server;
  socket._handle = null;
  socket._server = null;
  const moved = new net.Socket({ handle, onread });
  // The server counts its connections down when the socket closes.
  moved._server = server;
  moved.server = server;
  return moved;
}

function tlsInPlace(socket, onread) {
  const handle = socket._handle;
  const keys = new Map(Object.getOwnPropertySymbols(socket).map((key) => [key.description, key]));
  const [buffer, callback, generator] = ['kBuffer', 'kBufferCb', 'kBufferGen'].map((name) => keys.get(name));
  if (!handle || typeof handle.useUserBuffer !== 'function' || !buffer || !callback || !generator) return null;
  if (socket[buffer] != null || socket[callback] != null || socket[generator] != null || socket.readableLength !== 0)
    return null;
  const first = onread.buffer();
  socket[buffer] = first;
  socket[callback] = onread.callback;
  socket[generator] = onread.buffer;
  handle.useUserBuffer(first);
  return socket;
}
