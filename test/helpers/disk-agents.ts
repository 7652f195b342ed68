/**
 * Plaintext agents for the storage migration tests (issue 15), each with a disk directory of its
 * own, and everything a test makes cleaned up after it, even when it failed:
 *
 *   const disks = useDiskAgents(); // afterEach: clients closed, processes killed, directories removed
 *   const { src, dst, dest } = await disks.pair(spec); // `vm` running on the source
 *   await disks.written(src, 4 * MiB);
 *   const report = await migrateVm(src, dest.listen, 'precopy', { storage: 'copy' });
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { ControlClient, type VmInfo } from '@livemig/shared/control';
import type { MigrationReport } from '@livemig/shared/report';
import { parseVmSpec, type VmSpec } from '@livemig/shared/vm';
import { followMigration } from '../../cli/follow-migration.ts';
import { startAgent, stopAll, vmArgs, type AgentProcess, type VmSpecLike } from './processes.ts';
import { waitUntil } from './wait.ts';

/** A source agent hosting `vm`, a destination agent, a control client to each, and their disk directories. */
export interface DiskPair {
  source: AgentProcess;
  dest: AgentProcess;
  src: ControlClient;
  dst: ControlClient;
  sourceDir: string;
  destDir: string;
}

/**
 * A VM whose memory is all zero (it moves in no time) with a disk of `disk` for `workload` (the
 * `disk` workload), so what a test measures is the disk's.
 */
export function diskVmSpec(workload: string, seed: number, disk: string): VmSpec {
  return parseVmSpec({ memory: '16MiB', init: 'zero', workload, seed, disk });
}

/** VM `name` on the agent `client` speaks to, or undefined. */
export async function vmOn(client: ControlClient, name = 'vm'): Promise<VmInfo | undefined> {
  return (await client.request('query-vms', {})).vms.find((v) => v.name === name);
}

/** Migrate `vm` from `from`'s agent to `to` (HOST:PORT) and follow it to its report. */
export async function migrateVm(
  from: ControlClient,
  to: string,
  mode: 'precopy' | 'postcopy' | 'hybrid',
  params: Record<string, unknown>,
): Promise<MigrationReport> {
  const { migrationId } = await from.request('migrate', { vm: 'vm', to, mode, params });
  return followMigration(from, migrationId, { progress: false });
}

/** The helpers of one test file; registers the afterEach that cleans up. */
export function useDiskAgents() {
  const dirs: string[] = [];
  const clients: ControlClient[] = [];
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await Promise.all(closers.splice(0).map((close) => close()));
    await stopAll();
    await Promise.all(dirs.splice(0).map((dir) => fs.rm(dir, { recursive: true, force: true })));
  });

  const disks = {
    /** A temporary directory, removed after the test. */
    async tempDir(): Promise<string> {
      const dir = await fs.mkdtemp(join(tmpdir(), 'livemig-disk-test-'));
      dirs.push(dir);
      return dir;
    },

    /** A control client to `agent`, closed after the test. */
    async connect(agent: AgentProcess): Promise<ControlClient> {
      const client = await ControlClient.connect(agent.control);
      clients.push(client);
      return client;
    },

    /** Run `close` after the test (a relay, a socket). */
    defer(close: () => Promise<void>): void {
      closers.push(close);
    },

    /**
     * A source agent hosting `vm` (this spec, or these flags) and a destination agent, each with
     * its own --disk-dir.
     */
    async pair(vm: VmSpecLike | readonly string[]): Promise<DiskPair> {
      const [sourceDir, destDir] = [await disks.tempDir(), await disks.tempDir()];
      const flags = Array.isArray(vm) ? vm : vmArgs('vm', vm as VmSpecLike);
      const [source, dest] = await Promise.all([
        startAgent('source', [...flags, '--disk-dir', sourceDir]),
        startAgent('dest', ['--disk-dir', destDir]),
      ]);
      const [src, dst] = [await disks.connect(source), await disks.connect(dest)];
      return { source, dest, src, dst, sourceDir, destDir };
    },

    /** Wait until the guest has written `bytes` of its disk (its allocated bytes). */
    async written(client: ControlClient, bytes: number, timeoutMs = 30_000): Promise<VmInfo> {
      return waitUntil(
        async () => {
          const vm = await vmOn(client);
          return (vm?.disk?.allocatedBytes ?? 0) >= bytes && vm;
        },
        { what: `the guest has written ${bytes} bytes of its disk`, timeoutMs },
      );
    },
  };
  return disks;
}
