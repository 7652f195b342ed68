/**
 * The plumbing the test relays share (cutting-relay.ts, recording-relay.ts):
 * a TCP server on 127.0.0.1:0 that opens one upstream connection to `target` per client it
 * accepts, decodes the livemig frames of each direction with its own FrameDecoder, and hands
 * every chunk read — the raw bytes and the frames completed in it — to the relay's hook, which
 * decides what goes on: `forward` the bytes (or other bytes), drop them (forward nothing), `end`
 * the way on, or `cut` the connection. Either side failing or closing destroys the other;
 * `close()` destroys every socket and closes the server. Nothing is forwarded unless the hook
 * says so.
 */
import net from 'node:net';
import type { MigrationError } from '@livemig/shared';
import { FrameDecoder, type Message, type PageSink, type PagesMeta } from '@livemig/shared/protocol';

/** 'to-dest' = sent by the client (the source), 'to-source' = sent by the upstream (the destination). */
export type RelayDirection = 'to-dest' | 'to-source';

/** One chunk read from one side of a connection. */
export interface RelayChunk<F> {
  direction: RelayDirection;
  /** The bytes as read; forwarded only if the hook forwards them. */
  chunk: Buffer;
  /** The frames completed (or, skipping page bytes, the Pages frames begun) in this chunk, in stream order. */
  frames: F[];
  /**
   * Decoding failed in this chunk (after `frames`). Reported once: from then on this direction
   * is not decoded, and its later chunks come with no frames and no error.
   */
  error?: MigrationError;
}

export interface RelayConnection {
  /** 1, 2, … in the order the relay accepted the connections. */
  readonly id: number;
  /** Either side has closed. */
  readonly closed: boolean;
  /** Write `bytes` on in `direction` (to the upstream for 'to-dest', to the client for 'to-source'). */
  forward(direction: RelayDirection, bytes: Uint8Array): void;
  /** End the way on in `direction` once what was forwarded is flushed; `then` runs after that. */
  end(direction: RelayDirection, then?: () => void): void;
  /** Destroy both sides of this connection. */
  cut(): void;
  /** Stop reading what comes in `direction` until `until` settles; then run `then` and read on (order kept). */
  hold(direction: RelayDirection, until: Promise<unknown>, then: () => void): void;
}

export type RelayHook<F> = (data: RelayChunk<F>) => void;

export interface FrameRelayOptions {
  /**
   * 'assemble' (default): a Pages frame comes as its message, data included, once complete.
   * 'skip': its bytes are not copied; it comes as its metadata when that arrives.
   */
  pageBytes?: 'assemble' | 'skip';
  /** Where the relay listens. @default 127.0.0.1, an ephemeral port */
  listen?: { host: string; port: number };
}

export interface FrameRelay {
  /** "127.0.0.1:PORT", to give the source as the destination's address. */
  address: string;
  close(): Promise<void>;
}

/** `onConnection` is called for each accepted connection and returns the hook for its chunks (both directions). */
export function startFrameRelay(
  target: { host: string; port: number },
  onConnection: (connection: RelayConnection) => RelayHook<Message>,
  options?: FrameRelayOptions & { pageBytes?: 'assemble' },
): Promise<FrameRelay>;
export function startFrameRelay(
  target: { host: string; port: number },
  onConnection: (connection: RelayConnection) => RelayHook<Message | PagesMeta>,
  options: FrameRelayOptions & { pageBytes: 'skip' },
): Promise<FrameRelay>;
export async function startFrameRelay(
  target: { host: string; port: number },
  onConnection: (connection: RelayConnection) => RelayHook<Message | PagesMeta>,
  options: FrameRelayOptions = {},
): Promise<FrameRelay> {
  let accepted = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target);
    sockets.add(client).add(upstream);
    const toward = (direction: RelayDirection): net.Socket => (direction === 'to-dest' ? upstream : client);
    let closed = false;
    const connection: RelayConnection = {
      id: ++accepted,
      get closed() {
        return closed;
      },
      forward: (direction, bytes) => void toward(direction).write(bytes),
      end: (direction, then) => void toward(direction).end(then),
      cut: () => {
        client.destroy();
        upstream.destroy();
      },
      hold: (direction, until, then) => {
        const from = direction === 'to-dest' ? client : upstream;
        from.pause();
        void until.finally(() => {
          then();
          from.resume();
        });
      },
    };
    const hook = onConnection(connection);
    const relay = (from: net.Socket, to: net.Socket, direction: RelayDirection): void => {
      let frames: (Message | PagesMeta)[] = [];
      const skipPages: PageSink = { pagesBegin: (meta) => frames.push(meta), pageBytes: () => {}, pagesEnd: () => {} };
      const sink = options.pageBytes === 'skip' ? skipPages : undefined;
      const decoder = new FrameDecoder({ maxFrameBytes: 64 << 20, sink });
      from.on('data', (chunk: Buffer) => {
        frames = [];
        let error: MigrationError | undefined;
        if (decoder.error === undefined) {
          try {
            decoder.feed(chunk, (message) => frames.push(message));
          } catch {
            error = decoder.error;
          }
        }
        hook({ direction, chunk, frames, error });
      });
      from.on('error', () => to.destroy());
      from.on('close', () => {
        closed = true;
        sockets.delete(from);
        to.destroy();
      });
    };
    relay(client, upstream, 'to-dest');
    relay(upstream, client, 'to-source');
  });
  return listenOnLoopback(server, sockets, options.listen);
}

/** Listen on `at` (127.0.0.1:0); `close()` destroys every socket in `sockets`, then closes the server. */
export async function listenOnLoopback(
  server: net.Server,
  sockets: Set<net.Socket>,
  at = { host: '127.0.0.1', port: 0 },
): Promise<FrameRelay> {
  await new Promise<void>((resolve) => server.listen(at.port, at.host, resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `${at.host}:${port}`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
