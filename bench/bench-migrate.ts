/**
 * What the migration benchmarks share: the S1 scenario, one migration between fresh agent
 * processes (stopped afterwards, so no run inherits another's warm state; plaintext, or mutual
 * TLS with a ticket), the raw-socket baseline (bench/raw-socket-peer.ts; plain TCP or TLS 1.3),
 * the CPU each process used, and a memory warm-up (this VM's first touch of never-used memory is
 * slow; see PERFORMANCE.md).
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { ControlClient, type MigrateParams } from '@livemig/shared/control';
import type { MigrationReport } from '@livemig/shared/report';
import { withAgentPair } from '../cli/agent-process.ts';
import { followMigration } from '../cli/follow-migration.ts';
import { prepareIncoming, secureAgentArgs, SECURE_NAMES } from '../cli/lab/secure.ts';
import type { ThrowawayPki } from '../cli/throwaway-pki.ts';

const GiB = 1024 ** 3;

export interface VmRequest {
  memory: number;
  /** An --init spec: zero, random, realistic, mixed:… */
  init: string;
  workload: string;
  maxBandwidthBps?: number | null;
  /** More migrate parameters (page encodings, throttles …). */
  params?: MigrateParams;
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

/** S1: an idle 1 GiB VM of random pages (the migration and security sections). */
export const S1 = { label: 'S1 idle 1 GiB random', vm: { memory: GiB, init: 'random', workload: 'idle' } } as const;

export interface Migrated {
  report: MigrationReport;
  /** CPU ms each agent process used from the migrate command to the report. */
  cpu: { source: number; dest: number };
}

/**
 * Fresh agents for one migration (no state carried over from a previous run), stopped afterwards.
 * With `pki` (cli/lab/secure.ts) they speak mutual TLS on both planes (the bench's client is the
 * admin, who may create VMs) and the destination takes the VM with the ticket its
 * `prepare-incoming` gave (asked before the migrate command: not in the report's total time).
 */
export async function migrateOnce(vm: VmRequest, pki?: ThrowawayPki): Promise<Migrated> {
  const pair = pki ? { sourceArgs: secureAgentArgs(pki, 'source'), destArgs: secureAgentArgs(pki, 'dest') } : {};
  return withAgentPair(pair, async ({ dest, source }) => {
    const control = pki
      ? await pki.connect(source.control, SECURE_NAMES.admin, SECURE_NAMES.source)
      : await ControlClient.connect(source.control);
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
        params: { maxBandwidthBps: vm.maxBandwidthBps ?? null, ...vm.params },
        ...(pki ? await prepareIncoming(pki, dest.control, 'bench') : {}),
      });
      const report = await followMigration(control, migrationId, { progress: false });
      const cpu = { source: cpuMs(source.child.pid) - cpu0.source, dest: cpuMs(dest.child.pid) - cpu0.dest };
      if (report.outcome !== 'completed' || !report.verify.match) {
        throw new Error(`bench migration ${report.outcome}: ${JSON.stringify(report.error)}\n${source.logs()}`);
      }
      if (Boolean(pki) !== Boolean(report.security)) {
        throw new Error(
          `bench migration: asked for ${pki ? 'mutual TLS' : 'plaintext'}, report.security says ${JSON.stringify(report.security)}`,
        );
      }
      return { report, cpu };
    } finally {
      control.close();
    }
  });
}

const peerScript = new URL('./raw-socket-peer.ts', import.meta.url).pathname;

function startPeer(args: string[]): ChildProcess {
  return fork(peerScript, args, { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

export interface RawTransfer {
  /** From the receiver's connect call (TLS handshake included) to the last byte. */
  ms: number;
  /** CPU ms sender + receiver used for it. */
  cpu: number;
  /** With TLS: what was negotiated, e.g. TLSv1.3 and TLS_AES_256_GCM_SHA384. */
  protocol?: string;
  cipher?: string;
}

/**
 * One raw-socket transfer of `bytes` between two fresh processes (bench/raw-socket-peer.ts),
 * plain TCP or, with `pki`, mutual TLS 1.3 with its certificates.
 */
export async function rawOnce(bytes: number, pki?: ThrowawayPki): Promise<RawTransfer> {
  const tls = pki ? [pki.dir] : [];
  const sender = startPeer(['send', String(bytes), String(bytes), ...tls]);
  const [{ port }] = (await once(sender, 'message')) as [{ port: number }];
  const receiver = startPeer(['recv', String(port), String(bytes), ...tls]);
  await once(receiver, 'message'); // ready
  const cpu0 = cpuMs(sender.pid) + cpuMs(receiver.pid);
  receiver.send('go');
  const [result] = (await once(receiver, 'message')) as [Omit<RawTransfer, 'cpu'>];
  const cpu = cpuMs(sender.pid) + cpuMs(receiver.pid) - cpu0;
  await Promise.all([
    sender.exitCode === null ? once(sender, 'exit') : undefined,
    receiver.exitCode === null ? once(receiver, 'exit') : undefined,
  ]);
  return { ...result, cpu };
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
