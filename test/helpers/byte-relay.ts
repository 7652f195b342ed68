/**
 * A TCP relay for tests that works on bytes, not frames — for streams frame-relay.ts cannot
 * decode, like TLS records: it forwards every chunk as it came (the sockets are frame-relay.ts's;
 * its decoding of a TLS stream fails at the first byte and is ignored), and optionally
 *
 *   record   keeps every byte each connection carried, per direction (what a wiretap would see)
 *   flip     inverts the one byte at `offset` of one direction of one connection (a bit-flipping
 *            attacker in the middle); every other byte passes untouched
 *
 * `cutAll()` destroys every open connection; while `refusing` is set, new connections are cut
 * as soon as they are accepted (a link that stays down until the test lets it up again).
 */
import { startFrameRelay, type RelayConnection, type RelayDirection } from './frame-relay.ts';

export type { RelayDirection };

export interface ByteRelayOptions {
  /** Keep every byte relayed (per connection and direction). @default false */
  record?: boolean;
  /** Invert the byte at `offset` of `direction` on connection `connection` (1 = the first accepted). */
  flip?: { direction: RelayDirection; offset: number; connection?: number };
}

export interface ByteRelay {
  /** "127.0.0.1:PORT", to give the source as the destination's address. */
  address: string;
  /** With `record`: for each connection accepted, in order, the bytes it carried in `direction`. */
  captured(direction: RelayDirection): Buffer[];
  /** The byte to flip went through (flipped). */
  readonly flipped: boolean;
  /** Connections accepted so far (refused ones included). */
  readonly accepted: number;
  /** While true, every new connection is cut at once. */
  refusing: boolean;
  /** Destroy every open connection. */
  cutAll(): void;
  close(): Promise<void>;
}

export async function startByteRelay(
  target: { host: string; port: number },
  options: ByteRelayOptions = {},
): Promise<ByteRelay> {
  const connections: RelayConnection[] = [];
  const recorded: Record<RelayDirection, Buffer[]>[] = [];
  let flipped = false;
  let refusing = false;
  const relay = await startFrameRelay(
    target,
    (connection) => {
      connections.push(connection);
      const chunks: Record<RelayDirection, Buffer[]> = { 'to-dest': [], 'to-source': [] };
      recorded.push(chunks);
      const offsets: Record<RelayDirection, number> = { 'to-dest': 0, 'to-source': 0 };
      if (refusing) connection.cut();
      const flip = options.flip;
      const flips = (direction: RelayDirection): boolean =>
        flip !== undefined && direction === flip.direction && connection.id === (flip.connection ?? 1);
      return ({ direction, chunk }) => {
        const start = offsets[direction];
        offsets[direction] += chunk.length;
        let bytes = chunk;
        if (flips(direction) && start <= flip!.offset && flip!.offset < start + chunk.length) {
          bytes = Buffer.from(chunk);
          bytes[flip!.offset - start]! ^= 0xff;
          flipped = true;
        }
        if (options.record) chunks[direction].push(Buffer.from(chunk));
        connection.forward(direction, bytes);
      };
    },
    { pageBytes: 'skip' },
  );
  return {
    address: relay.address,
    captured: (direction) => recorded.map((chunks) => Buffer.concat(chunks[direction])),
    get flipped() {
      return flipped;
    },
    get accepted() {
      return connections.length;
    },
    get refusing() {
      return refusing;
    },
    set refusing(value) {
      refusing = value;
    },
    cutAll: () => {
      for (const connection of connections) if (!connection.closed) connection.cut();
    },
    close: relay.close,
  };
}
