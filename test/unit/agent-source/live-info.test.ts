import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '@livemig/shared';
import { msg, type PeerChannel } from '@livemig/shared/channel';
import type { Capability } from '@livemig/shared/protocol';
import { parseVmSpec, ToyVm } from '@livemig/shared/vm';
import { MigrationContext } from '../../../agent-source/src/migration/context.ts';
import { liveInfo, timeRemaining } from '../../../agent-source/src/migration/live-info.ts';
import { resolveMigrateParams } from '../../../agent-source/src/migration/params.ts';
import { setupVmOf } from '../../../agent-source/src/migration/phases/setup.ts';
import {
  createSections,
  iterateAll,
  setupAll,
  startRound,
} from '../../../agent-source/src/migration/sections/index.ts';

const MiB = 1 << 20;
const vms: ToyVm[] = [];
afterEach(async () => {
  await Promise.all(vms.splice(0).map((vm) => vm.destroy()));
});

/** A destination that takes every page at once and counts what it was sent. */
function sink(): PeerChannel {
  let bytes = 0;
  return {
    remoteAgentId: 'dest',
    capabilities: new Set<Capability>(['zero-pages', 'setup-bitmap']),
    peer: undefined,
    handshakeRttMs: 0,
    send: () => true,
    sendPages: (batch, views) => {
      bytes += 16 + batch.pages.length * 5 + views.reduce((n, view) => n + view.length, 0);
      return true;
    },
    drained: () => Promise.resolve(),
    next: () => new Promise(() => {}),
    expect: () => new Promise(() => {}),
    route: () => () => {},
    whenFailed: () => new Promise(() => {}),
    failure: undefined,
    get bytesSent() {
      return bytes;
    },
    bytesReceived: 0,
    abort: () => {},
    close: () => Promise.resolve(),
  };
}

async function migrationOf(memory: string): Promise<MigrationContext> {
  const vm = await ToyVm.boot(parseVmSpec({ memory, init: 'random', workload: 'uniform:rate=0' }));
  vms.push(vm);
  const channel = sink();
  return new MigrationContext(
    {
      hosted: { name: 'vm', vm, state: 'running' },
      connect: () => Promise.resolve(channel),
      logger: silentLogger(),
      emit: () => {},
      setVmState: () => {},
    },
    { migrationId: 'm1', to: '127.0.0.1:1', params: resolveMigrateParams('precopy', {}), agentName: 'source' },
  );
}

describe('liveInfo (query-migrate on the source)', () => {
  it('round 0 with most of memory unsent: remaining ≈ memory size, what is unknown is null', async () => {
    const ctx = await migrationOf('32MiB');
    const memory = ctx.vm.spec.memoryBytes;
    const before = liveInfo(ctx);
    expect(before).toMatchObject({ direction: 'outgoing', status: 'none', remaining: memory, transferred: 0 });
    expect(before).toMatchObject({ mbps: null, timeRemaining: null, expectedDowntime: null, dirtyPagesRate: null });

    ctx.machine.transition('none', 'setup');
    await ctx.channels.openMain();
    const sections = createSections(ctx);
    ctx.sections = sections;
    setupAll(sections, msg.setup({ migrationId: ctx.id, mode: ctx.mode, ticket: '', vm: setupVmOf(ctx) }));
    ctx.machine.transition('setup', 'precopy');
    startRound(sections, 0);
    // One budget of 1 MiB: 256 of 8192 pages sent, the rest of round 0 still to go.
    expect(await iterateAll(sections, MiB)).toBe(false);

    const info = liveInfo(ctx);
    const pageSize = ctx.vm.memory.pageSize;
    const sent = ctx.stats.current.sent;
    expect(sent).toBeGreaterThan(0);
    expect(sent * pageSize).toBeLessThan(memory / 8);
    expect(info.status).toBe('precopy');
    expect(info.pass).toBe(0);
    expect(info.passProgress).toBeCloseTo(sent / ctx.stats.current.planned, 6);
    // Every page not sent yet counts (random memory: no page is known to be zero), plus the CPU
    // and device state still to send: not 0, not "what was last found dirty".
    expect(info.remaining).toBeGreaterThanOrEqual(memory - sent * pageSize);
    expect(info.remaining).toBeLessThan(memory - sent * pageSize + 64 * 1024);
    expect(info.remaining).toBeGreaterThan(0.9 * memory);
    // No round has ended: nothing to estimate downtime or a dirty rate from.
    expect(info.expectedDowntime).toBeNull();
    expect(info.dirtyPagesRate).toBeNull();
    expect(info.postcopy).toBeNull();

    // 1 MiB over ≥ 10 ms measures the link: the ETA is the rest of memory at that page rate.
    await sleep(10);
    const later = liveInfo(ctx);
    expect(later.mbps).not.toBeNull();
    expect(later.timeRemaining).not.toBeNull();
    const pagesLeft = later.remaining / pageSize;
    expect(later.timeRemaining!).toBeGreaterThanOrEqual((pagesLeft / ctx.stats.current.sent) * 10);
  });

  it("cpuThrottlePercentage (QMP cpu-throttle-percentage) is the vCPU's own throttle: set by the controller, 0 once lifted", async () => {
    const ctx = await migrationOf('1MiB');
    expect(liveInfo(ctx).cpuThrottlePercentage).toBe(0);
    ctx.setThrottle({ percent: 40, hotRounds: 3 }, 4);
    expect(ctx.vm.throttle).toBeCloseTo(0.6, 6);
    expect(liveInfo(ctx).cpuThrottlePercentage).toBe(40);
    ctx.liftThrottle('the migration cancelled');
    expect(ctx.vm.throttle).toBe(1);
    expect(liveInfo(ctx).cpuThrottlePercentage).toBe(0);
    // A VM already gone (the agent stopping) has nothing to lift: no throw.
    ctx.setThrottle({ percent: 20, hotRounds: 2 }, 5);
    await ctx.vm.destroy();
    expect(() => ctx.liftThrottle('the migration failed')).not.toThrow();
  });

  it('timeRemaining: 0 once completed, unknown on a broken link and at the end of a failure', () => {
    const sample = { pages: 1000, bytes: 4096 * 1000, ms: 100 };
    expect(timeRemaining('precopy', 4096 * 10_000, sample, 4096)).toBe(1000);
    expect(timeRemaining('postcopy', 4096 * 500, sample, 4096)).toBe(50);
    expect(timeRemaining('precopy', 4096 * 10_000, undefined, 4096)).toBeNull();
    expect(timeRemaining('completed', 0, undefined, 4096)).toBe(0);
    expect(timeRemaining('postcopy-paused', 4096, sample, 4096)).toBeNull();
    expect(timeRemaining('failed', 4096, sample, 4096)).toBeNull();
    expect(timeRemaining('cancelled', 4096, sample, 4096)).toBeNull();
  });
});
