/**
 * The listening side of FramedSocket: a TCP server whose connections are FramedSockets. It is
 * a `pauseOnConnect` server so that each accepted socket has not read a byte when it is adopted,
 * which lets its handle be re-wrapped to read through `onread` (socket-handle.ts) — the same
 * zero-copy receive path as a connecting socket. Options are resolved and validated once, here,
 * for every connection.
 */
import net from 'node:net';
import { resolveFramedSocketOptions, type FramedSocketOptions } from './framed-socket-options.ts';
import { FramedSocket } from './framed-socket.ts';

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
