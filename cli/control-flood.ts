/**
 * A flood of an agent's control port (issue 13, availability of the control plane): clients
 * that each ask `digest` of one VM in one loop and `query-vms` in another, asking again at once
 * whatever the answer, until stopped — and what they got, counted by command and outcome
 * (`digest ok`, `query-vms ERR_RATE_LIMITED`, `digest ERR_VM_STATE`, …). Used by
 * test/integration/control-flood.integration.test.ts and the security benchmark, which run the
 * same migration unloaded and under this flood.
 */
import { fork } from 'node:child_process';
import { setPriority } from 'node:os';
import { MigrationError } from '@livemig/shared';
import type { ControlClient } from '@livemig/shared/control';

/** What a flood got: answers by command and outcome ('ok' or an error code), e.g. `digest ok`. */
export type FloodTally = Record<string, number>;

/** A flood under way. */
export interface ControlFlood {
  /** Stop asking (the requests in flight are awaited) and close the clients; the tally. Again: the same tally. */
  stop(): Promise<FloodTally>;
}

export interface ControlFloodOptions {
  /** How many clients, each with its two loops. */
  clients: number;
  /**
   * How long to let the flood run before resolving: every client connected and past its burst
   * (the control server lets a client 100 requests ahead of its rate), so what follows meets the
   * flood's steady state. @default 500
   */
  settleMs?: number;
}

/**
 * Flood the agent that `connect` opens a client of (one connection per client; the clients need a
 * role that may ask `digest`: admin) with `digest` of `vm` and `query-vms`; resolves once the flood
 * has settled.
 */
export async function floodControl(
  connect: () => Promise<ControlClient>,
  vm: string,
  options: ControlFloodOptions,
): Promise<ControlFlood> {
  const connected = await Promise.allSettled(Array.from({ length: options.clients }, connect));
  const clients = connected.flatMap((c) => (c.status === 'fulfilled' ? [c.value] : []));
  const failed = connected.find((c) => c.status === 'rejected');
  if (failed) {
    for (const client of clients) client.close();
    throw failed.reason;
  }
  const tally: FloodTally = {};
  let flooding = true;
  const count = (key: string): void => void (tally[key] = (tally[key] ?? 0) + 1);
  const loop = async (ask: () => Promise<unknown>, command: string): Promise<void> => {
    while (flooding) {
      await ask().then(
        () => count(`${command} ok`),
        (error: MigrationError) => count(`${command} ${error.code}`),
      );
    }
  };
  const loops = clients.flatMap((client) => [
    loop(() => client.request('digest', { vm }), 'digest'),
    loop(() => client.request('query-vms', {}), 'query-vms'),
  ]);
  let stopped: Promise<FloodTally> | undefined;
  const stop = (): Promise<FloodTally> =>
    (stopped ??= (async () => {
      flooding = false;
      await Promise.all(loops);
      for (const client of clients) client.close();
      return tally;
    })());
  await new Promise((resolve) => setTimeout(resolve, options.settleMs ?? 500));
  return { stop };
}

/** Several floods' tallies added up. */
export function sumTallies(tallies: readonly FloodTally[]): FloodTally {
  const sum: FloodTally = {};
  for (const tally of tallies) for (const [key, n] of Object.entries(tally)) sum[key] = (sum[key] ?? 0) + n;
  return sum;
}

/** Who floods, from a process of its own: `clients` admins of the PKI directory `pkiDir` (loadPki). */
export interface FloodApartSpec {
  /** The agent's control URL (wss://…). */
  control: string;
  pkiDir: string;
  /** The identity the clients connect as (an admin: digest needs it). */
  name: string;
  /** The agent's certificate name, as the clients expect it. */
  agentName: string;
  vm: string;
  clients: number;
}

/** How long the flooding process may take to start and settle, or to stop and count. */
const APART_DEADLINE_MS = 30_000;

/**
 * floodControl from a process of its own at the lowest CPU priority (nice 19). The attackers of a
 * real deployment are other machines; on this 2-core host their own TLS, framing and JSON would
 * take the cores the migration under test needs — measured: the same flood in the test's own
 * process made flooded ÷ unloaded swing from 1.09 to 1.52 between runs — so the figure would
 * measure the attackers, not what serving them costs the agent.
 */
export async function floodControlApart(spec: FloodApartSpec): Promise<ControlFlood> {
  const child = fork(new URL('./control-flood-child.ts', import.meta.url).pathname, [JSON.stringify(spec)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    setPriority(child.pid!, 19);
  } catch {
    // Not permitted here: the flood runs at the normal priority, as it did in-process.
  }
  const next = (type: string, what: string): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new MigrationError('ERR_TIMEOUT', `control flood: ${what} took over ${APART_DEADLINE_MS} ms`));
      }, APART_DEADLINE_MS);
      const onMessage = (message: Record<string, unknown>): void => {
        if (message.type !== type) return;
        done();
        resolve(message);
      };
      const onExit = (code: number | null): void => {
        done();
        reject(new MigrationError('ERR_INTERNAL', `control flood: its process exited (${code}) before ${what}`));
      };
      const done = (): void => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
  await next('settled', 'settling');
  let stopped: Promise<FloodTally> | undefined;
  return {
    stop: () =>
      (stopped ??= (async () => {
        const counted = next('tally', 'counting');
        child.send({ type: 'stop' });
        return (await counted).tally as FloodTally;
      })()),
  };
}
