/**
 * A TCP relay for tests that decodes the livemig frames passing through and cuts the link at
 * an exact protocol moment — e.g. "drop the Ready frame and cut", "let Handoff through, then
 * cut before Resumed gets back" — so the ownership rules around handoff can be tested
 * deterministically instead of by timing. A cut destroys both sides of that connection; the
 * relay cuts once, then forwards every later connection untouched (so a reconnect gets through).
 */
import net from 'node:net';
import { FrameDecoder, messageName, type Message } from '@livemig/shared/protocol';

export type Direction = 'to-dest' | 'to-source';
/** forward: pass the bytes on; cut-before: drop the chunk holding this frame and cut; cut-after: pass it, then cut. */
export type Verdict = 'forward' | 'cut-before' | 'cut-after';

export interface Relay {
  /** "127.0.0.1:PORT" to give the source as --to. */
  address: string;
  /** Names of the messages seen, per direction, in order. */
  seen: Record<Direction, string[]>;
  /** Resolves when a cut happened. */
  cut: Promise<string>;
  close(): Promise<void>;
}

export async function startCuttingRelay(
  target: { host: string; port: number },
  rule: (direction: Direction, message: Message, connection: number) => Verdict,
): Promise<Relay> {
  let connections = 0;
  let hasCut = false;
  const seen: Record<Direction, string[]> = { 'to-dest': [], 'to-source': [] };
  let onCut!: (what: string) => void;
  const cut = new Promise<string>((resolve) => (onCut = resolve));
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const connection = ++connections;
    const upstream = net.connect(target);
    sockets.add(client).add(upstream);
    const kill = (what: string): void => {
      hasCut = true;
      client.destroy();
      upstream.destroy();
      onCut(what);
    };
    const pipe = (from: net.Socket, to: net.Socket, direction: Direction): void => {
      const decoder = new FrameDecoder({ maxFrameBytes: 64 << 20 });
      from.on('data', (chunk: Buffer) => {
        let verdict: Verdict = 'forward';
        let trigger = '';
        for (const message of decoder.push(chunk)) {
          seen[direction].push(messageName(message.type));
          const v = hasCut ? 'forward' : rule(direction, message, connection);
          if (v !== 'forward' && verdict === 'forward') {
            verdict = v;
            trigger = `${v} ${messageName(message.type)} ${direction}`;
          }
        }
        if (verdict === 'cut-before') return kill(trigger);
        to.write(chunk);
        if (verdict === 'cut-after') to.end(() => kill(trigger));
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
    seen,
    cut,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
