/**
 * Real livemig processes for integration tests, always cleaned up: every process started here
 * is killed by `stopAll()`, which the tests call in `afterEach` — even when the test failed.
 */
import { spawn, type ChildProcess, type ChildProcessByStdio } from 'node:child_process';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { CLI_PATH, REPO_ROOT, startAgentProcess, type AgentProcess, type AgentRole } from '../../cli/agent-process.ts';

export type { AgentProcess } from '../../cli/agent-process.ts';

const live = new Set<ChildProcess>();

/** Track a child process so stopAll() kills it. */
export function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
}

/** A livemig process started by spawnCli: its output so far, and its exit status once it has ended. */
export interface RunningCli {
  child: ChildProcessByStdio<null, Readable, Readable>;
  out(): string;
  err(): string;
  /** Its exit status (null when a signal ended it), once its output is all read. */
  exited: Promise<number | null>;
}

/** Start `livemig <args>` and leave it running — to signal it, to read its output as it comes. */
export function spawnCli(args: readonly string[]): RunningCli {
  const child = spawn(process.execPath, [CLI_PATH, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = once(child, 'close').then(([code]) => code as number | null);
  return { child, out: () => out, err: () => err, exited };
}

/** Run `livemig <args>` to completion; resolves with its output and exit status. */
export async function runCli(
  args: readonly string[],
  options: { timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const running = spawnCli(args);
  const timer = setTimeout(() => running.child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
  const code = await running.exited;
  clearTimeout(timer);
  return { code, stdout: running.out(), stderr: running.err() };
}

/** Start an agent (`livemig agent|source|dest …`) on free loopback ports, debug logs kept for failures. */
export function startAgent(
  role: AgentRole,
  args: readonly string[] = [],
  options: { wrap?: readonly string[]; kept?: boolean } = {},
): Promise<AgentProcess> {
  // kept: stopAll leaves it alone, its starter stops it (test/helpers/shared-pair.ts).
  const { kept, ...rest } = options;
  return startAgentProcess(role, {
    ...rest,
    args: ['--log-level', 'debug', ...args],
    ...(kept ? {} : { onSpawn: track }),
  });
}

/** What boots a VM at an agent's start (a VmSpec has it). */
export type VmSpecLike = { memoryBytes: number; init: string; workload: string; seed: number; disk?: number | null };

/** The flags that boot VM `name` of this spec at an agent's start. */
export function vmArgs(name: string, spec: VmSpecLike): string[] {
  const args = ['--vm', name, '--memory', String(spec.memoryBytes), '--init', spec.init];
  const disk = spec.disk ? ['--disk', String(spec.disk)] : [];
  return [...args, '--workload', spec.workload, '--seed', String(spec.seed), ...disk];
}

/** Start a source agent hosting one running VM of this spec. */
export function startSourceWithVm(
  name: string,
  spec: VmSpecLike,
  options: { wrap?: readonly string[] } = {},
): Promise<AgentProcess> {
  return startAgent('source', vmArgs(name, spec), options);
}

/** Kill every process these helpers started that is still running (but agents started `kept`). */
export async function stopAll(): Promise<void> {
  await Promise.all(
    [...live].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
}
