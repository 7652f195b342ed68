/**
 * Parallel bulk channels (multifd, issue 18) wired into the engine, with real agent processes on
 * loopback: pre-copy over N channels (mutual TLS on each) arrives intact — the oracle holds, both
 * digests agree, the report counts each channel's pages; a peer without `multifd` gets one
 * channel; a bad --channels is refused with a code; a secondary channel cut mid-round, garbage on
 * it and the destination killed each fail the migration cleanly before handoff, the VM running on
 * at the source and intact; and no channel worker outlives its migration, however it ended (the
 * processes' threads counted back).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { KNOWN_CAPABILITIES } from '@livemig/shared/protocol';
import type { MigrationReport } from '@livemig/shared/report';
import { parseVmSpec, type VmSpec } from '@livemig/shared/vm';
import { checkOracle } from '../../cli/oracle.ts';
import { followMigration } from '../../cli/follow-migration.ts';
import { useFleet } from '../helpers/fleet.ts';
import { startMultifdPortRelay, type ChannelDamage } from '../helpers/multifd-port-relay.ts';
import { ask, hostPort } from '../helpers/plain-agents.ts';
import { startAgent, stopAll, type AgentProcess } from '../helpers/processes.ts';
import { expectCompleted, expectOutcome } from '../helpers/report.ts';
import { useSharedPair } from '../helpers/shared-pair.ts';
import { threadCount, waitForThreads } from '../helpers/threads.ts';
import { waitUntil } from '../helpers/wait.ts';

const fleet = useFleet();
afterEach(stopAll);

function pid(agent: AgentProcess): number {
  if (agent.child.pid === undefined) throw new Error(`the ${agent.role} agent has no pid`);
  return agent.child.pid;
}

/** The report's channels add up: every page sent went over exactly one bulk channel. */
function expectChannels(report: MigrationReport, count: number): void {
  const channels = report.channels!;
  expect(channels, 'the report has channels').toBeDefined();
  expect(channels.count).toBe(count);
  expect(channels.perChannel).toHaveLength(count);
  const pages = channels.perChannel.reduce((sum, c) => sum + c.pages, 0) + (channels.main?.pages ?? 0);
  expect(pages).toBe(report.pages.sent);
  const bytes = channels.perChannel.reduce((sum, c) => sum + c.bytes, 0) + (channels.main?.bytes ?? 0);
  expect(bytes).toBe(report.bytes.pagePayload);
}

describe('pre-copy over parallel channels, secure agents (TLS on every channel)', () => {
  const pair = useSharedPair({ start: () => fleet.pair(), ask: fleet.ask });

  it.each([
    ['uniform:rate=20000', 2],
    ['hotset:wss=4MiB,rate=20000', 3],
  ] as const)(
    'a VM running %s over %i channels: every channel carries pages, the oracle holds',
    async (workload, n) => {
      const spec = parseVmSpec({ memory: '32MiB', init: 'random', workload, seed: 40 + n });
      const [source, dest] = await pair.agents();
      const idle = [threadCount(pid(source)), threadCount(pid(dest))];
      await pair.boot('vm', spec);
      // What a running VM adds to its agent's threads (its vCPU worker and what that brings).
      const vmThreads = threadCount(pid(source)) - idle[0]!;
      const report = await fleet.migrate(source, dest, { vm: 'vm', mode: 'precopy', params: { channels: n } });
      expectCompleted(report);
      expect(report.verify.match).toBe(true);
      expect(report.verify.sourceDigest).not.toBeNull();
      expect(report.verify.sourceDigest).toBe(report.verify.destDigest);
      expectChannels(report, n);
      for (const channel of report.channels!.perChannel) expect(channel.pages).toBeGreaterThan(0);
      expect(report.rounds.length, 'a running guest makes more than one round').toBeGreaterThan(1);
      expect(report.threads!.source.threads.map((t) => t.name)).toContain('multifd-send-0');
      // Every channel worker ended on both sides (counted before the oracle, whose digest starts a
      // worker that stays): the source is back to its count before the VM came, the destination to
      // its own plus what the arrived VM runs.
      await waitForThreads(pid(source), idle[0]!, 'the source, its channel workers ended and its VM gone');
      await waitForThreads(
        pid(dest),
        idle[1]! + vmThreads,
        'the destination, its channel workers ended, the VM running',
      );
      const oracle = await fleet.oracle(dest, 'vm', spec);
      expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
    },
  );

  it('a bad --channels is refused with a code, on the command line and on the control API', async () => {
    const [source, dest] = await pair.boot('vm', parseVmSpec({ memory: '8MiB', init: 'random', seed: 45 }));
    const cli = fleet.cli([
      'migrate',
      '--control',
      source.control,
      '--vm',
      'vm',
      '--to',
      dest.listen!,
      '--channels',
      '9',
    ]);
    const api = fleet.ask(source, (client) =>
      client.request('migrate', { vm: 'vm', to: dest.listen!, params: { channels: 0 } }),
    );
    await expect(api).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: /channels/ });
    const run = await cli;
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/ERR_INVALID_ARGUMENT/);
    expect(run.stderr).toMatch(/channels/);
  });
});

describe('one channel where parallel ones cannot be, and channels that fail (plaintext agents)', () => {
  const pair = useSharedPair({
    start: () => Promise.all([startAgent('source', [], { kept: true }), startAgent('dest', [], { kept: true })]),
    ask,
  });
  /** 16 MiB of random pages at 16 MB/s: a second of round 0 to damage a channel in. */
  const spec = (seed: number): VmSpec =>
    parseVmSpec({ memory: '16MiB', init: 'random', workload: 'uniform:rate=5000', seed });
  const slow = { channels: 2, maxBandwidthBps: 16e6 };

  it('a destination without multifd: one channel, and the report says why; the oracle holds', async () => {
    const vmSpec = spec(46);
    const without = Object.keys(KNOWN_CAPABILITIES).filter((c) => c !== 'multifd');
    const [[source], dest] = await Promise.all([
      pair.agents(),
      startAgent('dest', ['--capabilities', without.join(',')]),
    ]);
    await pair.boot('vm', vmSpec);
    const report = await migratePlain(source, dest.listen, { channels: 2 });
    expectCompleted(report);
    expectChannels(report, 1);
    expect(report.channels!.asked).toBe(2);
    expect(report.channels!.note).toMatch(/did not negotiate multifd/);
    expect(dest.logs()).not.toMatch(/"event":"multifd\./);
    const oracle = await ask(dest, (client) => checkOracle(client, 'vm', vmSpec));
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
  });

  it('ports that cannot be reached: both sides fall back to one channel; the migration completes, the oracle holds', async () => {
    const vmSpec = spec(47);
    const [source, dest] = await pair.boot('vm', vmSpec);
    const relay = await startMultifdPortRelay(hostPort(dest.listen), { unreachable: true });
    try {
      const report = await migratePlain(source, relay.address, { channels: 2 });
      expectCompleted(report);
      expectChannels(report, 1);
      expect(report.channels!.note).toMatch(/could not be reached/);
      expect(relay.channelConnections).toBe(0);
      expect(dest.logs()).toMatch(/"event":"multifd\.abandoned"/);
      const oracle = await ask(dest, (client) => checkOracle(client, 'vm', vmSpec));
      expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
    } finally {
      await relay.close();
    }
  });

  it.each<[string, ChannelDamage, RegExp]>([
    ['a secondary channel cut mid-round', { channel: 1, cut: { afterBytes: 2 << 20 } }, /ERR_(TRUNCATED|CONNECTION)/],
    ['garbage on a secondary channel', { channel: 1, garbage: true }, /ERR_BAD_MAGIC/],
  ])('%s', async (_what, damage, destCode) => {
    const vmSpec = spec('cut' in damage ? 50 : 51);
    const [source, dest] = await pair.agents();
    const idleDest = threadCount(pid(dest));
    await pair.boot('vm', vmSpec);
    const running = threadCount(pid(source));
    const relay = await startMultifdPortRelay(hostPort(dest.listen), damage);
    try {
      const report = await migratePlain(source, relay.address, slow);
      expect(await Promise.race([relay.damaged, 'not damaged'])).toMatch(/cut|garbage/);
      expectOutcome(report, 'failed');
      expect(report.vmRunsOn).toBe('source');
      expect(report.error?.code).toMatch(/^ERR_/);
      // The destination named what it refused, with a code, and discarded its copy.
      await waitUntil(() => new RegExp(`"event":"multifd\\.failed".*${destCode.source}`).test(dest.logs()), {
        what: `the destination logs the channel failing with ${destCode}`,
      });
      expect((await ask(dest, (client) => client.request('query-vms', {}))).vms).toHaveLength(0);
      await waitForThreads(pid(source), running, 'the source, its channel workers ended, its VM running');
      await waitForThreads(pid(dest), idleDest, 'the destination, its channel workers ended, the VM discarded');
      const oracle = await ask(source, (client) => checkOracle(client, 'vm', vmSpec));
      expect(oracle.migratedDigest, 'the VM on the source is intact').toBe(oracle.referenceDigest);
    } finally {
      await relay.close();
    }
  });

  it('the destination killed mid-round', async () => {
    const vmSpec = spec(52);
    const [[source], dest] = await Promise.all([pair.agents(), startAgent('dest')]);
    await pair.boot('vm', vmSpec);
    const running = threadCount(pid(source));
    const report = await ask(source, async (client) => {
      const { migrationId } = await client.request('migrate', { vm: 'vm', to: dest.listen, params: slow });
      const done = followMigration(client, migrationId, { progress: false });
      await waitUntil(
        async () => {
          const info = await client.request('query-migrate', { migrationId });
          return info?.direction === 'outgoing' && info.transferred > 2 << 20;
        },
        { what: 'round 0 under way' },
      );
      dest.child.kill('SIGKILL');
      return done;
    });
    expectOutcome(report, 'failed');
    expect(report.vmRunsOn).toBe('source');
    expect(report.rounds.length, 'it failed in round 0').toBe(0);
    await waitForThreads(pid(source), running, 'the source, its channel workers ended, its VM running');
    const oracle = await ask(source, (client) => checkOracle(client, 'vm', vmSpec));
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
  });
});

/** Pre-copy of `vm` from a plaintext `source` to `to`, followed to its report. */
function migratePlain(source: AgentProcess, to: string, params: Record<string, unknown>): Promise<MigrationReport> {
  return ask(source, async (client) => {
    const { migrationId } = await client.request('migrate', { vm: 'vm', to, mode: 'precopy', params });
    return followMigration(client, migrationId, { progress: false });
  });
}
