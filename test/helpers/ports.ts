/**
 * Loopback ports for tests about who listens where: one nobody listens on, one a test keeps
 * busy, and whether anybody listens on one now (a connection refused says nobody does).
 */
import net from 'node:net';

/** Listen on a free loopback port; resolves with it. */
export function listenOn(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
}

/** A loopback port nobody listens on now (bound, then closed). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  const port = await listenOn(server);
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** True when a connection to 127.0.0.1:`port` is refused: nothing listens there. */
export function refused(port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) =>
      error.code === 'ECONNREFUSED' ? resolve(true) : reject(error),
    );
  });
}
