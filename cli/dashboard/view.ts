/**
 * What the page shows, computed here from the model (model.ts) rather than in the browser: every
 * figure arrives as its number (`value`, for programs and the tests) and its text (formatted as
 * the CLI formats it, live-figures.ts), so the page's script only places them — it holds no
 * formatting and no logic to get wrong, and this is unit-tested like the rest. Pure.
 *
 * A figure the agent does not know yet is null and reads "unknown", never 0 (live-figures.ts).
 */
import { formatBytes, formatDuration, formatRate } from '@livemig/shared';
import type { IncomingInfo, MigrationInfo } from '@livemig/shared/control';
import { PAGE_SIZE } from '@livemig/shared/vm';
import { formatSpan, orUnknown, presentShare } from '../live-figures.ts';
import { roundBars, type AgentLink, type DashboardModel, type TrackedMigration } from './model.ts';

/** One figure: `key` names it for programs (data-field on the page); `value` is its number, null when unknown. */
export interface FigureView {
  key: string;
  label: string;
  value: number | null;
  text: string;
}

/** A bar of the bytes-per-round chart. */
export interface RoundBarView {
  label: string;
  bytes: number;
  text: string;
  exact: boolean;
  current: boolean;
}

export interface MigrationView {
  id: string;
  vm: string;
  direction: string;
  mode: string;
  status: string;
  ended: boolean;
  /** The report's outcome once it came. */
  outcome: string | null;
  /** "outgoing pre-copy · round 2" */
  headline: string;
  /** The bar: a share 0..1 (null: not measurable, shown as busy) and what it is a share of. */
  progress: { share: number | null; text: string };
  figures: FigureView[];
  rounds: RoundBarView[];
  roundsNote: string;
  /** The report's verdict: "completed in 2.71 s, downtime 41.2 ms". */
  report: { outcome: string; totalMs: number; text: string } | null;
  /** Something to know about these figures (the agent forgot the migration). */
  note: string | null;
}

export interface PageView {
  agent: { url: string; state: AgentLink['state']; text: string };
  migrations: MigrationView[];
  /** When this view was made, ms since the epoch (the dashboard's clock). */
  at: number;
}

const MODE_NAMES: Record<string, string> = { precopy: 'pre-copy', postcopy: 'post-copy', hybrid: 'hybrid' };

export function pageView(model: DashboardModel, now: number): PageView {
  return {
    agent: { url: model.agent.url, state: model.agent.state, text: agentText(model.agent, now) },
    migrations: model.migrations.map(migrationView),
    at: now,
  };
}

/** The line about the control connection. */
export function agentText(agent: AgentLink, now: number): string {
  const who = agent.name ? `${agent.name} (${agent.url})` : agent.url;
  switch (agent.state) {
    case 'connecting':
      return `connecting to ${who}…`;
    case 'connected':
      return `connected to ${who}${agent.error ? ` — ${agent.error}` : ''}`;
    case 'unreachable': {
      const retry = agent.retryAt === null ? '' : `; retrying in ${formatSpan(Math.max(0, agent.retryAt - now))}`;
      return `agent unreachable since ${formatSpan(Math.max(0, now - agent.since))}: ${agent.error ?? 'unknown'}${retry}`;
    }
  }
}

export function migrationView(m: TrackedMigration): MigrationView {
  const mode = m.mode ? (MODE_NAMES[m.mode] ?? m.mode) : 'mode unknown';
  const direction = m.direction ?? 'direction unknown';
  const round = m.info?.direction === 'outgoing' && !m.info.postcopy && !m.ended ? ` · round ${m.info.pass}` : '';
  return {
    id: m.migrationId,
    vm: m.vm,
    direction,
    mode,
    status: m.status,
    ended: m.ended,
    outcome: m.report?.outcome ?? null,
    headline: `${direction} ${mode} · ${m.status}${round}`,
    progress: progress(m),
    figures: figures(m),
    rounds: roundBars(m).map((bar) => ({
      label: bar.lastIndex === bar.index ? `r${bar.index}` : `r${bar.index}–${bar.lastIndex}`,
      bytes: bar.bytes,
      text: `${bar.exact ? '' : '≈'}${formatBytes(bar.bytes)}`,
      exact: bar.exact,
      current: bar.current,
    })),
    roundsNote: m.reportRounds
      ? 'bytes per round, from the report'
      : 'bytes per round, estimated from polls (the report gives the exact ones)',
    report: m.report
      ? {
          outcome: m.report.outcome,
          totalMs: m.report.totalMs,
          text: reportText(m.report),
        }
      : null,
    note: m.lost ? 'the agent no longer knows this migration (it restarted?): these are the last figures seen' : null,
  };
}

function reportText(report: NonNullable<TrackedMigration['report']>): string {
  const downtime =
    report.downtimeMs === null
      ? `no downtime measured${report.downtimeNote ? ` (${report.downtimeNote})` : ''}`
      : `downtime ${formatDuration(report.downtimeMs)}`;
  const error = report.error ? ` — ${report.error.code}: ${report.error.message}` : '';
  return `${report.outcome} in ${formatDuration(report.totalMs)}, ${downtime}${error}`;
}

function progress(m: TrackedMigration): MigrationView['progress'] {
  if (m.report?.outcome === 'completed') return { share: 1, text: 'completed' };
  if (m.ended) return { share: null, text: m.status };
  const info = m.info;
  if (!info) return { share: null, text: 'waiting for figures' };
  const present = presentShare(info);
  if (present !== undefined) return { share: present, text: `${pct(present)} of pages at the destination` };
  if (info.direction === 'incoming') return { share: null, text: `${info.status}: receiving` };
  if (info.status === 'setup' || info.status === 'none') return { share: null, text: 'setting up' };
  return { share: info.passProgress, text: `round ${info.pass}: ${pct(info.passProgress)} of its pages sent` };
}

const pct = (share: number): string => `${Math.floor(share * 100)}%`;

function figure(key: string, label: string, value: number | null | undefined, format: (v: number) => string) {
  const known = value === undefined ? null : value;
  return { key, label, value: known, text: orUnknown(known, format) };
}

function figures(m: TrackedMigration): FigureView[] {
  const info = m.info;
  const list: FigureView[] = [];
  if (info?.direction === 'outgoing') list.push(...outgoingFigures(info, m));
  else if (info?.direction === 'incoming') list.push(...incomingFigures(info));
  const report = m.report;
  if (report) {
    list.push(
      figure('total-time', 'total time', report.totalMs, formatDuration),
      figure('downtime', 'downtime', report.downtimeMs, formatDuration),
      figure('wire-bytes', 'bytes on the wire', report.wireBytes, formatBytes),
      figure('rounds-done', 'rounds (with stop-and-copy)', report.rounds, String),
    );
    const pc = report.postcopy;
    if (pc) {
      const latency = pc.faultLatencyMs;
      list.push(
        figure('faults', 'post-copy faults', pc.faults, String),
        figure('fault-latency-p50', 'fault latency p50', latency?.p50, formatDuration),
        figure('fault-latency-p99', 'fault latency p99', latency?.p99, formatDuration),
        figure('fault-latency-max', 'fault latency max', latency?.max, formatDuration),
      );
    }
  }
  // A figure shown twice (live elapsed, then the report's total) would disagree: the report wins.
  const seen = new Set<string>();
  return list
    .reverse()
    .filter((f) => !seen.has(f.key) && seen.add(f.key))
    .reverse();
}

function outgoingFigures(info: MigrationInfo, m: TrackedMigration): FigureView[] {
  const mbps = info.mbps === null ? null : (info.mbps * 1e6) / 8;
  const list = [
    figure('transferred', 'sent', info.transferred, formatBytes),
    figure('remaining', 'remaining', info.remaining, formatBytes),
    figure('total', 'to move (memory and disk)', info.total, formatBytes),
    figure('rate', 'rate', mbps, formatRate),
    figure(
      'dirty-rate',
      'dirty rate',
      info.dirtyPagesRate,
      (p) => `${Math.round(p)} pages/s (${formatRate(p * PAGE_SIZE)})`,
    ),
    // Once the VM resumed on the destination the downtime is measured, not expected.
    info.downtime === null
      ? figure('expected-downtime', 'expected downtime', info.expectedDowntime, formatDuration)
      : figure('downtime', 'downtime', info.downtime, formatDuration),
    figure('elapsed', 'elapsed', info.totalTime, formatSpan),
    figure('eta', 'ETA', info.timeRemaining, formatSpan),
    // Rounds before the one in progress are done; MIGRATION_PASS may say so before a poll does.
    figure('rounds-done', 'rounds done', Math.max(m.passesDone, info.pass), String),
  ];
  const pc = info.postcopy;
  if (pc) {
    list.push(
      figure('present-pages', 'pages at the destination', pc.present, (v) => `${v} of ${pc.pages}`),
      figure('fetched-on-demand', 'faults served (fetched on demand)', pc.fetchedOnDemand, String),
      figure('pushed', 'pages pushed', pc.pushed, String),
    );
  }
  return list;
}

function incomingFigures(info: IncomingInfo): FigureView[] {
  const list = [
    figure('transferred', 'page bytes received', info.bytesReceived, formatBytes),
    figure('pages-received', 'pages received', info.pagesReceived, String),
    figure('total', 'guest memory', info.total, formatBytes),
    figure('elapsed', 'elapsed', info.totalTime, formatSpan),
  ];
  const pc = info.postcopy;
  if (pc) {
    list.push(
      figure('present-pages', 'pages here', pc.present, (v) => `${v} of ${pc.pages}`),
      figure('faults', 'post-copy faults', pc.faults, String),
      figure('faults-served', 'faults served', pc.faultsServed, String),
    );
  }
  return list;
}
