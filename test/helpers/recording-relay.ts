/**
 * A TCP relay for tests that writes down the frames of every connection passing through — which
 * message, which way, in order — while forwarding the bytes untouched, so a test can compare a
 * real migration's message order with the one docs/protocol.md draws. Optionally it cuts one
 * connection, once, at an exact protocol moment (`cutBefore`), and keeps recording everything
 * after it (the reconnects of a recovery included). Page bytes are not copied (frame-relay.ts,
 * which holds the sockets and decoding, skips them); a stream it cannot decode is recorded as
 * one `undecodable (CODE)` frame and still relayed byte for byte.
 */
import { messageName, MsgType } from '@livemig/shared/protocol';
import type { Message, PagesMeta } from '@livemig/shared/protocol';
import {
  startFrameRelay,
  type FrameRelay,
  type RelayConnection,
  type RelayDirection,
  type RelayHook,
} from './frame-relay.ts';

/**
 * The relay listens on a loopback address of its own: a destination's fault thread port (SetupDone)
 * is then relayed at the same port number there, where the source connects (the host it knows).
 */
const RELAY_HOST = '127.0.0.2';

/** 'to-dest' = sent by the source. */
export type { RelayDirection };

export interface RecordedFrame {
  direction: RelayDirection;
  /** The message name, as MESSAGE_SPEC spells it. */
  name: string;
  /** Pages: the request it answers (0 = pushed). */
  requestId?: number;
  /** Attach: which connection this one becomes. */
  channel?: string;
}

export interface RecordedConnection {
  /** 1, 2, … in the order the relay accepted them. */
  id: number;
  frames: RecordedFrame[];
  /** The relay cut this connection. */
  cut: boolean;
  /** It was open when the relay cut a connection (so it may have broken too). */
  openAtCut: boolean;
  closed: boolean;
}

export interface RecordingRelay {
  /** "127.0.0.1:PORT", to give the source as the destination's address. */
  address: string;
  connections: RecordedConnection[];
  /** Resolves with a description of the cut, once one happened. */
  cut: Promise<string>;
  close(): Promise<void>;
}

export interface RecordingRelayOptions {
  /** Cut the connection before forwarding the chunk that holds this frame (at most once). */
  cutBefore?: (frame: RecordedFrame, connection: RecordedConnection) => boolean;
}

export async function startRecordingRelay(
  target: { host: string; port: number },
  options: RecordingRelayOptions = {},
): Promise<RecordingRelay> {
  const connections: RecordedConnection[] = [];
  let cutDone = false;
  let announceCut!: (what: string) => void;
  const cut = new Promise<string>((resolve) => (announceCut = resolve));

  /** The destination's fault thread ports relayed (SetupDone's faultPort), each once. */
  const faultRelays = new Map<number, Promise<FrameRelay>>();
  const record = (connection: RelayConnection): RelayHook<Message | PagesMeta> => {
    const entry: RecordedConnection = {
      // In the order accepted across the main port and any fault thread port relayed.
      id: connections.length + 1,
      frames: [],
      cut: false,
      openAtCut: false,
      get closed() {
        return connection.closed;
      },
    };
    connections.push(entry);
    return ({ direction, chunk, frames, error }) => {
      // A fault thread's port (capability fault-thread): relay it too, at the same port of the
      // relay's own address, before the source reads where to connect.
      const setupDone = frames.find((message) => message.type === MsgType.SetupDone);
      const faultPort = setupDone?.type === MsgType.SetupDone ? setupDone.faultPort : undefined;
      if (faultPort !== undefined && !faultRelays.has(faultPort)) {
        const opening = startFrameRelay({ host: target.host, port: faultPort }, record, {
          pageBytes: 'skip',
          listen: { host: RELAY_HOST, port: faultPort },
        });
        faultRelays.set(faultPort, opening);
      }
      const recorded = frames.map((message): RecordedFrame => {
        const frame: RecordedFrame = { direction, name: messageName(message.type) };
        if (message.type === MsgType.Pages) frame.requestId = message.requestId;
        if (message.type === MsgType.Attach) frame.channel = message.channel;
        return frame;
      });
      // Not a valid stream: say so in the record once, and keep relaying the bytes.
      if (error) recorded.push({ direction, name: `undecodable (${error.code})` });
      entry.frames.push(...recorded);
      const trigger = cutDone ? undefined : recorded.find((frame) => options.cutBefore?.(frame, entry));
      if (!trigger) {
        const opening = faultPort === undefined ? undefined : faultRelays.get(faultPort);
        if (opening) return connection.hold(direction, opening, () => connection.forward(direction, chunk));
        return connection.forward(direction, chunk);
      }
      cutDone = true;
      entry.cut = true;
      for (const c of connections) if (!c.closed) c.openAtCut = true;
      connection.cut();
      announceCut(`cut before ${trigger.name} ${direction} on connection ${entry.id}`);
    };
  };
  const relay = await startFrameRelay(target, record, { pageBytes: 'skip', listen: { host: RELAY_HOST, port: 0 } });
  return {
    address: relay.address,
    connections,
    cut,
    close: async () => {
      await relay.close();
      for (const opening of faultRelays.values()) await (await opening).close();
    },
  };
}
