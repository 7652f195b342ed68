/**
 * A userspace delay relay: adds a fixed one-way delay to every byte in both directions of the
 * TCP connections that pass through it — the lab's latency where the kernel has no netem. Order
 * is kept (chunks are released in arrival order, each after the delay); the rate is still shaped
 * by tbf on the hosts, so the relay holds at most rate × delay bytes per direction.
 */
import net from 'node:net';
import { formatHostPort } from '@livemig/shared';

export interface DelayRelay {
  /** HOST:PORT to connect to instead of the target. */
  address: string;
  close(): Promise<void>;
}

export async function startDelayRelay(options: {
  listenHost: string;
  target: { host: string; port: number };
  oneWayMs: number;
}): Promise<DelayRelay> {
  const sockets = new Set<net.Socket>();
  // Half-open on both sides: a peer that finished sending may still be waiting for a reply.
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.connect({ ...options.target, allowHalfOpen: true });
    sockets.add(client).add(upstream);
    const delayed = (from: net.Socket, to: net.Socket): void => {
      from.on('data', (chunk: Buffer) => {
        setTimeout(() => {
          if (!to.destroyed) to.write(chunk);
        }, options.oneWayMs);
      });
      from.on('end', () => setTimeout(() => to.end(), options.oneWayMs));
      from.on('error', () => to.destroy());
      from.on('close', () => setTimeout(() => to.destroy(), options.oneWayMs + 1000).unref());
    };
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    delayed(client, upstream);
    delayed(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, options.listenHost, resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    address: formatHostPort({ host: options.listenHost, port }),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
