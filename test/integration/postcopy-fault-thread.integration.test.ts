/**
 * The destination's post-copy fault thread (capability `fault-thread`), with real agent
 * processes on loopback: post-copy and hybrid migrations whose faults the thread serves arrive
 * intact (oracle) and leave no thread behind; a source without the capability gets the fault
 * channel on the main thread, as before; cutting the thread's fault channel mid-post-copy is
 * recovered through the same thread; garbage and a wrong token on its port are refused with a
 * code while the VM runs on. Secure fleet agents (mutual TLS) unless a relay must read frames.
 */
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { connectPeer, msg } from '@livemig/shared/channel';
import { silentLogger } from '@livemig/shared';
import { FrameDecoder, KNOWN_CAPABILITIES, MsgType, type Message } from '@livemig/shared/protocol';
import type { MigrationReport } from '@livemig/shared/report';
import { loadPki } from '@livemig/shared/security';
import { parseVmSpec, type VmSpec } from '@livemig/shared/vm';
import { followMigration } from '../../cli/follow-migration.ts';
import { checkOracle } from '../../cli/oracle.ts';
import { startFaultPortRelay } from '../helpers/fault-port-relay.ts';
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
    const params = mode === 'hybrid' ? { postcopyAfterRounds: 1 } : {};
    const report = await fleet.migrate(source, dest, { vm: 'vm', mode, params });
    expectCompleted(report);
    expect(report.verify.match).toBe(true);
    const pc = report.postcopy!;
    expect(pc.pagesFetchedOnDemand + pc.pagesPushed).toBe(pc.absentAtSwitchover);
    expect(report.pages.faulted).toBe(pc.faults);
    expect(threadAttaches(dest) - attachesBefore).toBe(1);
    const oracle = await fleet.oracle(dest, 'vm', spec);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
  });

  it('faults all through a slow push are served by the thread; no thread is left behind after', async () => {
    const spec = hot(31);
    const [source, dest] = await Promise.all([fleet.source('vm', spec), fleet.agent()]);
    const idle = threadCount(pid(dest));
    const sampled = sampleThreads(pid(dest));
    const params = mode === 'hybrid' ? { ...slow, postcopyAfterRounds: 1 } : slow;
    const report = await fleet.migrate(source, dest, { vm: 'vm', mode, params });
    sampled.stop();
    expectCompleted(report);
    expect(report.verify.match).toBe(true);
    const pc = report.postcopy!;
    expect(pc.faults).toBeGreaterThan(0);
    expect(pc.pagesFetchedOnDemand).toBeGreaterThan(0);
    expect(pc.faultLatencyMs).not.toBeNull();
    expect(pc.faultThread, 'the report says who served the faults').toBe(true);
    expect(threadAttaches(dest)).toBe(1);
    // While it ran: the VM's vCPU and the fault thread, at least, above the idle count.
    expect(sampled.peak).toBeGreaterThanOrEqual(idle + 2);
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
