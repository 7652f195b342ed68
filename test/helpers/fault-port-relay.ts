/**
 * Relays for a destination with a post-copy fault thread (capability `fault-thread`): the source
 * reaches the thread on SetupDone's faultPort at the host it connected to, so a relay that stands
 * in for the destination must stand in for that port too. `startFaultPortRelay` listens on
 * another loopback address (127.0.0.2) at an ephemeral port for the main connection; when
 * SetupDone goes by it opens 127.0.0.2:faultPort toward the thread's port before passing it on,
 * and hands each chunk the source sends the fault thread to `onFault`, which may cut that
 * connection (once: later ones — a reconnect — pass untouched).
 */
import net from 'node:net';
import {
  FrameDecoder,
  messageName,
  MsgType,
  type Message,
  type PagesMeta,
  type PageSink,
} from '@livemig/shared/protocol';

const RELAY_HOST = '127.0.0.2';

export interface FaultPortRelay {
  /** "127.0.0.2:PORT": give the source this as the destination. */
  address: string;
  /** Resolves with what the cut hit, once it happened. */
  cut: Promise<string>;
  /** The fault channel connections seen. */
  readonly faultConnections: number;
  close(): Promise<void>;
}

/** Frames decoded from one direction of one connection (Pages as their metadata only). */
function frameReader(): (chunk: Buffer) => (Message | PagesMeta)[] {
  let frames: (Message | PagesMeta)[] = [];
  const sink: PageSink = { pagesBegin: (meta) => frames.push(meta), pageBytes: () => {}, pagesEnd: () => {} };
  const decoder = new FrameDecoder({ maxFrameBytes: 64 << 20, sink });
  return (chunk) => {
    frames = [];
    if (decoder.error === undefined) decoder.feed(chunk, (message) => frames.push(message));
    return frames;
  };
}

/** Forward `client` ⇄ a new connection to `target`; `inspect` sees each chunk first and may hold it (returns a promise). */
function pipe(
  client: net.Socket,
  target: { host: string; port: number },
  sockets: Set<net.Socket>,
  inspect: (direction: 'to-dest' | 'to-source', chunk: Buffer, cut: () => void) => Promise<void> | void,
): void {
  const upstream = net.connect(target);
  sockets.add(client).add(upstream);
  const cut = (): void => {
    client.destroy();
    upstream.destroy();
  };
  const relay = (from: net.Socket, to: net.Socket, direction: 'to-dest' | 'to-source'): void => {
    from.on('data', (chunk: Buffer) => {
      const held = inspect(direction, chunk, cut);
      if (held === undefined) return void (to.destroyed || to.write(chunk));
      from.pause();
      void held.then(() => {
        if (!to.destroyed) to.write(chunk);
        from.resume();
      });
    });
    from.on('error', () => to.destroy());
    from.on('close', () => {
      sockets.delete(from);
      to.destroy();
    });
  };
  relay(client, upstream, 'to-dest');
  relay(upstream, client, 'to-source');
}

function listen(server: net.Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, RELAY_HOST, () => resolve((server.address() as net.AddressInfo).port));
  });
}

/**
 * `onFault: null`: the thread's port is not relayed at all — the source finds it refused, as when
 * the thread is gone, and falls back to attaching its fault channel to the main port.
 */
export async function startFaultPortRelay(
  dest: { host: string; port: number },
  onFault: ((frame: Message | PagesMeta) => 'forward' | 'cut') | null,
): Promise<FaultPortRelay> {
  const sockets = new Set<net.Socket>();
  const servers: net.Server[] = [];
  let faultConnections = 0;
  let hasCut = false;
  let onCut!: (what: string) => void;
  const cut = new Promise<string>((resolve) => (onCut = resolve));
  let faultRelay: Promise<unknown> | undefined;

  const openFaultRelay = (port: number): Promise<unknown> => {
    const server = net.createServer((client) => {
      faultConnections += 1;
      const read = frameReader();
      pipe(client, { host: dest.host, port }, sockets, (direction, chunk, cutIt) => {
        if (direction !== 'to-dest' || hasCut) return;
        for (const frame of read(chunk)) {
          if (onFault?.(frame) === 'cut') {
            hasCut = true;
            cutIt();
            onCut(`cut the fault channel at ${messageName(frame.type)}`);
            return new Promise(() => {}); // the chunk never goes on
          }
        }
      });
    });
    servers.push(server);
    return listen(server, port);
  };

  const main = net.createServer((client) => {
    const read = frameReader();
    pipe(client, dest, sockets, (direction, chunk) => {
      if (direction !== 'to-source') return;
      for (const frame of read(chunk)) {
        if (onFault && frame.type === MsgType.SetupDone && frame.faultPort !== undefined) {
          faultRelay ??= openFaultRelay(frame.faultPort);
          return faultRelay.then(() => {});
        }
      }
    });
  });
  servers.push(main);
  const port = await listen(main, 0);
  return {
    address: `${RELAY_HOST}:${port}`,
    cut,
    get faultConnections() {
      return faultConnections;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    },
  };
}
