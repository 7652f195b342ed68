/**
 * The write-blocking mirror (QEMU's blockdev-mirror copy-mode=write-blocking): once active, every
 * guest write, after it is in the local image and before the guest sees it complete, is sent to
 * the destination (DiskBlocks with an ackId) and waits for its DiskAck — the destination has it
 * in its image. A guest then cannot dirty the disk faster than the link copies it, whatever its
 * write rate: the disk converges, at the cost of each write's latency (one round trip and the
 * destination's write), which the report gives.
 *
 * It never fails a guest write: the link breaking (or the migration ending) releases every
 * write waiting for its ack — the write is in the local image, which is what the VM runs on as
 * long as the migration has not handed over — and the migration itself fails and rolls back.
 *
 * `mirrored` marks every block written since activation: the catch-up round that sends the
 * blocks written before activation skips them (their newer bytes went ahead, in order, on the
 * same channel).
 */
import { msg, MsgType, type PeerChannel } from '@livemig/shared/channel';
import { BLOCK_SIZE, type BlkDevice } from '@livemig/shared/disk';
import { Bitmap } from '@livemig/shared/vm';
import type { DiskCounters } from './block-sender.ts';

export class DiskMirror {
  readonly mirrored: Bitmap;
  readonly #channel: PeerChannel;
  readonly #counters: DiskCounters;
  readonly #waiting = new Map<number, () => void>();
  #nextId = 1;
  #device: BlkDevice | undefined;
  #unroute: (() => void) | undefined;
  #stopped = false;

  constructor(channel: PeerChannel, counters: DiskCounters, blockCount: number) {
    this.#channel = channel;
    this.#counters = counters;
    this.mirrored = new Bitmap(blockCount);
  }

  /** From now on, `device`'s writes complete only once the destination has them. */
  activate(device: BlkDevice): void {
    this.#device = device;
    this.#unroute = this.#channel.route(MsgType.DiskAck, (ack) => {
      const release = this.#waiting.get(ack.id);
      this.#waiting.delete(ack.id);
      release?.();
    });
    void this.#channel.whenFailed().then(() => this.stop());
    device.setHooks({ afterWrite: (first, data) => this.#forward(first, data) });
  }

  /** Writes waiting for their acknowledgement. */
  get inFlight(): number {
    return this.#waiting.size;
  }

  /** Stop mirroring: unhook the device and release every waiting write. Idempotent. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#device?.setHooks({});
    this.#unroute?.();
    for (const release of this.#waiting.values()) release();
    this.#waiting.clear();
  }

  #forward(first: number, data: Uint8Array): Promise<void> {
    if (this.#stopped || this.#channel.failure) return Promise.resolve();
    const count = data.length / BLOCK_SIZE;
    const blocks = Uint32Array.from({ length: count }, (_, k) => first + k);
    for (let k = 0; k < count; k++) this.mirrored.set(first + k);
    this.#counters.blocksMirrored += count;
    this.#counters.wireBytes += data.length;
    const id = this.#nextId++;
    const acked = new Promise<void>((resolve) => this.#waiting.set(id, resolve));
    try {
      this.#channel.send(msg.diskBlocks({ blocks, data, ackId: id }));
    } catch {
      this.#waiting.delete(id);
      return Promise.resolve(); // the channel failed: the migration fails, the write stands here
    }
    return acked;
  }
}
