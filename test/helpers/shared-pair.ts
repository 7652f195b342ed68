/**
 * One pair of agents (or one agent) that the tests of a describe block share, for tests that each
 * migrate a VM of their own between two agents, or command one, and need nothing else of them (an
 * agent's start is ~1 s of the two cores, more than many of these migrations take):
 *
 *   const pair = useSharedPair({ start: () => fleet.pair(), ask: fleet.ask }); // in a describe
 *   const [source, dest] = await pair.boot('vm', spec); // the pair, `vm` running on the source
 *   const [source, dest] = await pair.agents(); // the pair, for a test that creates its VM itself
 *
 * The first test that asks starts the pair. After each test that asked for it (in its own body:
 * agents kept from an earlier test are not emptied after this one) every VM on both agents is
 * destroyed, so the next test finds them as fresh agents would be; a pair that cannot be emptied
 * (a test failed mid-migration) is stopped, the test fails for it, and the next test starts
 * another pair. After the block the pair is stopped. The agents must be started `kept: true`
 * (startAgent, fleet.agent; fleet.pair() does): they outlive the stopAll that most files run after
 * each test. A test that kills or restarts an agent, or needs flags of its own, starts its agents.
 */
import { afterAll, afterEach } from 'vitest';
import type { ControlClient } from '@livemig/shared/control';
import type { VmSpec } from '@livemig/shared/vm';
import type { AgentProcess } from './processes.ts';

/** Ask an agent something on a connection of its own (fleet.ask; plain-agents.ts ask for plaintext agents). */
export type Ask = <T>(agent: AgentProcess, run: (client: ControlClient) => Promise<T>) => Promise<T>;

/** Agents shared by a block's tests: a pair, source first (or one agent alone: `[agent]`). */
type Agents = readonly [AgentProcess, ...AgentProcess[]];

export interface SharedPair<T extends Agents> {
  /** The agents, started by the first test that asks. */
  agents(): Promise<T>;
  /** The agents, VM `vm` of `spec` running on the first (the source). */
  boot(vm: string, spec: VmSpec): Promise<T>;
}

export function useSharedPair<T extends Agents>(options: { start: () => Promise<T>; ask: Ask }): SharedPair<T> {
  const { start, ask } = options;
  let pair: Promise<T> | undefined;

  async function stop(): Promise<void> {
    const agents = await pair?.catch(() => [] as AgentProcess[]);
    pair = undefined;
    await Promise.all(
      (agents ?? []).map(async (agent) => {
        if (agent.child.exitCode === null && agent.child.signalCode === null) {
          agent.child.kill('SIGKILL');
          await agent.exited;
        }
      }),
    );
  }

  // One connection per agent, both agents at once: on secure agents each connection is a mutual
  // TLS handshake, and this runs after every test that used the pair.
  async function empty(): Promise<void> {
    await Promise.all(
      (await pair!).map((agent) =>
        ask(agent, async (client) => {
          const { vms } = await client.request('query-vms', {});
          for (const { name } of vms) await client.request('destroy-vm', { vm: name });
        }),
      ),
    );
  }

  /** Whether the test running now asked for the agents (only then is there anything to empty). */
  let used = false;
  afterEach(async () => {
    if (!pair || !used) return;
    used = false;
    try {
      await empty();
    } catch (error) {
      await stop();
      throw error;
    }
  });
  afterAll(stop);

  const agents = (): Promise<T> => {
    used = true;
    return (pair ??= start());
  };
  return {
    agents,
    async boot(vm, spec) {
      const booted = await agents();
      const { memoryBytes: memory, init, workload, seed, disk } = spec;
      await ask(booted[0], (client) =>
        client.request('create-vm', { name: vm, memory, init, workload, seed, ...(disk ? { disk } : {}) }),
      );
      return booted;
    },
  };
}
