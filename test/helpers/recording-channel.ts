/**
 * A PeerChannel stand-in for the post-copy pusher's unit tests: it records the page numbers of the
 * batches it is given and always has room. `capabilities` is what it says was negotiated.
 */
import type { PeerChannel } from '@livemig/shared/channel';
import type { PagesBatch } from '@livemig/shared/protocol';

export function recordingChannel(capabilities: string[] = []): { channel: PeerChannel; batches: number[][] } {
  const batches: number[][] = [];
  const channel = {
    failure: undefined,
    capabilities: new Set(capabilities),
    sendPages: (batch: PagesBatch) => {
      batches.push([...batch.pages]);
      return true;
    },
    drained: async () => {},
  } as unknown as PeerChannel;
  return { channel, batches };
}
