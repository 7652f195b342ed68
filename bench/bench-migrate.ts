/**
 * What the migration benchmarks share: one migration between fresh agent processes (stopped
 * afterwards, so no run inherits another's warm state), the CPU each agent used, and a memory
 * warm-up (this VM's first touch of never-used memory is slow; see PERFORMANCE.md).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { ControlClient } from '@livemig/shared/control';
import type { MigrationReport } from '@livemig/shared/report';
import { withAgentPair } from '../cli/agent-process.ts';
import { followMigration } from '../cli/follow-migration.ts';

const GiB = 1024 ** 3;

export interface VmRequest {
  memory: number;
  init: 'random' | 'zero';
  workload: string;
  maxBandwidthBps?: number | null;
  /** @default 'precopy' */
  mode?: 'precopy' | 'postcopy' | 'hybrid';
}

/** CPU time (user + system, all threads, ms) a process has used so far; Linux USER_HZ is 100. */
export function cpuMs(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return NaN;
  }
}

export interface Migrated {
  report: MigrationReport;
  /** CPU ms each agent process used from the migrate command to the report. */
  cpu: { source: number; dest: number };
}

/** Fresh agents for one migration (no state carried over from a previous run), stopped afterwards. */
export async function migrateOnce(vm: VmRequest): Promise<Migrated> {
  return withAgentPair({}, async ({ dest, source }) => {
    const control = await ControlClient.connect(source.control);
    try {
      await control.request('create-vm', {
        name: 'bench',
        memory: vm.memory,
        init: vm.init,
        workload: vm.workload,
        seed: 1,
      });
      const cpu0 = { source: cpuMs(source.child.pid), dest: cpuMs(dest.child.pid) };
      const { migrationId } = await control.request('migrate', {
        vm: 'bench',
        to: dest.listen,
        mode: vm.mode ?? 'precopy',
        params: { maxBandwidthBps: vm.maxBandwidthBps ?? null },
      });
      const report = await followMigration(control, migrationId, { progress: false });
      const cpu = { source: cpuMs(source.child.pid) - cpu0.source, dest: cpuMs(dest.child.pid) - cpu0.dest };
      if (report.outcome !== 'completed' || !report.verify.match) {
        throw new Error(`bench migration ${report.outcome}: ${JSON.stringify(report.error)}\n${source.logs()}`);
      }
      return { report, cpu };
    } finally {
      control.close();
    }
  });
}

export async function warmMemory(gib: number): Promise<number> {
  const script = `
    const keep = [];
    const t0 = performance.now();
    for (let g = 0; g < ${gib}; g++) {
      const w = new Int32Array(new SharedArrayBuffer(${GiB}));
      for (let i = 0; i < w.length; i += 1024) w[i] = 1;
      keep.push(w);
    }
    process.stdout.write(String((performance.now() - t0) / ${gib}));`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  await once(child, 'exit');
  return Number(out);
}
