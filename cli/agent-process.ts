/**
 * Start a livemig agent as a child process and wait for its ready line (`{"event":"ready",…}`
 * on stdout), which tells the ports it bound — so callers pass port 0 and never guess or
 * sleep. Used by `livemig demo` and by the integration tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { MigrationError } from '@livemig/shared';

/** The CLI entry point, runnable with plain `node`. */
export const CLI_PATH = fileURLToPath(new URL('../bin/livemig.mjs', import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));

/** The agent commands: one daemon (`livemig agent`); `source` and `dest` only change its default ports. */
export type AgentRole = 'agent' | 'source' | 'dest';

export interface AgentProcess {
  role: AgentRole;
  child: ChildProcess;
  /** ws:// URL of the control API. */
  control: string;
  /** HOST:PORT of the data port ('' for a `source` started without --listen). */
  listen: string;
  /** Where to scrape its Prometheus metrics, http(s)://HOST:PORT/metrics; undefined without --metrics. */
  metrics?: string;
  /** What the process wrote to stderr (its logs) so far. */
  logs(): string;
  /** Resolves when the process ends. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it has exited. */
  stop(graceMs?: number): Promise<void>;
}

export interface StartAgentOptions {
  /** Extra flags after the role. */
  args?: readonly string[];
  /** Where its stderr goes besides the in-memory log: 'pipe' keeps it only in memory. @default 'pipe' */
  stderr?: 'pipe' | 'inherit';
  /** Give up when not ready within this time. @default 30000 */
  readyTimeoutMs?: number;
  /** Called with the child as soon as it is spawned (e.g. to track it for cleanup). */
  onSpawn?: (child: ChildProcess) => void;
  /** Run through this command, e.g. ['ip', 'netns', 'exec', 'lab-b'] (tests' network namespaces). */
  wrap?: readonly string[];
  /**
   * In a process group of its own, so a terminal's Ctrl-C (sent to the whole foreground group)
   * reaches only the caller, which then stops the agent when it is done with it — `livemig
   * compare` finishes the cell in progress. The caller must stop it even when it exits early.
   * @default false
   */
  ownProcessGroup?: boolean;
}

/**
 * Start `livemig agent|source|dest` on loopback, free ports, and wait until it is ready. `agent`
 * and `dest` get a data port; `source` only when `args` gives it --listen.
 */
export async function startAgentProcess(role: AgentRole, options: StartAgentOptions = {}): Promise<AgentProcess> {
  const ports =
    role === 'source' ? ['--control', '127.0.0.1:0'] : ['--listen', '127.0.0.1:0', '--control', '127.0.0.1:0'];
  const argv = [process.execPath, CLI_PATH, role, ...ports, ...(options.args ?? [])];
  const [command, ...rest] = [...(options.wrap ?? []), ...argv] as [string, ...string[]];
  const child = spawn(command, rest, {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', options.stderr ?? 'pipe'],
    ...(options.ownProcessGroup ? { detached: true } : {}),
  });
  options.onSpawn?.(child);
  let logs = '';
  child.stderr?.on('data', (chunk: Buffer) => (logs += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const lines = createInterface({ input: child.stdout! });
  const timeoutMs = options.readyTimeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  const ready = await new Promise<Record<string, string>>((resolve, reject) => {
    lines.on('line', (line) => {
      if (!line.startsWith('{')) return;
      try {
        const parsed = JSON.parse(line) as Record<string, string>;
        if (parsed.event === 'ready') resolve(parsed);
      } catch {
        // Not the ready line.
      }
    });
    timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new MigrationError('ERR_TIMEOUT', `${role} agent not ready within ${timeoutMs} ms:\n${logs}`));
    }, timeoutMs);
    void exited.then(({ code, signal }) =>
      reject(
        new MigrationError('ERR_CONNECTION', `${role} agent exited (${code ?? signal}) before it was ready:\n${logs}`),
      ),
    );
  }).finally(() => clearTimeout(timer));
  const stop = async (graceMs = 10_000): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(killer);
  };
  return {
    role,
    child,
    control: ready.control!,
    listen: ready.listen ?? '',
    ...(ready.metrics === undefined ? {} : { metrics: ready.metrics }),
    logs: () => logs,
    exited,
    stop,
  };
}

/** withAgentPair's options: both agents' options, and each one's own extra flags (e.g. its identity). */
export interface AgentPairOptions extends StartAgentOptions {
  sourceArgs?: readonly string[];
  destArgs?: readonly string[];
}

/**
 * Two agents (`livemig agent`) on loopback for the length of `run`, both stopped afterwards
 * whatever happens (the demo and the benchmarks: fresh agents, no state carried over). Either can
 * send or receive; `source` is the one the caller boots the VM on, `dest` the one it migrates to.
 */
export async function withAgentPair<T>(
  options: AgentPairOptions,
  run: (agents: { dest: AgentProcess; source: AgentProcess }) => Promise<T>,
): Promise<T> {
  const agents: AgentProcess[] = [];
  const { sourceArgs = [], destArgs = [], ...common } = options;
  const start = (args: readonly string[]): Promise<AgentProcess> =>
    startAgentProcess('agent', { ...common, args: [...(common.args ?? []), ...args] }).then((a) => (agents.push(a), a));
  try {
    const [dest, source] = await Promise.all([start(destArgs), start(sourceArgs)]);
    return await run({ dest, source });
  } finally {
    await Promise.all(agents.map((agent) => agent.stop()));
  }
}
