/** UDP helpers for tests of the VM's network service. */
import dgram from 'node:dgram';
import { expect } from 'vitest';
import { parseHostPort } from '@livemig/shared';
import type { ControlClient, VmInfo } from '@livemig/shared/control';
import { runProbe } from '../../cli/probe/probe.ts';

/** A loopback UDP port that was free a moment ago (bound, then closed). */
export async function freeUdpPort(): Promise<number> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

/**
 * After a migration: the VM's address still answers, and it is the destination's VM that
 * answers (its step counter moves by at least the replies), while the source only keeps a record.
 */
export async function expectServedByDestination(
  vm: string,
  address: string,
  mode: 'loopback' | 'macvlan',
  dest: ControlClient,
  source: ControlClient,
): Promise<void> {
  const info = async (client: ControlClient): Promise<VmInfo> => {
    const found = (await client.request('query-vms', {})).vms.find((v) => v.name === vm);
    expect(found, `VM ${vm} on ${client === dest ? 'destination' : 'source'}`).toBeDefined();
    return found!;
  };
  const before = await info(dest);
  expect(before.nic).toMatchObject({ address, mode, taken: true });
  const after = await runProbe({ target: parseHostPort(address), intervalMs: 2, durationMs: 300 });
  expect(after.replies).toBeGreaterThan(0);
  expect((await info(dest)).steps - before.steps).toBeGreaterThanOrEqual(after.replies);
  expect((await info(source)).state).toBe('migrated');
}
