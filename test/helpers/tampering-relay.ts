/**
 * A TCP relay for tests that decodes every frame passing through and re-encodes it after
 * `tamper` had its way with it — an attacker in the middle of a plaintext link. Used to prove
 * that verification covers what it claims: a register changed in transit must fail the
 * migration, the VM staying on the source.
 */
import net from 'node:net';
import { encodeFrame, FrameDecoder, type Message } from '@livemig/shared/protocol';

export type TamperDirection = 'to-dest' | 'to-source';

export interface TamperingRelay {
  address: string;
  /** How many messages `tamper` changed. */
  readonly tampered: number;
  close(): Promise<void>;
}

/** `tamper` returns the message to forward (the same object: forwarded as it was). */
export async function startTamperingRelay(
  target: { host: string; port: number },
  tamper: (message: Message, direction: TamperDirection) => Message,
): Promise<TamperingRelay> {
  let tampered = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target);
    sockets.add(client).add(upstream);
    const pipe = (from: net.Socket, to: net.Socket, direction: TamperDirection): void => {
      const decoder = new FrameDecoder({ maxFrameBytes: 64 << 20 });
      from.on('data', (chunk: Buffer) => {
        try {
          for (const message of decoder.push(chunk)) {
            const out = tamper(message, direction);
            if (out !== message) tampered += 1;
            for (const part of encodeFrame(out)) to.write(part);
          }
        } catch {
          from.destroy();
          to.destroy();
        }
      });
      from.on('error', () => to.destroy());
      from.on('close', () => to.destroy());
    };
    pipe(client, upstream, 'to-dest');
    pipe(upstream, client, 'to-source');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    get tampered() {
      return tampered;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
