/**
 * The agent's Prometheus metrics (`--metrics HOST:PORT`): what they are, and how each one is fed.
 * Serving them over HTTP is metrics-server.ts's concern; this file never touches a socket.
 *
 * One prom-client Registry per AgentMetrics — never prom-client's global one — so two daemons in
 * one process (tests) each have their own figures. Every name starts with `livemig_`; prom-client's
 * default process and Node.js metrics (process_cpu_seconds_total, nodejs_heap_size_used_bytes, …)
 * are added under their usual names, which dashboards expect.
 *
 * How each figure gets here:
 *
 *   livemig_migrations_total{direction,mode,outcome}  +1 when a migration ends here: outgoing from
 *                                         its report (OutgoingMigrations.onReport), incoming from
 *                                         how IncomingMigration.run() ended (onEnded)
 *   livemig_migration_bytes_{sent,received}_total{direction}
 *                                         every data connection's byte counts (frames, headers
 *                                         included, before TLS), read at scrape time — so they move
 *                                         during a migration, not only at its end
 *   livemig_migration_downtime_seconds{mode}
 *                                         the source's report's times.downtimeMs (where downtime is
 *                                         measured); a migration that never resumed there has none
 *   livemig_postcopy_fault_latency_seconds
 *                                         on the destination, where the vCPU faults: one sample per
 *                                         fault, vCPU blocked → page installed — the very samples
 *                                         the report's postcopy.faultLatencyMs p50/p99/max come from
 *   livemig_vms{state}, livemig_guest_memory_bytes{use}, livemig_guest_memory_budget_bytes
 *                                         read from the VmHost at scrape time
 *   livemig_vm_dirty_pages_per_second{vm} every running VM: distinct pages dirtied per second over
 *                                         the last sampling interval (1 s, QEMU calc-dirty-rate's
 *                                         default calc-time), from a harvest of its dirty log. A VM
 *                                         in a migration is never harvested here — its dirty log is
 *                                         the migration's — and shows query-migrate's
 *                                         dirty-pages-rate instead (measured over the last round).
 *
 * Harvesting an idle VM's dirty log is safe: ToyVm.harvestDirty() ORs what it clears into the
 * ever-dirty map, so a later migration's first pass still sends every possibly-non-zero page.
 */
import { createRequire } from 'node:module';
import type * as PromClient from 'prom-client';
import type { Counter, Histogram, Registry } from 'prom-client';
import type { PeerChannel } from '@livemig/shared/channel';
import type { MigrationInfo } from '@livemig/shared/control';
import type { VmHost, VmState } from '@livemig/shared/host';
import type { MigrationMode, MigrationOutcome, MigrationReport } from '@livemig/shared/report';

/**
 * prom-client, loaded by the first AgentMetrics: an agent without `--metrics` never needs its
 * modules, and every livemig process (agents and CLI calls) would otherwise load them at start.
 */
const promClient = (): typeof PromClient => createRequire(import.meta.url)('prom-client') as typeof PromClient;

/** Which end of a migration this agent was: outgoing = the source. */
export type MigrationDirection = 'outgoing' | 'incoming';

const DIRECTIONS: readonly MigrationDirection[] = ['outgoing', 'incoming'];
const MODES: readonly MigrationMode[] = ['precopy', 'postcopy', 'hybrid'];
const OUTCOMES: readonly MigrationOutcome[] = ['completed', 'failed', 'cancelled'];
const VM_STATES: readonly VmState[] = ['running', 'paused', 'migrating-out', 'incoming', 'migrated'];

/** Downtime: 1 ms to 10 s, 1-2.5-5 steps. */
export const DOWNTIME_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Post-copy fault latency: 50 µs to 1 s, 1-2.5-5 steps. */
export const FAULT_LATENCY_BUCKETS_S = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
];

export interface AgentMetricsComponents {
  /** The VMs hosted here: states, the guest-memory ledger, and running VMs' dirty logs. */
  host: VmHost;
  /** The outgoing migrations in flight (OutgoingMigrations.inFlight). */
  outgoingInFlight: () => readonly MigrationInfo[];
  /** Why a VM is still arriving here (post-copy), or undefined (IncomingMigrations.stillArriving). */
  stillArriving: (vm: string) => string | undefined;
}

export interface AgentMetricsOptions {
  /** How often running VMs' dirty logs are harvested for the dirty rate. @default 1000 (ms) */
  dirtyRateIntervalMs?: number;
}

/** A data connection whose bytes are counted, and what of them is counted already. */
interface TrackedChannel {
  direction: MigrationDirection;
  sent: number;
  received: number;
  /** It had closed at the previous sweep: count what it did since, then forget it. */
  closed: boolean;
}

export class AgentMetrics {
  /** This daemon's registry (never the global one). */
  readonly registry: Registry;
  readonly #c: AgentMetricsComponents;
  readonly #intervalMs: number;
  readonly #migrations: Counter<'direction' | 'mode' | 'outcome'>;
  readonly #bytesSent: Counter<'direction'>;
  readonly #bytesReceived: Counter<'direction'>;
  readonly #downtime: Histogram<'mode'>;
  readonly #faultLatency: Histogram;
  readonly #channels = new Map<PeerChannel, TrackedChannel>();
  /** Per VM: when its dirty log was last harvested here (performance.now()); none until the first. */
  readonly #harvestedAt = new Map<string, number>();
  /** Per VM: its last dirty rate, pages/s. */
  readonly #dirtyRates = new Map<string, number>();
  #sampler: NodeJS.Timeout | undefined;

  constructor(components: AgentMetricsComponents, options: AgentMetricsOptions = {}) {
    const { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } = promClient();
    this.registry = new Registry();
    this.#c = components;
    this.#intervalMs = options.dirtyRateIntervalMs ?? 1000;
    const registers = [this.registry];
    this.#migrations = new Counter({
      name: 'livemig_migrations_total',
      help: 'Migrations that ended on this agent, by direction (outgoing: this agent was the source), mode and outcome.',
      labelNames: ['direction', 'mode', 'outcome'],
      registers,
    });
    for (const direction of DIRECTIONS) {
      for (const mode of MODES) for (const outcome of OUTCOMES) this.#migrations.inc({ direction, mode, outcome }, 0);
    }
    // One sweep per scrape: this counter is collected before the received one (registration order).
    const sweep = (): void => this.#sweepChannels();
    this.#bytesSent = new Counter({
      name: 'livemig_migration_bytes_sent_total',
      help: "Bytes this agent sent on migration data connections (frames, headers included, before TLS), by the migration's direction.",
      labelNames: ['direction'],
      registers,
      collect: sweep,
    });
    this.#bytesReceived = new Counter({
      name: 'livemig_migration_bytes_received_total',
      help: "Bytes this agent received on migration data connections (frames, headers included, before TLS), by the migration's direction.",
      labelNames: ['direction'],
      registers,
    });
    for (const direction of DIRECTIONS) {
      this.#bytesSent.inc({ direction }, 0);
      this.#bytesReceived.inc({ direction }, 0);
    }
    this.#downtime = new Histogram({
      name: 'livemig_migration_downtime_seconds',
      help: 'Downtime of outgoing migrations that resumed on the destination (source vCPU paused to destination vCPU resumed), by mode.',
      labelNames: ['mode'],
      buckets: DOWNTIME_BUCKETS_S,
      registers,
    });
    for (const mode of MODES) this.#downtime.zero({ mode });
    this.#faultLatency = new Histogram({
      name: 'livemig_postcopy_fault_latency_seconds',
      help: 'Post-copy faults of VMs arriving here, one sample per fault: vCPU blocked on an absent page to that page installed.',
      buckets: FAULT_LATENCY_BUCKETS_S,
      registers,
    });
    const host = components.host;
    new Gauge({
      name: 'livemig_vms',
      help: 'VMs on this agent by state (migrated: it left; only its record is kept here).',
      labelNames: ['state'],
      registers,
      collect() {
        const counts = new Map<VmState, number>(VM_STATES.map((state) => [state, 0]));
        for (const { state } of host.list()) counts.set(state, (counts.get(state) ?? 0) + 1);
        for (const [state, count] of counts) this.set({ state }, count);
      },
    });
    new Gauge({
      name: 'livemig_guest_memory_bytes',
      help: 'Guest memory charged against --max-guest-memory: hosted VMs, and reservations for VMs about to be built (each VM its memory plus its vCPU worker).',
      labelNames: ['use'],
      registers,
      collect() {
        const ledger = host.guestMemory;
        this.set({ use: 'hosted' }, ledger.hostedBytes);
        this.set({ use: 'reserved' }, ledger.reservedBytes);
      },
    });
    new Gauge({
      name: 'livemig_guest_memory_budget_bytes',
      help: 'The guest-memory budget (--max-guest-memory).',
      registers,
      collect() {
        this.set(host.guestMemory.budgetBytes);
      },
    });
    const rates = this.#dirtyRates;
    new Gauge({
      name: 'livemig_vm_dirty_pages_per_second',
      help: "Distinct pages each running VM dirtied per second, over the last second (a harvest of its dirty log); a VM migrating out: query-migrate's dirty-pages-rate.",
      labelNames: ['vm'],
      registers,
      collect() {
        this.reset();
        // The last sample may be up to an interval old: only VMs that still run (or are leaving) here.
        for (const { name, state } of host.list()) {
          const rate = rates.get(name);
          if (rate !== undefined && (state === 'running' || state === 'migrating-out')) this.set({ vm: name }, rate);
        }
      },
    });
    // Its event-loop and GC monitors stay enabled for the process's life (prom-client has no
    // off switch): one set per daemon that serves metrics.
    collectDefaultMetrics({ register: this.registry });
  }

  /** Start sampling running VMs' dirty rates (and forgetting closed connections, scraped or not). */
  start(): void {
    if (this.#sampler) return;
    this.#sampler = setInterval(() => {
      this.sampleDirtyRates();
      // A closed connection may hold what it last sent: let it go within two ticks.
      this.#sweepChannels();
    }, this.#intervalMs);
    this.#sampler.unref();
  }

  stop(): void {
    clearInterval(this.#sampler);
    this.#sampler = undefined;
    this.#channels.clear();
  }

  /** The exposition, in the Prometheus text format, and its content type. */
  async exposition(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }

  /** An outgoing migration is over: count it, and its downtime when the VM resumed on the destination. */
  outgoingEnded(report: Pick<MigrationReport, 'mode' | 'outcome' | 'times'>): void {
    this.#migrations.inc({ direction: 'outgoing', mode: report.mode, outcome: report.outcome });
    const downtimeMs = report.times.downtimeMs;
    if (downtimeMs !== null && Number.isFinite(downtimeMs) && downtimeMs >= 0) {
      this.#downtime.observe({ mode: report.mode }, downtimeMs / 1000);
    }
  }

  /** An incoming migration is over. */
  incomingEnded(ended: { mode: MigrationMode; outcome: MigrationOutcome }): void {
    this.#migrations.inc({ direction: 'incoming', mode: ended.mode, outcome: ended.outcome });
  }

  /** One post-copy fault's latency, ms. */
  faultLatency(ms: number): void {
    if (Number.isFinite(ms) && ms >= 0) this.#faultLatency.observe(ms / 1000);
  }

  /** Count this data connection's bytes from now on (until it has closed and been swept). */
  trackChannel(channel: PeerChannel, direction: MigrationDirection): void {
    // Sweeping here too keeps the set to the open connections even when nobody scrapes.
    this.#sweepChannels();
    this.#channels.set(channel, { direction, sent: 0, received: 0, closed: false });
  }

  /**
   * Harvest every running VM that no migration holds, and note its dirty rate since the previous
   * harvest here; VMs migrating out take query-migrate's figure. (The sampler calls this every
   * interval; tests may call it directly.)
   */
  sampleDirtyRates(): void {
    const migrating = new Map(this.#c.outgoingInFlight().map((info) => [info.vm, info]));
    const live = new Set<string>();
    for (const { name, state } of this.#c.host.list()) {
      const outgoing = migrating.get(name);
      if (outgoing) {
        // The migration harvests this log: start afresh once it is over.
        this.#harvestedAt.delete(name);
        const rate: number | null = outgoing.dirtyPagesRate; // null until a round has ended
        if (typeof rate === 'number' && Number.isFinite(rate)) this.#dirtyRates.set(name, rate);
        live.add(name);
        continue;
      }
      if (state !== 'running' || this.#c.stillArriving(name) !== undefined) continue;
      let pages: number;
      try {
        pages = this.#c.host.get(name).vm.harvestDirty().length;
      } catch {
        continue; // removed or destroyed meanwhile
      }
      const now = performance.now();
      const previous = this.#harvestedAt.get(name);
      this.#harvestedAt.set(name, now);
      live.add(name);
      // The first harvest only sets the start of the window (its pages date from who knows when).
      if (previous !== undefined && now > previous) this.#dirtyRates.set(name, pages / ((now - previous) / 1000));
    }
    for (const name of [...this.#harvestedAt.keys()]) if (!live.has(name)) this.#harvestedAt.delete(name);
    for (const name of [...this.#dirtyRates.keys()]) if (!live.has(name)) this.#dirtyRates.delete(name);
  }

  /** Add what each tracked connection sent and received since the last sweep; forget closed ones. */
  #sweepChannels(): void {
    for (const [channel, tracked] of this.#channels) {
      const { bytesSent, bytesReceived } = channel;
      if (bytesSent > tracked.sent) this.#bytesSent.inc({ direction: tracked.direction }, bytesSent - tracked.sent);
      if (bytesReceived > tracked.received) {
        this.#bytesReceived.inc({ direction: tracked.direction }, bytesReceived - tracked.received);
      }
      tracked.sent = Math.max(tracked.sent, bytesSent);
      tracked.received = Math.max(tracked.received, bytesReceived);
      // A closed connection's figures are final; one more sweep catches an abort's last frame.
      if (tracked.closed) this.#channels.delete(channel);
      else if (channel.failure !== undefined) tracked.closed = true;
    }
  }
}
