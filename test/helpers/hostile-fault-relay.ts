/**
 * A relay that stands in for a destination with a post-copy fault thread (as fault-port-relay.ts
 * does: the main connection on 127.0.0.2 at an ephemeral port, and once SetupDone names the
 * thread's port, 127.0.0.2 at that port toward it) and plays a hostile destination on the fault
 * channel: on fault connection k it passes the destination's frames to the source until the first
 * PageRequest, then writes `injections[k - 1]` to the source and nothing more of that connection.
 * Frames toward the source are passed whole (decoded and encoded again), so an injection always
 * starts at a frame boundary. Connections past the injections pass untouched. The codes of the
 * Error frames the source sends on the fault channels are kept, in order, in `refusals`.
 */
import type { Message, PagesMeta } from '@livemig/shared/protocol';
import { encodeFrameBytes, MsgType } from '@livemig/shared/protocol';
import { startFrameRelay, type FrameRelay } from './frame-relay.ts';

const RELAY_HOST = '127.0.0.2';

export interface HostileFaultRelay {
  /** "127.0.0.2:PORT": give the source this as the destination. */
  address: string;
  /** Codes of the Error frames the source sent on its fault channels. */
  readonly refusals: readonly string[];
  close(): Promise<void>;
}

function isMessage(frame: Message | PagesMeta): frame is Message {
  return 'type' in frame && frame.type !== MsgType.Pages;
}

export async function startHostileFaultRelay(
  dest: { host: string; port: number },
  injections: readonly Uint8Array[],
): Promise<HostileFaultRelay> {
  const refusals: string[] = [];
  const relays: FrameRelay[] = [];
  let faultConnections = 0;
  let faultRelay: Promise<unknown> | undefined;

  const openFaultRelay = (port: number): Promise<unknown> =>
    startFrameRelay(
      { host: dest.host, port },
      (connection) => {
        const injection = injections[faultConnections++];
        let injected = false;
        return ({ direction, chunk, frames }) => {
          if (direction === 'to-dest') {
            for (const frame of frames) if (isMessage(frame) && frame.type === MsgType.Error) refusals.push(frame.code);
            return connection.forward('to-dest', chunk);
          }
          if (!injection) return connection.forward('to-source', chunk);
          if (injected) return; // the source refuses this connection: nothing more goes to it
          for (const frame of frames) {
            if (!isMessage(frame)) continue;
            connection.forward('to-source', encodeFrameBytes(frame));
            if (frame.type === MsgType.PageRequest) {
              connection.forward('to-source', injection);
              injected = true;
              return;
            }
          }
        };
      },
      { pageBytes: 'skip', listen: { host: RELAY_HOST, port } },
    ).then((relay) => relays.push(relay));

  const main = await startFrameRelay(
    dest,
    (connection) =>
      ({ direction, chunk, frames }) => {
        const setupDone = frames.find((frame) => isMessage(frame) && frame.type === MsgType.SetupDone);
        const faultPort =
          setupDone && isMessage(setupDone) && setupDone.type === MsgType.SetupDone && setupDone.faultPort;
        if (direction === 'to-source' && faultPort) {
          // The thread's port is relayed before the source learns it.
          faultRelay ??= openFaultRelay(faultPort);
          return connection.hold('to-source', faultRelay, () => connection.forward('to-source', chunk));
        }
        connection.forward(direction, chunk);
      },
    { pageBytes: 'skip', listen: { host: RELAY_HOST, port: 0 } },
  );
  relays.push(main);
  return {
    address: main.address,
    refusals,
    close: async () => {
      await faultRelay?.catch(() => {});
      await Promise.all(relays.map((relay) => relay.close()));
    },
  };
}
