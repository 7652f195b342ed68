/**
 * A TCP relay with `delayMs` of latency each way: every chunk, and the end of the stream, goes on
 * `delayMs` after it came, in order — a round trip of 2 × delayMs without tc (a mirrored disk
 * write waits one, far above a local write's latency). Each connection is relayed to `target`.
 */
import net from 'node:net';

export interface DelayingRelay {
  /** "127.0.0.1:PORT" to connect to instead of the target. */
  address: string;
  close(): Promise<void>;
}

export async function startDelayingRelay(target: string, delayMs: number): Promise<DelayingRelay> {
  const [host, port] = target.split(':') as [string, string];
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket): net.Socket => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    return socket;
  };
  const pipeDelayed = (from: net.Socket, to: net.Socket): void => {
    from.on('data', (chunk) => void setTimeout(() => to.writable && to.write(chunk), delayMs));
    from.on('end', () => void setTimeout(() => to.end(), delayMs));
    from.on('close', () => void setTimeout(() => to.destroy(), delayMs));
  };
  const server = net.createServer((client) => {
    const upstream = track(net.connect({ host, port: Number(port) }));
    pipeDelayed(track(client), upstream);
    pipeDelayed(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
