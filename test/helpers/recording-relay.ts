/**
 * A TCP relay for tests that writes down the frames of every connection passing through — which
 * message, which way, in order — while forwarding the bytes untouched, so a test can compare a
 * real migration's message order with the one docs/protocol.md draws. Optionally it cuts one
 * connection, once, at an exact protocol moment (`cutBefore`), and keeps recording everything
 * after it (the reconnects of a recovery included). Page bytes are not copied: the decoder hands
 * them to a sink that ignores them.
 */
import net from 'node:net';
import { FrameDecoder, messageName, MsgType, type Message, type PageSink } from '@livemig/shared/protocol';

/** 'to-dest' = sent by the source. */
export type RelayDirection = 'to-dest' | 'to-source';

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
  const sockets = new Set<net.Socket>();
  let cutDone = false;
  let announceCut!: (what: string) => void;
  const cut = new Promise<string>((resolve) => (announceCut = resolve));

  const server = net.createServer((client) => {
    const record: RecordedConnection = {
      id: connections.length + 1,
      frames: [],
      cut: false,
      openAtCut: false,
      closed: false,
    };
    connections.push(record);
    const upstream = net.connect(target);
    sockets.add(client).add(upstream);
    const cutNow = (what: string): void => {
      cutDone = true;
      record.cut = true;
      for (const c of connections) if (!c.closed) c.openAtCut = true;
      client.destroy();
      upstream.destroy();
      announceCut(what);
    };
    const relay = (from: net.Socket, to: net.Socket, direction: RelayDirection): void => {
      let pending: RecordedFrame[] = [];
      const note = (frame: RecordedFrame): void => {
        record.frames.push(frame);
        pending.push(frame);
      };
      const ignorePages: PageSink = {
        pagesBegin: (meta) => note({ direction, name: 'Pages', requestId: meta.requestId }),
        pageBytes: () => {},
        pagesEnd: () => {},
      };
      const decoder = new FrameDecoder({ maxFrameBytes: 64 << 20, sink: ignorePages });
      const onMessage = (message: Message): void => {
        const frame: RecordedFrame = { direction, name: messageName(message.type) };
        if (message.type === MsgType.Attach) frame.channel = message.channel;
        note(frame);
      };
      from.on('data', (chunk: Buffer) => {
        pending = [];
        if (decoder.error === undefined) {
          try {
            decoder.feed(chunk, onMessage);
          } catch (error) {
            // Not a valid stream: say so in the record once, and keep relaying the bytes.
            note({ direction, name: `undecodable (${(error as { code?: string }).code ?? String(error)})` });
          }
        }
        const trigger = cutDone ? undefined : pending.find((frame) => options.cutBefore?.(frame, record));
        if (trigger) return cutNow(`cut before ${trigger.name} ${direction} on connection ${record.id}`);
        to.write(chunk);
      });
      from.on('error', () => to.destroy());
      from.on('close', () => {
        record.closed = true;
        to.destroy();
      });
    };
    relay(client, upstream, 'to-dest');
    relay(upstream, client, 'to-source');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    connections,
    cut,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
