/**
 * The CPU section: the vCPU's register file (and its step count), sent once, at the stop
 * point — it changes every step, so there is nothing to pre-copy. Its digest is of the exact
 * bytes sent; the destination hashes the registers it loaded.
 */
import { msg, type PeerChannel } from '@livemig/shared/channel';
import { CPU_STATE_BYTES, cpuStateDigest, type ToyVm } from '@livemig/shared/vm';
import type { OutgoingSection } from './section.ts';

export class CpuSection implements OutgoingSection {
  readonly name = 'cpu';
  readonly #vm: ToyVm;
  readonly #channel: () => PeerChannel;
  #digest: string | undefined;

  constructor(vm: ToyVm, channel: () => PeerChannel) {
    this.#vm = vm;
    this.#channel = channel;
  }

  pending(): number {
    return this.#digest === undefined ? CPU_STATE_BYTES : 0;
  }

  complete(): Promise<void> {
    const registers = this.#vm.exportCpuState();
    this.#channel().send(msg.cpuState(this.#vm.steps, registers));
    this.#digest = cpuStateDigest(registers);
    return Promise.resolve();
  }

  digest(): string | undefined {
    return this.#digest;
  }
}
