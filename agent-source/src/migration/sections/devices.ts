/**
 * The devices section: the device bus (timer, console) and the NIC — its MAC, address,
 * counters and ring indices — sent once at the stop point as plain data. (The NIC's rings live
 * in guest memory and travel with RAM; the RAM section sends the pages a device writes on its
 * own before a post-copy destination resumes.) Its digest is over a canonical serialisation of
 * what was sent; the destination hashes the state it loaded.
 */
import { msg, type PeerChannel } from '@livemig/shared/channel';
import { deviceStateDigest, type ToyVm } from '@livemig/shared/vm';
import { StopPointSection } from './state-section.ts';

/** A generous estimate of the device state on the wire, for the switchover rule. */
const DEVICE_STATE_BYTES = 1024;

export function devicesSection(vm: ToyVm, channel: () => PeerChannel): StopPointSection {
  return new StopPointSection('devices', DEVICE_STATE_BYTES, () => {
    const state = vm.exportDeviceState();
    channel().send(msg.deviceState(state as unknown as Record<string, unknown>));
    return deviceStateDigest(state);
  });
}
