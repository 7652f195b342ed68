/**
 * A relay that stands in for a plaintext destination with parallel bulk channels (capability
 * `multifd`): the source reaches channel i on SetupDone's multifdPorts[i] at the host it connected
 * to, so the relay listens on another loopback address (127.0.0.2) for the main connection and,
 * when SetupDone goes by, opens 127.0.0.2:port toward each channel's port before passing it on.
 * One channel can be damaged: `cut` it once `afterBytes` of the source's bytes went through, or
 * send `garbage` in place of everything after its Attach frame; or the ports can be left
 * `unreachable` (nothing listens on them at the relay's address).
 */
import net from 'node:net';
import { FrameDecoder, MsgType, type Message, type PageSink, type PagesMeta } from '@livemig/shared/protocol';

const RELAY_HOST = '127.0.0.2';
/** A frame header's size; its metadata length is the u32 LE at offset 6 (shared/src/protocol/frame.ts). */
const HEADER_BYTES = 14;

export type ChannelDamage =
  | { channel: number; cut: { afterBytes: number } }
  | { channel: number; garbage: true }
  /** The channels' ports are not relayed at all: the source finds them refused. */
  | { unreachable: true };

export interface MultifdPortRelay {
  /** "127.0.0.2:PORT": give the source this as the destination. */
  address: string;
  /** Resolves with what was done to the damaged channel, once done. */
  damaged: Promise<string>;
  /** The channel connections relayed so far. */
  readonly channelConnections: number;
  close(): Promise<void>;
}

function listen(server: net.Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, RELAY_HOST, () => resolve((server.address() as net.AddressInfo).port));
  });
}

/** `a` ⇄ `b`; either closing or failing destroys the other. */
function join(a: net.Socket, b: net.Socket): void {
  for (const [from, to] of [
    [a, b],
    [b, a],
  ] as const) {
    from.on('error', () => to.destroy());
    from.on('close', () => to.destroy());
  }
}

export async function startMultifdPortRelay(
  dest: { host: string; port: number },
  damage: ChannelDamage | null,
): Promise<MultifdPortRelay> {
  const sockets = new Set<net.Socket>();
  const servers: net.Server[] = [];
  let channelConnections = 0;
  let onDamaged!: (what: string) => void;
  const damaged = new Promise<string>((resolve) => (onDamaged = resolve));
  let channelRelays: Promise<unknown> | undefined;

  const track = (...list: net.Socket[]): void => {
    for (const socket of list) {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    }
  };

  /** The relay of channel `index`: bytes pass untouched, unless this is the channel to damage. */
  const openChannelRelay = (index: number, port: number): Promise<number> => {
    const server = net.createServer((client) => {
      channelConnections += 1;
      const upstream = net.connect({ host: dest.host, port });
      track(client, upstream);
      join(client, upstream);
      upstream.pipe(client);
      if (!damage || !('channel' in damage) || damage.channel !== index) return void client.pipe(upstream);
      const hit = damage;
      let seen = 0;
      let head: Buffer | undefined = Buffer.alloc(0);
      client.on('data', (chunk: Buffer) => {
        if ('cut' in hit) {
          seen += chunk.length;
          if (seen <= hit.cut.afterBytes) return void upstream.write(chunk);
          client.destroy();
          upstream.destroy();
          return onDamaged(`cut channel ${index} after ${seen} bytes`);
        }
        // Garbage: the Attach frame (header + metadata, no payload) goes on, then bytes that are no frame.
        if (head === undefined) return;
        head = Buffer.concat([head, chunk]);
        if (head.length < HEADER_BYTES) return;
        const attach = HEADER_BYTES + head.readUInt32LE(6);
        if (head.length < attach) return;
        upstream.write(head.subarray(0, attach));
        upstream.write(Buffer.from('this is no livemig frame, but it is long enough to be read as one'));
        head = undefined;
        onDamaged(`garbage on channel ${index}`);
      });
    });
    servers.push(server);
    return listen(server, port);
  };

  const main = net.createServer((client) => {
    const upstream = net.connect(dest);
    track(client, upstream);
    join(client, upstream);
    client.pipe(upstream);
    let frames: (Message | PagesMeta)[] = [];
    const sink: PageSink = { pagesBegin: (meta) => frames.push(meta), pageBytes: () => {}, pagesEnd: () => {} };
    const decoder = new FrameDecoder({ maxFrameBytes: 64 << 20, sink });
    upstream.on('data', (chunk: Buffer) => {
      frames = [];
      if (decoder.error === undefined) decoder.feed(chunk, (message) => frames.push(message));
      const setupDone = frames.find((frame) => frame.type === MsgType.SetupDone);
      const ports = setupDone?.type === MsgType.SetupDone ? setupDone.multifdPorts : undefined;
      if (!ports) return void client.write(chunk);
      if (damage && 'unreachable' in damage) {
        onDamaged(`left ${ports.length} channel ports unreachable`);
        return void client.write(chunk);
      }
      // The channels' relays listen before the source learns the ports.
      upstream.pause();
      channelRelays ??= Promise.all(ports.map((port, i) => openChannelRelay(i, port)));
      void channelRelays.then(() => {
        client.write(chunk);
        upstream.resume();
      });
    });
  });
  servers.push(main);
  const port = await listen(main, 0);
  return {
    address: `${RELAY_HOST}:${port}`,
    damaged,
    get channelConnections() {
      return channelConnections;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    },
  };
}
