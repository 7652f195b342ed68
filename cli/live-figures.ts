/**
 * A migration's live figures as people read them: the line `livemig status` prints, and the
 * progress line `livemig migrate` redraws (follow-migration.ts). Pure: figures in, text out.
 *
 * A figure the agent does not know yet arrives as null and is printed "unknown" — never as 0,
 * which would say something false ("expected downtime 0 µs", "0 B remaining").
 *
 * The progress line fits the width it is given, never wider: on a narrow terminal it drops or
 * shortens what matters least first — expected downtime, the rate, the words around the
 * percentage, the bar itself — and keeps the phase, the share done, elapsed and ETA as long as
 * they fit at all; past that it is cut.
 */
import { formatBytes, formatDuration, formatRate } from '@livemig/shared';
import type { IncomingInfo, MigrationInfo } from '@livemig/shared/control';

/** "unknown" for a figure nobody knows yet, else the figure formatted. */
export function orUnknown<T>(value: T | null | undefined, format: (value: T) => string): string {
  return value === null || value === undefined ? 'unknown' : format(value);
}

/** A span of time for people: "850 ms", "3.2 s", "42 s", "1 m 05 s", "2 h 03 m". */
export function formatSpan(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.floor(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${String(Math.floor(s % 60)).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} m`;
}

/** A rate in megabits per second as bytes per second ("12.5 MB/s"). */
function formatMbps(mbps: number): string {
  return formatRate((mbps * 1e6) / 8);
}

/** The share of pages the destination has (present), 0..1; undefined before post-copy. */
export function presentShare(info: MigrationInfo | IncomingInfo): number | undefined {
  const pc = info.postcopy;
  return pc && pc.pages > 0 ? pc.present / pc.pages : undefined;
}

/** `livemig status`: one line about the migration query-migrate returned. */
export function describeMigration(info: MigrationInfo | IncomingInfo): string {
  return info.direction === 'outgoing' ? describeOutgoing(info) : describeIncoming(info);
}

function describeOutgoing(info: MigrationInfo): string {
  const pc = info.postcopy;
  const parts = pc
    ? [info.status, `${pc.present}/${pc.pages} pages present`, `${pc.fetchedOnDemand} fetched on demand`]
    : [`${info.status}, round ${info.pass}`];
  parts.push(
    `${formatBytes(info.transferred)} sent`,
    `${formatBytes(info.remaining)} remaining`,
    orUnknown(info.mbps, formatMbps),
    `elapsed ${formatSpan(info.totalTime)}`,
    `ETA ${orUnknown(info.timeRemaining, formatSpan)}`,
    // Once the VM resumed on the destination the downtime is measured, not expected.
    info.downtime === null
      ? `expected downtime ${orUnknown(info.expectedDowntime, formatDuration)}`
      : `downtime ${formatDuration(info.downtime)}`,
  );
  // QEMU's cpu-throttle-percentage: shown while --auto-converge/--dirty-limit holds the guest back.
  if (info.cpuThrottlePercentage > 0) parts.push(`vCPU throttled ${info.cpuThrottlePercentage} %`);
  return `migration ${info.migrationId} of ${info.vm} (${info.mode}, outgoing): ${parts.join(', ')}`;
}

function describeIncoming(info: IncomingInfo): string {
  const parts = [info.status];
  const pc = info.postcopy;
  if (pc) parts.push(`${pc.present}/${pc.pages} pages present`, `${pc.faults} faults (${pc.faultsServed} served)`);
  parts.push(
    `${info.pagesReceived} pages received (${formatBytes(info.bytesReceived)} of page data)`,
    `elapsed ${formatSpan(info.totalTime)}`,
  );
  return `incoming migration ${info.migrationId} of ${info.vm} (${info.mode}): ${parts.join(', ')}`;
}

/** One piece of the progress line: its forms from longest to shortest ('' = left out), and the one in use. */
interface Piece {
  forms: string[];
  at: number;
}

const piece = (...forms: string[]): Piece => ({ forms, at: 0 });
const text = (p: Piece): string => p.forms[p.at]!;
/** Use the next shorter form, if there is one. */
const shorten = (p: Piece): void => {
  p.at = Math.min(p.at + 1, p.forms.length - 1);
};

/** The bar's inside, in characters: at least this (or no bar at all), at most that. */
const BAR_MIN = 10;
const BAR_MAX = 30;
const SEPARATOR = ' · ';

/**
 * The progress line for `info` (undefined: no figures yet), at most `width` characters. Pre-copy:
 * the round and the share of its pages sent; post-copy: the share of pages present at the
 * destination. Then elapsed, ETA, rate and expected downtime, as room allows.
 */
export function progressLine(info: MigrationInfo | undefined, width: number): string {
  if (!info) return 'starting…'.slice(0, Math.max(0, width));
  const pc = info.postcopy;
  const share = presentShare(info) ?? info.passProgress;
  const pct = `${Math.floor(share * 100)}%`;
  const head = pc ? piece(info.status) : piece(`${info.status} round ${info.pass}`, `${info.status} r${info.pass}`);
  const done = pc
    ? piece(`${pct} present (${pc.present}/${pc.pages} pages)`, `${pct} present`, pct)
    : piece(`${pct} of memory this round`, `${pct} of memory`, pct);
  const elapsed = piece(`elapsed ${formatSpan(info.totalTime)}`, formatSpan(info.totalTime), '');
  const etaText = `ETA ${orUnknown(info.timeRemaining, formatSpan)}`;
  const eta = info.timeRemaining === null ? piece(etaText, 'ETA ?', '') : piece(etaText, etaText, '');
  const rate = info.mbps === null ? piece('') : piece(formatMbps(info.mbps), '');
  // Once the VM runs on the destination there is no downtime left to expect.
  const downtime = pc ? piece('') : piece(`expected downtime ${orUnknown(info.expectedDowntime, formatDuration)}`, '');
  let bar = true;
  const compose = (barWidth: number): string => {
    const left = [text(head), bar ? drawBar(share, barWidth) : '', text(done)].filter(Boolean).join(' ');
    return [left, ...[elapsed, eta, rate, downtime].map(text).filter(Boolean)].join(SEPARATOR);
  };
  // What to give up while the line is too wide, first to last.
  const steps: Array<() => void> = [
    () => shorten(downtime),
    () => shorten(done),
    () => shorten(rate),
    () => (bar = false),
    () => shorten(head),
    () => shorten(done),
    () => shorten(elapsed),
    () => shorten(eta),
    () => shorten(elapsed),
    () => shorten(eta),
  ];
  for (const step of steps) {
    if (compose(BAR_MIN).length <= width) break;
    step();
  }
  const line = compose(BAR_MIN);
  if (line.length > width) return line.slice(0, Math.max(0, width));
  return bar ? compose(Math.min(BAR_MAX, BAR_MIN + width - line.length)) : line;
}

function drawBar(share: number, width: number): string {
  const filled = Math.max(0, Math.min(width, Math.round(share * width)));
  return `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}]`;
}
