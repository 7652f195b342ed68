/**
 * The dashboard's state: what it knows of one agent and of the migrations it has seen there, and
 * the reducer that folds every input into it. Pure — inputs carry their own time (`at`, the
 * dashboard's clock), nothing here reads a clock, a socket or a timer — so it is tested on its
 * own (test/unit/cli/dashboard/model.test.ts) and the I/O around it (agent-follower.ts, server.ts)
 * only feeds it and shows it.
 *
 * Where the inputs come from (agent-follower.ts):
 *   connecting / connected / unreachable   the control connection's life, with why it is down
 *   event                                  the agent's MIGRATION, MIGRATION_PASS, MIGRATION_REPORT
 *   migration-info                         a `query-migrate` answer (polled while a migration runs)
 *   migration-gone                         `query-migrate {migrationId}` knows it no more (the agent restarted)
 *   report                                 a MIGRATION_REPORT event's or `query-report`'s report
 *   request-failed                         a request the agent refused (a role that may not ask, …)
 *
 * Ordering: events and answers come over one WebSocket in the order the agent sent them, so the
 * newest input is the newest truth. An ended migration still never goes back to running: that
 * would take a bug, and a page flickering back to "precopy" after "completed" helps nobody.
 *
 * Bytes per round, live: query-migrate gives the bytes sent so far and the round in progress, not
 * each round's bytes, so a round's bytes are estimated as the difference between the first
 * `transferred` seen in it and the first seen in the next (the follower polls at once on
 * MIGRATION_PASS, so the boundary is seen within a round trip, else within one poll). A round
 * whose start was not seen — the dashboard joined mid-migration, or missed a round between
 * polls — is left out rather than guessed. The report replaces the estimates with its exact
 * per-round bytes.
 *
 * Bounds: at most MAX_MIGRATIONS migrations (the oldest ended ones give way first) and
 * MAX_ROUNDS rounds each; an agent that sends more cannot grow the model.
 */
import type { ControlEvents, IncomingInfo, MigrationInfo } from '@livemig/shared/control';
import type { MigrationReport, PostcopyReport } from '@livemig/shared/report';

/** Migrations the model keeps: in flight first, then the most recent that ended. */
export const MAX_MIGRATIONS = 16;
/** Rounds kept per migration (the most recent): a non-converging migration can run hundreds. */
export const MAX_ROUNDS = 64;
/** Statuses after which a migration does not change any more (both directions). */
export const ENDED_STATUSES: ReadonlySet<string> = new Set(['completed', 'failed', 'cancelled']);
/**
 * Source statuses past the rounds: bytes sent from then on (the handoff, the post-copy push) are
 * nobody's round, so a live round stops growing at the first of these.
 */
const PAST_ROUNDS: ReadonlySet<string> = new Set(['postcopy-start', 'handoff', 'postcopy', 'postcopy-paused']);

export type AgentLinkState = 'connecting' | 'connected' | 'unreachable';

/** The control connection to the agent, as the page shows it. */
export interface AgentLink {
  /** The --control URL. */
  url: string;
  state: AgentLinkState;
  /** When it entered this state (ms since the epoch, the dashboard's clock). */
  since: number;
  /** The name on the agent's verified certificate (wss); null on ws or before connecting. */
  name: string | null;
  /** Unreachable: why; connected: the last request the agent refused, if any. */
  error: string | null;
  /** Unreachable: when the next attempt is due. */
  retryAt: number | null;
}

/** The report's figures the page shows (not the whole report: records and digests stay out). */
export interface ReportSummary {
  outcome: MigrationReport['outcome'];
  error: { code: string; message: string } | null;
  totalMs: number;
  downtimeMs: number | null;
  downtimeNote: string | null;
  setupMs: number;
  wireBytes: number;
  /** Rounds in all, the stop-and-copy included (the chart keeps the last MAX_ROUNDS). */
  rounds: number;
  switchoverReason: string | null;
  vmRunsOn: string | null;
  /** Post-copy and hybrid: faults and how long the vCPU waited on each (the destination's measure). */
  postcopy: Pick<PostcopyReport, 'faults' | 'faultLatencyMs' | 'vcpuBlockedMs' | 'pagesFetchedOnDemand'> | null;
}

/** Where a round started: the first `transferred` seen while query-migrate said it was in progress. */
export interface RoundMark {
  pass: number;
  transferred: number;
  /** True when the round before was seen too (or this is round 0): the mark is at the round's start. */
  atStart: boolean;
}

/** One migration as the dashboard knows it. */
export interface TrackedMigration {
  migrationId: string;
  /** '' until an event or an answer names it. */
  vm: string;
  /** Unknown until query-migrate answered about it. */
  direction: 'outgoing' | 'incoming' | null;
  mode: string | null;
  status: string;
  ended: boolean;
  /** The agent no longer knows it (it restarted): its last figures are all there is. */
  lost: boolean;
  /** The last query-migrate answer about it. */
  info: MigrationInfo | IncomingInfo | null;
  /** Rounds the agent reported done (MIGRATION_PASS). */
  passesDone: number;
  /** Outgoing: where each round seen started, by pass, ascending. */
  roundMarks: readonly RoundMark[];
  /** Outgoing: `transferred` when the rounds were over (the first answer past them); null while they go on. */
  roundsEndedAt: number | null;
  report: ReportSummary | null;
  /** Exact bytes per round, from the report. */
  reportRounds: readonly RoundBytes[] | null;
  firstSeenAt: number;
  updatedAt: number;
}

/** A bar of the bytes-per-round chart: round `index` (to `lastIndex` when rounds ran together). */
export interface RoundBytes {
  index: number;
  lastIndex: number;
  bytes: number;
  /** From the report (true) or estimated from polls (false). */
  exact: boolean;
  /** Still growing: the round in progress. */
  current: boolean;
}

export interface DashboardModel {
  agent: AgentLink;
  /** Newest first. */
  migrations: readonly TrackedMigration[];
}

/** What the model is fed; `at` is the dashboard's clock, ms since the epoch. */
export type DashboardInput =
  | { type: 'connecting'; at: number }
  | { type: 'connected'; at: number; agentName: string | null }
  | { type: 'unreachable'; at: number; error: string; retryAt: number }
  | { type: 'event'; at: number; event: 'MIGRATION'; data: ControlEvents['MIGRATION'] }
  | { type: 'event'; at: number; event: 'MIGRATION_PASS'; data: ControlEvents['MIGRATION_PASS'] }
  | { type: 'event'; at: number; event: 'MIGRATION_REPORT'; data: ControlEvents['MIGRATION_REPORT'] }
  | { type: 'migration-info'; at: number; info: MigrationInfo | IncomingInfo }
  | { type: 'migration-gone'; at: number; migrationId: string }
  | { type: 'report'; at: number; report: MigrationReport }
  | { type: 'request-failed'; at: number; error: string };

export function initialModel(url: string, at: number): DashboardModel {
  return {
    agent: { url, state: 'connecting', since: at, name: null, error: null, retryAt: null },
    migrations: [],
  };
}

/** The model after `input`; the same object when the input changes nothing. */
export function reduce(model: DashboardModel, input: DashboardInput): DashboardModel {
  switch (input.type) {
    case 'connecting':
      // Attempts while unreachable keep the reason on the page: "connecting" alone would hide it.
      if (model.agent.state !== 'connected') return model;
      return withAgent(model, { state: 'connecting', since: input.at, error: null, retryAt: null });
    case 'connected':
      return withAgent(model, {
        state: 'connected',
        since: input.at,
        name: input.agentName,
        error: null,
        retryAt: null,
      });
    case 'unreachable':
      return withAgent(model, {
        state: 'unreachable',
        since: model.agent.state === 'unreachable' ? model.agent.since : input.at,
        error: input.error,
        retryAt: input.retryAt,
      });
    case 'request-failed':
      return withAgent(model, { error: input.error });
    case 'event':
      return onEvent(model, input);
    case 'migration-info':
      return upsert(model, input.info.migrationId, input.at, (m) => withInfo(m, input.info));
    case 'migration-gone':
      if (!model.migrations.some((m) => m.migrationId === input.migrationId && !m.ended)) return model;
      return upsert(model, input.migrationId, input.at, (m) => ({ ...m, ended: true, lost: true }));
    case 'report':
      return upsert(model, input.report.migrationId, input.at, (m) => withReport(m, input.report));
  }
}

/** The ids of the migrations still in flight, newest first: the ones to poll. */
export function inFlight(model: DashboardModel): string[] {
  return model.migrations.filter((m) => !m.ended).map((m) => m.migrationId);
}

/** A migration that ended and whose report the dashboard has not got (outgoing, or direction unknown). */
export function wantsReport(model: DashboardModel, migrationId: string): boolean {
  const m = model.migrations.find((x) => x.migrationId === migrationId);
  return m !== undefined && m.ended && !m.lost && m.report === null && m.direction !== 'incoming';
}

/**
 * The bars of the bytes-per-round chart: the report's exact rounds once it came, else the
 * estimates from the marks (see the file's comment), at most MAX_ROUNDS, oldest first.
 */
export function roundBars(m: TrackedMigration): RoundBytes[] {
  if (m.reportRounds) return [...m.reportRounds];
  if (m.direction !== 'outgoing' || m.info?.direction !== 'outgoing') return [];
  const latest = m.roundsEndedAt ?? m.info.transferred;
  const marks = m.roundMarks;
  const bars: RoundBytes[] = [];
  marks.forEach((mark, i) => {
    if (!mark.atStart) return;
    const next = marks[i + 1];
    const start = mark.pass === 0 ? 0 : mark.transferred;
    const end = next?.transferred ?? latest;
    bars.push({
      index: mark.pass,
      lastIndex: next ? next.pass - 1 : mark.pass,
      bytes: Math.max(0, end - start),
      exact: false,
      current: next === undefined && m.roundsEndedAt === null && !m.ended,
    });
  });
  return bars.slice(-MAX_ROUNDS);
}

function withAgent(model: DashboardModel, change: Partial<AgentLink>): DashboardModel {
  return { ...model, agent: { ...model.agent, ...change } };
}

function onEvent(model: DashboardModel, input: Extract<DashboardInput, { type: 'event' }>): DashboardModel {
  switch (input.event) {
    case 'MIGRATION': {
      const { migrationId, status, vm } = input.data;
      return upsert(model, migrationId, input.at, (m) =>
        m.ended ? m : { ...m, vm: vm || m.vm, status, ended: ENDED_STATUSES.has(status) },
      );
    }
    case 'MIGRATION_PASS': {
      const { migrationId, pass } = input.data;
      return upsert(model, migrationId, input.at, (m) => ({ ...m, passesDone: Math.max(m.passesDone, pass) }));
    }
    case 'MIGRATION_REPORT':
      return upsert(model, input.data.migrationId, input.at, (m) => withReport(m, input.data.report));
  }
}

/** Apply `change` to migration `id` (a new one when unseen), keep the list bounded, newest first. */
function upsert(
  model: DashboardModel,
  migrationId: string,
  at: number,
  change: (m: TrackedMigration) => TrackedMigration,
): DashboardModel {
  const existing = model.migrations.find((m) => m.migrationId === migrationId);
  const next = change(existing ?? fresh(migrationId, at));
  if (next === existing) return model;
  const updated = { ...next, updatedAt: at };
  const others = model.migrations.filter((m) => m !== existing);
  const list = existing
    ? model.migrations.map((m) => (m === existing ? updated : m))
    : [updated, ...others].sort((a, b) => b.firstSeenAt - a.firstSeenAt);
  return { ...model, migrations: bounded(list) };
}

/** At most MAX_MIGRATIONS: the oldest ended migrations go first, then (a flood of ids) the oldest of all. */
function bounded(list: TrackedMigration[]): TrackedMigration[] {
  let kept = list;
  while (kept.length > MAX_MIGRATIONS) {
    const lastEnded = kept.findLastIndex((m) => m.ended);
    const drop = lastEnded >= 0 ? lastEnded : kept.length - 1;
    kept = kept.filter((_, i) => i !== drop);
  }
  return kept;
}

function fresh(migrationId: string, at: number): TrackedMigration {
  return {
    migrationId,
    vm: '',
    direction: null,
    mode: null,
    status: 'unknown',
    ended: false,
    lost: false,
    info: null,
    passesDone: 0,
    roundMarks: [],
    roundsEndedAt: null,
    report: null,
    reportRounds: null,
    firstSeenAt: at,
    updatedAt: at,
  };
}

function withInfo(m: TrackedMigration, info: MigrationInfo | IncomingInfo): TrackedMigration {
  // An answer to a poll sent before the end must not bring an ended migration back to life.
  const status = m.ended ? m.status : info.status;
  const next: TrackedMigration = {
    ...m,
    vm: info.vm || m.vm,
    direction: info.direction,
    mode: info.mode,
    status,
    ended: m.ended || ENDED_STATUSES.has(info.status),
    lost: false,
    info,
  };
  return info.direction === 'outgoing' && !m.ended ? withRoundMark(next, info) : next;
}

/** Note where a round started, or that the rounds are over. */
function withRoundMark(m: TrackedMigration, info: MigrationInfo): TrackedMigration {
  if (m.roundsEndedAt !== null) return m;
  if (PAST_ROUNDS.has(info.status) || ENDED_STATUSES.has(info.status)) {
    return { ...m, roundsEndedAt: info.transferred };
  }
  // Setup sends no round yet; and a mode without rounds (post-copy) has none to mark.
  if (info.status !== 'precopy' && info.status !== 'stopcopy') return m;
  const marks = m.roundMarks;
  const last = marks.at(-1);
  if (last && info.pass <= last.pass) return m;
  const atStart = info.pass === 0 || last?.pass === info.pass - 1;
  const mark: RoundMark = { pass: info.pass, transferred: info.transferred, atStart };
  return { ...m, roundMarks: [...marks, mark].slice(-MAX_ROUNDS - 1) };
}

function withReport(m: TrackedMigration, report: MigrationReport): TrackedMigration {
  const rounds = report.rounds.slice(-MAX_ROUNDS).map((r) => ({
    index: r.index,
    lastIndex: r.index,
    bytes: r.bytes,
    exact: true,
    current: false,
  }));
  const pc = report.postcopy;
  return {
    ...m,
    vm: report.vm.name ?? m.vm,
    direction: m.direction ?? 'outgoing',
    mode: report.mode,
    status: report.outcome,
    ended: true,
    lost: false,
    report: {
      outcome: report.outcome,
      error: report.error,
      totalMs: report.times.totalMs,
      downtimeMs: report.times.downtimeMs,
      downtimeNote: report.times.downtimeNote ?? null,
      setupMs: report.times.setupMs,
      wireBytes: report.bytes.wire,
      rounds: report.rounds.length,
      switchoverReason: report.switchover?.reason ?? null,
      vmRunsOn: report.vmRunsOn ?? null,
      postcopy: pc
        ? {
            faults: pc.faults,
            faultLatencyMs: pc.faultLatencyMs,
            vcpuBlockedMs: pc.vcpuBlockedMs,
            pagesFetchedOnDemand: pc.pagesFetchedOnDemand,
          }
        : null,
    },
    reportRounds: rounds,
  };
}
