/**
 * Workloads whose guest words are read by something outside the vCPU (the NIC's frames, the
 * disk's blocks) lay them out little-endian, as Int32Array does on x86 and ARM: on a big-endian
 * host they refuse to start rather than exchange garbage.
 */
import { MigrationError } from '../../errors.ts';

export function requireLittleEndian(workload: string): void {
  if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) {
    throw new MigrationError(
      'ERR_INTERNAL',
      `${workload}: the guest's words are little-endian for its devices; this host is big-endian`,
    );
  }
}
