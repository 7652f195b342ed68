/**
 * The address on one machine without privileges (the demo): the VM's ip:port is a local
 * address, so moving it is only the source's socket closing and the destination's binding the
 * same ip:port — the NIC backend's job. The mover only checks, when preparing, that the IP is
 * one this host has: otherwise binding it at handoff would fail after the point of no return.
 */
import { networkInterfaces } from 'node:os';
import { MigrationError } from '../../errors.ts';
import type { AddressMover, VmAddress } from './address-mover.ts';

export class LoopbackAddress implements AddressMover {
  readonly bindBeforeTake = false;
  readonly mode = 'loopback' as const;
  readonly #address: VmAddress;

  constructor(address: VmAddress) {
    this.#address = address;
  }

  async prepare(): Promise<void> {
    const ip = this.#address.ip;
    const local = Object.values(networkInterfaces()).some((list) => list?.some((a) => a.address === ip));
    if (!ip.startsWith('127.') && !local) {
      throw new MigrationError(
        'ERR_ADDRESS',
        `the VM's address ${ip} is not on this host: start the agent with --vm-link IFACE to give VMs their own ` +
          'address on that interface, or use a loopback address (127.x) on one machine',
      );
    }
  }

  async take(): Promise<{ ms: number }> {
    return { ms: 0 };
  }

  prepareGive(): void {}

  async give(): Promise<void> {}

  async dispose(): Promise<void> {}
}
