/**
 * AgentMetrics (agent/src/metrics.ts) with stub collaborators: a registry per instance (two in
 * one process do not clash), a valid exposition, migrations and downtimes counted from what
 * ends, connection bytes counted by difference and closed connections let go, and the dirty-rate
 * sampler, which must never harvest the dirty log of a VM a migration holds.
 */
import { describe, expect, it, vi } from 'vitest';
import { AgentMetrics, type AgentMetricsComponents } from '@livemig/agent';
import type { PeerChannel } from '@livemig/shared/channel';
import type { MigrationInfo } from '@livemig/shared/control';
import type { VmHost, VmInfo, VmState } from '@livemig/shared/host';
import { histogram, parsePrometheusText, value } from '../../helpers/prometheus-text.ts';

interface StubVm {
  state: VmState;
  /** Pages the next harvest returns. */
  dirty: number;
  harvestDirty: ReturnType<typeof vi.fn>;
}

/** A VmHost with these VMs (by name), as much of one as AgentMetrics uses. */
function stubHost(vms: Record<string, StubVm>): VmHost {
  const host = {
    list: (): VmInfo[] =>
      Object.entries(vms).map(([name, vm]) => ({ name, state: vm.state, steps: 0, memoryBytes: 0, workload: 'idle' })),
    get: (name: string) => ({ name, vm: vms[name]!, state: vms[name]!.state }),
    guestMemory: { budgetBytes: 1000, hostedBytes: 300, reservedBytes: 200 },
  };
  return host as unknown as VmHost;
}

function stubVm(state: VmState, dirty = 0): StubVm {
  const vm: StubVm = { state, dirty, harvestDirty: vi.fn(() => new Uint32Array(vm.dirty)) };
  return vm;
}

function metricsWith(components: Partial<AgentMetricsComponents> = {}): AgentMetrics {
  return new AgentMetrics({
    host: stubHost({}),
    outgoingInFlight: () => [],
    stillArriving: () => undefined,
    ...components,
  });
}

async function scrape(metrics: AgentMetrics): Promise<ReturnType<typeof parsePrometheusText>> {
  const { contentType, text } = await metrics.exposition();
  expect(contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
  return parsePrometheusText(text);
}

describe('AgentMetrics', () => {
  it('two in one process keep their own registries and figures', async () => {
    const [a, b] = [metricsWith(), metricsWith()];
    a.incomingEnded({ mode: 'postcopy', outcome: 'cancelled' });
    const labels = { direction: 'incoming', mode: 'postcopy', outcome: 'cancelled' };
    expect(value(await scrape(a), 'livemig_migrations_total', labels)).toBe(1);
    expect(value(await scrape(b), 'livemig_migrations_total', labels)).toBe(0);
    expect(a.registry).not.toBe(b.registry);
  });

  it('an outgoing migration: counted by mode and outcome; its downtime observed only when it has one', async () => {
    const metrics = metricsWith();
    metrics.outgoingEnded({ mode: 'hybrid', outcome: 'completed', times: { downtimeMs: 12.5 } as never });
    metrics.outgoingEnded({ mode: 'hybrid', outcome: 'failed', times: { downtimeMs: null } as never });
    const families = await scrape(metrics);
    for (const outcome of ['completed', 'failed']) {
      expect(value(families, 'livemig_migrations_total', { direction: 'outgoing', mode: 'hybrid', outcome })).toBe(1);
    }
    const downtime = histogram(families, 'livemig_migration_downtime_seconds', { mode: 'hybrid' });
    expect(downtime.count).toBe(1);
    expect(downtime.sum).toBeCloseTo(0.0125, 12);
    // 12.5 ms: in the 25 ms bucket, not the 10 ms one.
    expect(downtime.buckets.find((b) => b.le === 0.01)?.count).toBe(0);
    expect(downtime.buckets.find((b) => b.le === 0.025)?.count).toBe(1);
  });

  it('post-copy fault latencies, ms in, seconds out, sub-millisecond buckets', async () => {
    const metrics = metricsWith();
    for (const ms of [0.04, 0.3, 2, 900]) metrics.faultLatency(ms);
    metrics.faultLatency(Number.NaN); // never observed
    const latency = histogram(await scrape(metrics), 'livemig_postcopy_fault_latency_seconds');
    expect(latency.count).toBe(4);
    expect(latency.buckets.find((b) => b.le === 0.00005)?.count).toBe(1);
    expect(latency.buckets.find((b) => b.le === 0.0005)?.count).toBe(2);
    expect(latency.buckets.find((b) => b.le === 1)?.count).toBe(4);
  });

  it('VMs by state and the guest-memory ledger, read from the host at each scrape', async () => {
    const vms = { a: stubVm('running'), b: stubVm('running'), c: stubVm('migrated') };
    const families = await scrape(metricsWith({ host: stubHost(vms) }));
    expect(value(families, 'livemig_vms', { state: 'running' })).toBe(2);
    expect(value(families, 'livemig_vms', { state: 'migrated' })).toBe(1);
    expect(value(families, 'livemig_vms', { state: 'incoming' })).toBe(0);
    expect(value(families, 'livemig_guest_memory_bytes', { use: 'hosted' })).toBe(300);
    expect(value(families, 'livemig_guest_memory_bytes', { use: 'reserved' })).toBe(200);
    expect(value(families, 'livemig_guest_memory_budget_bytes')).toBe(1000);
  });

  it("data connections' bytes by difference, by direction; a closed one is let go after one more sweep", async () => {
    const metrics = metricsWith();
    const channel = { bytesSent: 100, bytesReceived: 10, failure: undefined as unknown };
    metrics.trackChannel(channel as unknown as PeerChannel, 'outgoing');
    const sent = async (): Promise<number | undefined> =>
      value(await scrape(metrics), 'livemig_migration_bytes_sent_total', { direction: 'outgoing' });
    expect(await sent()).toBe(100);
    channel.bytesSent = 250;
    expect(await sent()).toBe(250);
    channel.failure = new Error('closed');
    channel.bytesSent = 260; // an abort's Error frame, written as it closed
    expect(await sent()).toBe(260);
    channel.bytesSent = 300;
    expect(await sent()).toBe(300); // swept once more, then forgotten
    channel.bytesSent = 1000;
    expect(await sent()).toBe(300);
    const families = await scrape(metrics);
    expect(value(families, 'livemig_migration_bytes_received_total', { direction: 'outgoing' })).toBe(10);
    expect(value(families, 'livemig_migration_bytes_sent_total', { direction: 'incoming' })).toBe(0);
  });

  describe('dirty rates', () => {
    it('a running VM: harvested, pages per second since the previous harvest (none after the first)', async () => {
      const vm = stubVm('running', 0);
      const metrics = metricsWith({ host: stubHost({ vm }) });
      const start = performance.now();
      metrics.sampleDirtyRates();
      const rate = async (): Promise<number | undefined> =>
        value(await scrape(metrics), 'livemig_vm_dirty_pages_per_second', { vm: 'vm' });
      expect(await rate()).toBeUndefined();
      const from = performance.now();
      await new Promise((resolve) => setTimeout(resolve, 100));
      vm.dirty = 500;
      const to = performance.now();
      metrics.sampleDirtyRates();
      const after = performance.now();
      expect(vm.harvestDirty).toHaveBeenCalledTimes(2);
      // 500 pages over the time between the two harvests, which lies between (to − from) and (after − start).
      expect(await rate()).toBeGreaterThanOrEqual(500 / ((after - start) / 1000) - 1e-9);
      expect(await rate()).toBeLessThanOrEqual(500 / ((to - from) / 1000) + 1e-9);
      vm.state = 'paused';
      metrics.sampleDirtyRates();
      expect(await rate()).toBeUndefined();
      expect(vm.harvestDirty).toHaveBeenCalledTimes(2);
    });

    it("never harvests a VM a migration holds: migrating out shows query-migrate's rate, arriving none", async () => {
      const leaving = stubVm('migrating-out', 7);
      const arriving = stubVm('running', 7);
      const incoming = stubVm('incoming', 7);
      let inFlight: Array<Partial<MigrationInfo>> = [{ vm: 'leaving', dirtyPagesRate: 1234 }];
      const metrics = metricsWith({
        host: stubHost({ leaving, arriving, incoming }),
        outgoingInFlight: () => inFlight as MigrationInfo[],
        stillArriving: (vm) => (vm === 'arriving' ? 'post-copy' : undefined),
      });
      metrics.sampleDirtyRates();
      metrics.sampleDirtyRates();
      const families = await scrape(metrics);
      expect(value(families, 'livemig_vm_dirty_pages_per_second', { vm: 'leaving' })).toBe(1234);
      expect(value(families, 'livemig_vm_dirty_pages_per_second', { vm: 'arriving' })).toBeUndefined();
      expect(value(families, 'livemig_vm_dirty_pages_per_second', { vm: 'incoming' })).toBeUndefined();
      for (const vm of [leaving, arriving, incoming]) expect(vm.harvestDirty).not.toHaveBeenCalled();
      // Before a round has ended query-migrate has no rate (null): nothing is made up.
      inFlight = [{ vm: 'leaving', dirtyPagesRate: null as unknown as number }];
      const fresh = metricsWith({ host: stubHost({ leaving }), outgoingInFlight: () => inFlight as MigrationInfo[] });
      fresh.sampleDirtyRates();
      expect(value(await scrape(fresh), 'livemig_vm_dirty_pages_per_second', { vm: 'leaving' })).toBeUndefined();
      // The migration failed and the VM runs here again: harvested afresh (the first harvest starts the window).
      leaving.state = 'running';
      inFlight = [];
      metrics.sampleDirtyRates();
      expect(leaving.harvestDirty).toHaveBeenCalledTimes(1);
      expect(value(await scrape(metrics), 'livemig_vm_dirty_pages_per_second', { vm: 'leaving' })).toBe(1234);
    });
  });
});
