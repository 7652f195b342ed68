/**
 * The post-copy fault threads (capability `fault-thread`): the destination's fault thread and the
 * source's fault worker, which own the two ends of the fault channel. With real agent processes
 * on loopback: post-copy and hybrid migrations whose faults the threads serve arrive intact
 * (oracle) and leave no thread behind on either side; a source without the capability gets the
 * fault channel on the main threads, as before; cutting the fault channel mid-post-copy is
 * recovered through the same threads; garbage and a wrong token on the thread's port are refused
 * with a code while the VM runs on, and so are a hostile destination's forged requests and
 * garbage on the fault channel by the source's worker; the source's worker killed mid-post-copy
 * hands the fault channel back to the source's main thread (agents in this process, to reach
 * the worker). Secure fleet agents (mutual TLS) unless a relay must read frames.
 */
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { liveFaultWorkers } from '@livemig/agent-source';
import { connectPeer, msg } from '@livemig/shared/channel';
import { silentLogger } from '@livemig/shared';
import { encodeFrameBytes, FrameDecoder, KNOWN_CAPABILITIES, MsgType, type Message } from '@livemig/shared/protocol';
import type { MigrationReport } from '@livemig/shared/report';
import { loadPki } from '@livemig/shared/security';
import { parseVmSpec, type VmSpec } from '@livemig/shared/vm';
import { followMigration } from '../../cli/follow-migration.ts';
import { checkOracle } from '../../cli/oracle.ts';
import { startFaultPortRelay } from '../helpers/fault-port-relay.ts';
import { startHostileFaultRelay } from '../helpers/hostile-fault-relay.ts';
import { useFleet, type FleetAgent } from '../helpers/fleet.ts';
import { useSharedPair } from '../helpers/shared-pair.ts';
import { ask, hostPort } from '../helpers/plain-agents.ts';
import { startAgent, startSourceWithVm, stopAll, vmArgs, type AgentProcess } from '../helpers/processes.ts';
import { expectCompleted } from '../helpers/report.ts';
import { sampleThreads, threadCount, waitForThreads } from '../helpers/threads.ts';
import { waitUntil } from '../helpers/wait.ts';

const fleet = useFleet();
afterEach(stopAll);

/** A VM that faults all through post-copy: a hot set rewritten while most of memory is still away. */
const hot = (seed: number): VmSpec =>
  parseVmSpec({ memory: '32MiB', init: 'random', workload: 'hotset:wss=4MiB,rate=20000', seed });
/** 32 MiB at 8 MB/s: four seconds of post-copy push, a window to do things in. */
const slow = { maxBandwidthBps: 8e6 };

function pid(agent: AgentProcess): number {
  if (agent.child.pid === undefined) throw new Error(`the ${agent.role} agent has no pid`);
  return agent.child.pid;
}

/** Times the destination's fault channel joined its fault thread (its log). */
function threadAttaches(dest: AgentProcess): number {
  return dest.logs().match(/"event":"fault-thread\.attached"/g)?.length ?? 0;
}

/** Times the source's fault worker opened the fault channel (its log). */
function workerAttaches(source: AgentProcess): number {
  return source.logs().match(/"event":"fault-worker\.attached"/g)?.length ?? 0;
}

/** The fault thread's port, once the destination logged it. */
async function faultPortOf(dest: AgentProcess): Promise<number> {
  let port = 0;
  await waitUntil(
    () => {
      port = Number(/"event":"fault-thread\.listening","port":(\d+)/.exec(dest.logs())?.[1] ?? 0);
      return port > 0;
    },
    { what: 'the destination logs its fault thread listening' },
  );
  return port;
}

async function statusOf(agent: FleetAgent | AgentProcess, id: string, secure: boolean): Promise<string | undefined> {
  const query = async (client: Parameters<Parameters<typeof ask>[1]>[0]) =>
    (await client.request('query-migrate', { migrationId: id }))?.status;
  return secure ? fleet.ask(agent as FleetAgent, query) : ask(agent, query);
}

const WORKLOADS = ['hotset:wss=4MiB,rate=20000', 'uniform:rate=20000', 'sweep:rate=20000', 'ab:rate=20000'];

describe.each(['postcopy', 'hybrid'] as const)('%s with the fault thread', (mode) => {
  // The workloads' migrations share one pair of agents (each VM destroyed after its test).
  const pair = useSharedPair({ start: () => fleet.pair(), ask: fleet.ask });

  it.each(WORKLOADS)('a VM running %s: the thread serves its faults, the oracle holds', async (workload) => {
    const spec = parseVmSpec({ memory: '16MiB', init: 'random', workload, seed: 30 });
    const [source, dest] = await pair.boot('vm', spec);
    const attachesBefore = threadAttaches(dest);
    const workerAttachesBefore = workerAttaches(source);
    const params = mode === 'hybrid' ? { postcopyAfterRounds: 1 } : {};
    const report = await fleet.migrate(source, dest, { vm: 'vm', mode, params });
    expectCompleted(report);
    expect(report.verify.match).toBe(true);
    const pc = report.postcopy!;
    // Each absent page sent once: by the source's fault worker (on demand) or by the push, which skips what the worker sent.
    expect(pc.pagesFetchedOnDemand + pc.pagesPushed).toBe(pc.absentAtSwitchover);
    expect(report.pages.faulted).toBe(pc.faults);
    expect(threadAttaches(dest) - attachesBefore).toBe(1);
    expect(workerAttaches(source) - workerAttachesBefore, "the source's fault worker held the fault channel").toBe(1);
    expect(pc.sourceFaultWorker).toBe(true);
    expect(report.threads!.source.threads.map((t) => t.name)).toContain('fault');
    const oracle = await fleet.oracle(dest, 'vm', spec);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
  });

  it('faults all through a slow push are served by the threads; no thread is left behind after', async () => {
    const spec = hot(31);
    const [source, dest] = await Promise.all([fleet.source('vm', spec), fleet.agent()]);
    const idle = threadCount(pid(dest));
    const sampled = sampleThreads(pid(dest));
    const sourceIdle = threadCount(pid(source));
    const sourceSampled = sampleThreads(pid(source));
    const params = mode === 'hybrid' ? { ...slow, postcopyAfterRounds: 1 } : slow;
    const report = await fleet.migrate(source, dest, { vm: 'vm', mode, params });
    sampled.stop();
    sourceSampled.stop();
    expectCompleted(report);
    expect(report.verify.match).toBe(true);
    const pc = report.postcopy!;
    expect(pc.faults).toBeGreaterThan(0);
    expect(pc.pagesFetchedOnDemand).toBeGreaterThan(0);
    expect(pc.faultLatencyMs).not.toBeNull();
    expect(pc.faultThread, 'the report says who served the faults').toBe(true);
    expect(threadAttaches(dest)).toBe(1);
    expect(workerAttaches(source)).toBe(1);
    expect(pc.sourceFaultWorker, 'and who answered them').toBe(true);
    expect(source.logs()).toMatch(/"event":"fault-worker\.answers","answers":[1-9]/);
    // While it ran: the VM's vCPU and the fault thread, at least, above the idle count.
    expect(sampled.peak).toBeGreaterThanOrEqual(idle + 2);
    // The source: its fault worker beside the VM's threads while it ran; after, gone with them (the VM left).
    expect(sourceSampled.peak).toBeGreaterThanOrEqual(sourceIdle + 1);
    expect(source.logs()).toMatch(/"event":"fault-worker\.exited"/);
    await waitUntil(() => threadCount(pid(source)) <= sourceIdle - 1, {
      what: 'the source: below its idle threads, its fault worker ended and the VM retired',
    });
    // The arrived VM destroyed, nothing of the migration is left: the fault thread ended with it.
    // (No oracle here: its digest starts the agent's digest worker, which stays for good.)
    await fleet.ask(dest, (client) => client.request('destroy-vm', { vm: 'vm' }));
    await waitForThreads(pid(dest), idle, 'the destination, its fault thread ended and the VM destroyed');
  });
});

describe('a source without fault-thread', () => {
  it('gets the fault channel on the main thread, as before; the oracle holds', async () => {
    const spec = hot(32);
    const without = Object.keys(KNOWN_CAPABILITIES).filter((c) => c !== 'fault-thread');
    const [source, dest] = await Promise.all([
      fleet.agent({ args: [...vmArgs('vm', spec), '--capabilities', without.join(',')] }),
      fleet.agent(),
    ]);
    const report = await fleet.migrate(source, dest, { vm: 'vm', mode: 'postcopy', params: slow });
    expectCompleted(report);
    expect(report.postcopy!.pagesFetchedOnDemand).toBeGreaterThan(0);
    expect(report.postcopy!.faultThread).toBe(false);
    expect(dest.logs()).not.toMatch(/"event":"fault-thread\./);
    expect(source.logs(), 'nor a fault worker on the source').not.toMatch(/"event":"fault-worker\./);
    expect(report.postcopy!.sourceFaultWorker).toBe(false);
    const oracle = await fleet.oracle(dest, 'vm', spec);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
  });
});

describe('the fault thread under failure', () => {
  // Plaintext: the relay reads the frames (SetupDone's port, the answers) to cut at an exact point.
  it('its fault channel cut mid-post-copy: the source recovers, reconnects to the same thread, no page lost', async () => {
    const spec = hot(33);
    const [source, dest] = await Promise.all([startSourceWithVm('vm', spec), startAgent('dest')]);
    let answers = 0;
    const relay = await startFaultPortRelay(hostPort(dest.listen), (frame) => {
      if (frame.type === MsgType.Pages && frame.requestId !== 0) answers += 1;
      return answers === 5 ? 'cut' : 'forward';
    });
    try {
      const report = await slowPostcopy(source, relay.address);
      expect(await Promise.race([relay.cut, 'no cut happened'])).toMatch(/cut the fault channel/);
      expectCompleted(report);
      expect(report.postcopy?.recoveries).toBe(1);
      expect(relay.faultConnections).toBe(2);
      expect(threadAttaches(dest)).toBe(2);
      expect(workerAttaches(source), "the source's fault worker reconnected").toBe(2);
      expect(report.postcopy!.sourceFaultWorker).toBe(true);
      expect(dest.logs()).toMatch(/"event":"fault-thread\.channel-lost"/);
      await expectOracle(dest, spec);
    } finally {
      await relay.close();
    }
  });

  it('its port unreachable: the source attaches the fault channel to the main port, the thread stands down, no page lost', async () => {
    const spec = hot(35);
    const [source, dest] = await Promise.all([startSourceWithVm('vm', spec), startAgent('dest')]);
    const relay = await startFaultPortRelay(hostPort(dest.listen), null);
    try {
      const report = await slowPostcopy(source, relay.address);
      expectCompleted(report);
      expect(report.postcopy!.pagesFetchedOnDemand).toBeGreaterThan(0);
      expect(relay.faultConnections).toBe(0);
      expect(report.postcopy!.faultThread, 'fell back to the main thread').toBe(false);
      expect(report.postcopy!.sourceFaultWorker, 'on both sides').toBe(false);
      expect(threadAttaches(dest)).toBe(0);
      expect(dest.logs()).toMatch(/"event":"fault-thread\.bypassed"/);
      await expectOracle(dest, spec);
    } finally {
      await relay.close();
    }
  });

  it('garbage and a wrong token on its port are refused with a code; the migration completes, the VM intact', async () => {
    const spec = hot(34);
    const [source, dest] = await Promise.all([startSourceWithVm('vm', spec), startAgent('dest')]);
    const report = await ask(source, async (client) => {
      const { migrationId } = await client.request('migrate', {
        vm: 'vm',
        to: dest.listen,
        mode: 'postcopy',
        params: slow,
      });
      const done = followMigration(client, migrationId, { progress: false });
      await waitUntil(async () => (await statusOf(source, migrationId, false)) === 'postcopy', {
        what: 'post-copy running',
      });
      const port = await faultPortOf(dest);
      expect(await garbageAnswer(port)).toBe('ERR_BAD_MAGIC');
      const intruder = await connectPeer({ host: '127.0.0.1', port, agentId: 'intruder', logger: silentLogger() });
      intruder.send(msg.attach(migrationId, 'fault', 'ab'.repeat(32)));
      await expect(intruder.next(AbortSignal.timeout(10_000))).rejects.toMatchObject({ code: 'ERR_FORBIDDEN' });
      return done;
    });
    expectCompleted(report);
    expect(report.postcopy!.pagesFetchedOnDemand).toBeGreaterThan(0);
    expect(dest.logs()).toMatch(/"event":"fault-thread\.refused".*ERR_BAD_MAGIC/);
    expect(dest.logs()).toMatch(/"event":"fault-thread\.refused".*ERR_FORBIDDEN/);
    await expectOracle(dest, spec);
  });
});

describe("the source's fault worker", () => {
  // Plaintext: the relay plays a hostile destination on the fault channel.
  it("refuses a destination's forged request and garbage with a code; each time the migration recovers, no page lost", async () => {
    const spec = hot(37);
    const [source, dest] = await Promise.all([startSourceWithVm('vm', spec), startAgent('dest')]);
    const pages = spec.memoryBytes / 4096;
    const relay = await startHostileFaultRelay(hostPort(dest.listen), [
      encodeFrameBytes(msg.pageRequest(1 << 30, [pages + 7])),
      Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
    ]);
    try {
      const report = await slowPostcopy(source, relay.address);
      expectCompleted(report);
      // The worker told the "destination" why, and the migration recovered each time.
      expect([...new Set(relay.refusals)]).toEqual(['ERR_PAGE_OUT_OF_RANGE', 'ERR_BAD_MAGIC']);
      expect(report.postcopy!.recoveries).toBe(2);
      expect(source.logs()).toMatch(/"event":"fault-worker\.channel-lost".*ERR_PAGE_OUT_OF_RANGE/);
      expect(source.logs()).toMatch(/"event":"fault-worker\.channel-lost".*ERR_BAD_MAGIC/);
      // Refusing input is not dying: the worker served the third channel too.
      expect(source.logs()).not.toMatch(/"event":"fault-worker\.died"/);
      expect(workerAttaches(source)).toBe(3);
      expect(report.postcopy!.sourceFaultWorker).toBe(true);
      expect(report.postcopy!.pagesFetchedOnDemand).toBeGreaterThan(0);
      await expectOracle(dest, spec);
    } finally {
      await relay.close();
    }
  });

  it('killed mid-post-copy: recovery reconnects, the main thread answers from then on, no page lost, no worker left', async () => {
    const spec = hot(38);
    const [source, dest] = await Promise.all([fleet.daemon(), fleet.daemon()]);
    try {
      await source.host.create('vm', spec);
      let killedAt = 0;
      const report = await fleet.migrate(
        source,
        dest,
        { vm: 'vm', mode: 'postcopy', params: slow },
        async (client, id) => {
          const fetched = async (): Promise<number> => {
            const postcopy = (await client.request('query-migrate', { migrationId: id }))?.postcopy;
            return postcopy && 'fetchedOnDemand' in postcopy ? postcopy.fetchedOnDemand : 0;
          };
          await waitUntil(async () => (await fetched()) > 0, { what: 'the fault worker answers faults' });
          const workers = [...liveFaultWorkers()];
          expect(workers).toHaveLength(1);
          killedAt = await fetched();
          workers[0]!.terminate();
        },
      );
      expectCompleted(report);
      expect(report.postcopy!.recoveries).toBe(1);
      expect(report.postcopy!.sourceFaultWorker, 'the main thread answered after the kill').toBe(false);
      // Faults went on being answered after the kill: by the source's main thread.
      expect(report.postcopy!.pagesFetchedOnDemand).toBeGreaterThan(killedAt);
      expect(liveFaultWorkers().size, 'no fault worker left').toBe(0);
      const oracle = await fleet.oracle(dest, 'vm', spec);
      expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
    } finally {
      await Promise.all([source.stop('test over'), dest.stop('test over')]);
    }
  });
});

describe('the fault thread of a secure agent', () => {
  it('takes only its migration source: no client certificate and another identity are refused with a code; the migration completes', async () => {
    const spec = hot(36);
    const [source, dest] = await Promise.all([fleet.source('vm', spec), fleet.agent()]);
    const report = await fleet.migrate(source, dest, { vm: 'vm', mode: 'postcopy', params: slow }, async (_c, id) => {
      await waitUntil(async () => (await statusOf(source, id, true)) === 'postcopy', { what: 'post-copy running' });
      const port = await faultPortOf(dest);
      const { ca, cert, key } = await loadPki(fleet.pkiDir, 'operator');
      // No client certificate: the TLS handshake itself fails, before any livemig byte.
      const anonymous = tls.connect({ host: dest.name, port, ca, servername: dest.name, minVersion: 'TLSv1.3' });
      anonymous.on('data', () => {});
      await new Promise<void>((resolve) => {
        anonymous.on('error', () => resolve());
        anonymous.on('close', () => resolve());
      });
      await waitUntil(() => /"event":"fault-thread\.refused".*ERR_UNAUTHENTICATED/.test(dest.logs()), {
        what: 'the destination logs the anonymous connection refused',
      });
      // A certificate of the fleet, but not the migration's source (an operator): an Error frame, then the close.
      await expect(
        connectPeer({
          host: dest.name,
          port,
          agentId: 'intruder',
          logger: silentLogger(),
          tls: { ca, cert, key, expectName: dest.name },
        }),
      ).rejects.toMatchObject({ code: 'ERR_FORBIDDEN' });
    });
    expectCompleted(report);
    expect(report.postcopy!.pagesFetchedOnDemand).toBeGreaterThan(0);
    expect(dest.logs()).toMatch(/"event":"fault-thread\.refused".*ERR_FORBIDDEN/);
    const oracle = await fleet.oracle(dest, 'vm', spec);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
  });
});

/** Post-copy of `vm` at 8 MB/s from a plaintext `source` to `to`, followed to its report. */
function slowPostcopy(source: AgentProcess, to: string): Promise<MigrationReport> {
  return ask(source, async (client) => {
    const { migrationId } = await client.request('migrate', { vm: 'vm', to, mode: 'postcopy', params: slow });
    return followMigration(client, migrationId, { progress: false });
  });
}

/** The determinism oracle holds for `vm` on a plaintext agent. */
async function expectOracle(agent: AgentProcess, spec: VmSpec): Promise<void> {
  const oracle = await ask(agent, (client) => checkOracle(client, 'vm', spec));
  expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
}

/** Write bytes that are no livemig frame to `port`; the code of the Error frame that comes back before the close. */
function garbageAnswer(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const decoder = new FrameDecoder({ role: 'source' });
    let code = 'no Error frame';
    const timer = setTimeout(() => socket.destroy(new Error('the port kept the garbage connection open')), 10_000);
    socket.on('connect', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    socket.on('data', (chunk: Buffer) => {
      decoder.feed(chunk, (message: Message) => {
        if (message.type === MsgType.Error) code = message.code;
      });
    });
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}
