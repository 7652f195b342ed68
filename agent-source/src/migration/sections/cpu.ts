/**
 * The CPU section: the vCPU's register file (and its step count), sent once at the stop point.
 * Its digest is of the exact bytes sent; the destination hashes the registers it loaded.
 */
import { msg, type PeerChannel } from '@livemig/shared/channel';
import { CPU_STATE_BYTES, cpuStateDigest, type ToyVm } from '@livemig/shared/vm';
import { StopPointSection } from './state-section.ts';

export function cpuSection(vm: ToyVm, channel: () => PeerChannel): StopPointSection {
  return new StopPointSection('cpu', CPU_STATE_BYTES, () => {
    const registers = vm.exportCpuState();
    channel().send(msg.cpuState(vm.steps, registers));
    return cpuStateDigest(registers);
  });
}
