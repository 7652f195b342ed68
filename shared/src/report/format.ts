/**
 * The human rendering of a report: a short table a person reads top to bottom — outcome first,
 * then the three costs (time, downtime, bytes), then the rounds and the proof (digests). A VM
 * with a disk gets a storage block (storageLines) before the proof, its lines within 80 columns.
 */
import { formatBytes, formatDuration, formatRate } from '../units.ts';
import type { PrefaultReport, SideThreads } from './threads.ts';
import type {
  ChannelFigures,
  ChannelsReport,
  EncodingsReport,
  MigrationReport,
  RoundReport,
  StorageReport,
  SwitchoverReason,
  ThrottleReport,
  WriteLatency,
} from './types.ts';

const SWITCHOVER_WORDS: Record<SwitchoverReason, string> = {
  converged: 'expected downtime fell under the limit',
  'nothing-dirty': 'nothing left dirty',
  'max-rounds': 'hit the maximum number of rounds (did not converge)',
  'not-shrinking': 'the dirty set stopped shrinking for 3 rounds (did not converge)',
  postcopy: 'switched to post-copy',
  shutdown: 'the agent was asked to stop: switched over at once rather than lose the VM',
};

const ADDRESS_MODE_WORDS: Record<string, string> = {
  loopback: 'rebinding the loopback port: source released, destination bound',
  macvlan: 'macvlan + gratuitous ARP: destination brought the link up and announced it',
};

/** Width of a field's label column; its value starts after it and one space, two spaces in. */
const LABEL_WIDTH = 18;
const VALUE_INDENT = ' '.repeat(2 + LABEL_WIDTH + 1);
/** The storage block keeps within a terminal's classic width. */
const MAX_COLUMNS = 80;

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

function padLeft(text: string, width: number): string {
  return text.length >= width ? text : ' '.repeat(width - text.length) + text;
}

/** Render the report as plain text (no colours), lines joined with "\n". */
export function formatReport(report: MigrationReport): string {
  const lines: string[] = [];
  const field = (label: string, value: string): void => {
    lines.push(`  ${pad(label, LABEL_WIDTH)} ${value}`);
  };
  const title = `livemig ${report.mode} migration: ${report.outcome.toUpperCase()}`;
  lines.push(title, '='.repeat(title.length));
  if (report.error) field('error', `${report.error.code}: ${report.error.message}`);
  field('migration', report.migrationId);
  field('agents', `${report.agents.source} → ${report.agents.dest ?? '(never reached)'}`);
  field('when', `${report.times.startedAt} → ${report.times.endedAt}`);
  field(
    'vm',
    `${report.vm.name ? `${report.vm.name}, ` : ''}${formatBytes(report.vm.memoryBytes)}, workload ${report.vm.workload}`,
  );
  if (report.vmRunsOn) field('vm now runs on', report.vmRunsOn);
  field('security', securityLine(report.security));
  if (report.record) field('record', recordLine(report.record));
  field('total time', formatDuration(report.times.totalMs));
  const downtime = report.times.downtimeMs;
  field(
    'downtime',
    downtime === null
      ? `none measured (${report.times.downtimeNote ?? 'the VM never resumed on the destination'})`
      : `${formatDuration(downtime)} (source pause → destination resume${
          report.times.rttMs === undefined ? '' : `, RTT ${formatDuration(report.times.rttMs)}`
        })`,
  );
  const pausedHere = report.times.pausedOnSourceMs;
  if (pausedHere !== undefined)
    field('paused on source', `${formatDuration(pausedHere)} (pause → resumed at the source)`);
  if (report.network) {
    const n = report.network;
    field(
      'network downtime',
      `${formatDuration(n.downtimeMs)} (longest gap between replies a client saw${
        n.intervalMs === undefined ? '' : `, probing every ${formatDuration(n.intervalMs)}`
      })`,
    );
    if (n.switchoverGapMs !== undefined) {
      field(
        'switchover gap',
        `${formatDuration(n.switchoverGapMs)} (the gap around the switchover: moving the VM and its address)`,
      );
    }
    field(
      'client losses',
      `${n.lostReplies} replies lost${n.requests === undefined ? '' : ` of ${n.requests}`}, ${n.lostWrites} acknowledged writes lost`,
    );
    if (n.address) {
      field(
        'address',
        `${n.address} before and after${n.addressMode ? ` (moved by ${ADDRESS_MODE_WORDS[n.addressMode]})` : ''}`,
      );
    }
  }
  if (report.nic && !report.network?.address) {
    field('address', `${report.nic.address} (moved by ${ADDRESS_MODE_WORDS[report.nic.addressMode]})`);
  }
  field('setup', formatDuration(report.times.setupMs));
  field(
    'bytes on the wire',
    `${formatBytes(report.bytes.wire)} (page payload ${formatBytes(report.bytes.pagePayload)}, ${(
      report.bytes.wire / Math.max(1, report.vm.memoryBytes)
    ).toFixed(2)}× memory)`,
  );
  const p = report.pages;
  field('pages', `${p.total} total: ${p.sent} sent, ${p.zero} zero, ${p.resent} re-sent, ${p.faulted} faulted`);
  if (report.switchover) {
    const s = report.switchover;
    field('switchover', `${SWITCHOVER_WORDS[s.reason] ?? s.reason} (expected ${formatDuration(s.expectedDowntimeMs)})`);
    field(
      'limits',
      `downtime ${formatDuration(s.downtimeLimitMs)}, ${s.maxRounds} rounds, bandwidth ${
        s.maxBandwidthBps === null ? 'unlimited' : formatRate(s.maxBandwidthBps)
      }${s.maxPostcopyBandwidthBps === undefined ? '' : `, post-copy push ${formatRate(s.maxPostcopyBandwidthBps)}`}`,
    );
  }
  if (report.dirtyRate) {
    const { measurement: m, curve, note } = report.dirtyRate;
    field(
      'start dirty rate',
      m === null
        ? (note ?? 'not measured')
        : `${m.dirtyRateMBps.toFixed(1)} ± ${m.standardErrorMBps.toFixed(1)} MB/s over ${formatDuration(m.windowMs)}` +
            (curve?.wssBytes != null && curve.wssBytes < m.memoryBytes
              ? `, a working set of about ${formatBytes(curve.wssBytes)}`
              : '') +
            (note === undefined ? '' : ` (${note})`),
    );
  }
  if (report.auto) {
    const a = report.auto;
    const predicted = a.predictions.find((p) => p.technique === a.chosen);
    field(
      'auto',
      `chose ${a.chosen} for ${a.objective} (${a.decidedIn}, ${formatDuration(a.decidedAtMs)} in): ${a.why}`,
    );
    if (predicted) {
      field(
        'predicted',
        `${formatDuration(predicted.totalMs)} total, ${formatDuration(predicted.downtimeMs)} downtime, ` +
          `${formatBytes(predicted.wireBytes)} on the wire (measured above)`,
      );
    }
  }
  if (report.channels) field('channels', channelsLine(report.channels));
  if (report.encodings) {
    for (const [i, line] of encodingsLines(report.encodings).entries()) field(i === 0 ? 'encodings' : '', line);
  }
  if (report.throttle) {
    const [what, cost] = throttleLines(report.throttle);
    field(report.throttle.technique, what);
    if (cost) field('guest cost', cost);
  }
  if (report.postcopy) {
    const pc = report.postcopy;
    const latency = pc.faultLatencyMs;
    field(
      'post-copy',
      `${pc.absentAtSwitchover} pages absent at resume: ${pc.pagesFetchedOnDemand} fetched on demand, ${pc.pagesPushed} pushed; ${formatDuration(pc.postcopyMs)} until all present`,
    );
    field(
      'faults',
      `${pc.faults}${
        latency
          ? `, latency p50 ${formatDuration(latency.p50)} p99 ${formatDuration(latency.p99)} max ${formatDuration(latency.max)}`
          : ''
      }; vCPU blocked ${formatDuration(pc.vcpuBlockedMs)}${pc.recoveries ? `; link recovered ${pc.recoveries}×` : ''}${
        pc.faultThread === undefined
          ? ''
          : pc.faultThread
            ? '; served by the fault thread'
            : '; served by the main thread'
      }${pc.sourceFaultWorker ? ", answered by the source's fault worker" : ''}${pc.pagesAnsweredAgain ? `, ${pc.pagesAnsweredAgain} pushed pages answered again` : ''}`,
    );
    const h = pc.faultLatencyHistogram;
    if (h) {
      field(
        'fault latency',
        h.counts
          .map((count, i) => (count ? `${h.bucketsUs[i]} µs+: ${count}` : ''))
          .filter(Boolean)
          .join(', ') + ' (faults per 2^N µs bucket)',
      );
    }
    field(
      'guest speed',
      `${Math.round(pc.stepsPerSecBefore)} steps/s before, ${Math.round(pc.stepsPerSecDuring)} steps/s during post-copy`,
    );
  }
  if (report.threads) {
    field('source threads', threadsLine(report.threads.source));
    field('dest threads', report.threads.dest ? threadsLine(report.threads.dest) : 'none sent');
  }
  if (report.prefault) field('pre-fault', prefaultLine(report.prefault));
  if (report.storage) lines.push(...storageLines(report.storage));
  for (const [name, line] of verifyLines(report.verify)) field(name, line);
  if (report.oracle) {
    const o = report.oracle;
    field(
      'oracle',
      o.match
        ? `match at step ${o.steps} (migrated VM = never-migrated reference${o.disk ? ', memory and disk' : ''})`
        : o.migratedDigest !== o.referenceDigest
          ? `MISMATCH at step ${o.steps}: memory ${o.migratedDigest} ≠ ${o.referenceDigest}`
          : `MISMATCH at step ${o.steps}: disk ${o.disk?.migratedDigest ?? 'none'} ≠ ${o.disk?.referenceDigest ?? 'none'}`,
    );
  }
  if (report.rounds.length) {
    // With a throttle, what each round cost the guest: the throttle in force and its speed
    // (steps/s, and × its unthrottled speed).
    const guest = report.throttle;
    lines.push(
      '',
      '  round     pages        bytes       time    bandwidth   dirty after' +
        (guest ? ' throttle  guest steps/s' : ''),
    );
    for (const r of report.rounds) {
      lines.push(
        `  ${padLeft(String(r.index), 5)} ${padLeft(String(r.pages), 9)} ${padLeft(formatBytes(r.bytes), 12)} ${padLeft(
          formatDuration(r.ms),
          10,
        )} ${padLeft(formatRate(r.bandwidthBps), 12)} ${padLeft(String(r.dirtyAfter), 13)}` +
          (guest ? guestColumns(r, guest.unthrottledStepsPerSec) : ''),
      );
    }
  }
  return lines.join('\n');
}

/**
 * Where one side's cores went: each thread's CPU time and its share of a core while alive (threads
 * that used under 0.5 ms are counted, not listed), then the process's total — "1.9 cores" busy.
 */
function threadsLine(side: SideThreads): string {
  const shown = side.threads.filter((t) => t.name === 'main' || t.cpuMs === null || t.cpuMs >= 0.5);
  const parts = shown.map((t) => {
    if (t.cpuMs === null) return `${t.name} n/a`;
    const share = t.name === 'other' || t.wallMs <= 0 ? '' : ` (${Math.round((100 * t.cpuMs) / t.wallMs)} %)`;
    return `${t.name} ${formatDuration(t.cpuMs)}${share}`;
  });
  const idle = side.threads.length - shown.length;
  const cores = side.wallMs > 0 ? ` = ${(side.cpuMs / side.wallMs).toFixed(1)} cores` : '';
  return (
    `${parts.join(', ')}${idle ? `, ${idle} idle` : ''}; ` +
    `${formatDuration(side.cpuMs)} CPU in ${formatDuration(side.wallMs)}${cores}`
  );
}

/** How long the destination's pre-fault took, and whether the receiver ever had to wait for it. */
function prefaultLine(p: PrefaultReport): string {
  const what = `${p.touched} of ${p.pages} pages`;
  if (p.ms === null) return `${what}: not done when the destination's part ended (on the critical path)`;
  const took = `${what} in ${formatDuration(p.ms)}, from ${formatDuration(p.startMs)} after Setup`;
  if (p.firstPassMs === null || p.offCriticalPath === null) return took;
  const doneAt = p.startMs + p.ms;
  const margin = formatDuration(Math.abs(p.firstPassMs - doneAt));
  return p.offCriticalPath
    ? `${took}: done ${margin} before the first pass's last page arrived (off the critical path)`
    : `${took}: done ${margin} after the first pass's last page arrived (on the critical path)`;
}

/** "870", "9.99k", "12.3k", "1.25M": a steps/s figure in a few characters. */
function compactCount(n: number): string {
  if (n >= 999_500) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 9_995) return `${(n / 1e3).toFixed(1)}k`;
  if (n >= 999.5) return `${(n / 1e3).toFixed(2)}k`;
  return String(Math.round(n));
}

/** A round's throttle and guest speed columns; the stop-and-copy set (VM paused) has none. */
function guestColumns(r: RoundReport, unthrottled: number | null): string {
  if (r.cpuThrottlePercent === undefined || r.guestStepsPerSec === undefined) {
    return ` ${padLeft('–', 8)}  ${'paused'.padStart(13)}`;
  }
  const speed = unthrottled ? ` ${(r.guestStepsPerSec / unthrottled).toFixed(2)}×` : '';
  return ` ${padLeft(`${r.cpuThrottlePercent} %`, 8)}  ${padLeft(compactCount(r.guestStepsPerSec) + speed, 13)}`;
}

/** × the unthrottled speed, two decimals. */
function times(ratio: number | null): string {
  return ratio === null ? 'n/a' : `${ratio.toFixed(2)}×`;
}

/**
 * auto-converge or dirty-limit: how far the throttle went, from which round and by which rule
 * (dirty-limit: the dirty rate it held the guest to); then what it cost the guest — its speed
 * while throttled next to its unthrottled speed (undefined: it was never throttled).
 */
/** The bulk channels on one line: how many, what each carried, and what the main connection carried besides. */
function channelsLine(c: ChannelsReport): string {
  const each = (f: ChannelFigures): string => `${f.pages} pages ${formatBytes(f.wireBytes)}`;
  if (c.count === 1) {
    return `1 (the main connection${c.asked > 1 ? `; ${c.asked} asked${c.note ? `: ${c.note}` : ''}` : ''})`;
  }
  const channels = c.perChannel.map((f, i) => `#${i} ${each(f)}`).join(', ');
  return `${c.count} parallel: ${channels}${c.main ? `; main ${each(c.main)}` : ''}`;
}

/** What the page encodings did: one line per encoding used, then the policy's last choice. */
function encodingsLines(e: EncodingsReport): string[] {
  const lines: string[] = [];
  const c = e.compression;
  if (c && c.pages > 0) {
    const ratio = c.inputBytes > 0 ? c.outputBytes / c.inputBytes : 1;
    lines.push(
      `compressed ${c.pages} pages: ${formatBytes(c.inputBytes)} → ${formatBytes(c.outputBytes)} (${ratio.toFixed(2)}×, ` +
        `--compress ${c.mode}, ${c.threads} thread${c.threads === 1 ? '' : 's'}, busy ${c.busyMs.map((ms) => formatDuration(ms)).join(' + ')})`,
    );
  }
  if (e.dedup && e.dedup.pages > 0) lines.push(`${e.dedup.pages} pages sent as references to a page already there`);
  const host = e.dedup?.host;
  if (host) {
    lines.push(
      `${host.pages} pages sent as references to content the destination host held: ${host.offered} contents ` +
        `offered (${formatBytes(host.tableBytes)} there, chosen in ${formatDuration(host.buildMs)})`,
    );
  }
  const x = e.xbzrle;
  if (x && (x.pages > 0 || x.cacheHits + x.cacheMisses > 0)) {
    lines.push(
      `xbzrle ${x.pages} pages as deltas (${formatBytes(x.bytes)}, ${formatBytes(x.bytesSaved)} saved); cache ` +
        `${formatBytes(x.cacheBytes)}: ${x.cacheHits} hits, ${x.cacheMisses} misses, ${x.cacheOverflows} overflows`,
    );
  }
  if (lines.length === 0) lines.push('none used');
  const last = e.decisions.at(-1);
  if (last !== undefined) lines.push(`last choice: ${last}`);
  return lines;
}

function throttleLines(t: ThrottleReport): [string, string | undefined] {
  const rule =
    t.technique === 'auto-converge'
      ? `${t.initialPercent} % + ${t.incrementPercent} % per round dirtying > ${t.triggerThresholdPercent} % of what it sent, at most ${t.maxPercent} %`
      : `limit ${formatRate(t.dirtyLimitBps ?? 0)}, at most ${t.maxPercent} %`;
  if (t.peakRound === null) {
    const why =
      t.technique === 'auto-converge' ? 'the rounds kept up with the link' : 'the guest dirtied under the limit';
    return [`never throttled (${rule}): ${why}`, undefined];
  }
  const held =
    t.technique === 'dirty-limit' && t.throttledDirtyRateBps !== null
      ? `; dirty rate ${formatRate(t.throttledDirtyRateBps)} while throttled (a round's most ${formatRate(
          t.maxThrottledRoundDirtyRateBps ?? 0,
        )})`
      : '';
  const rounds = `${t.throttledRounds} ${t.throttledRounds === 1 ? 'round' : 'rounds'} throttled`;
  const steps =
    t.unthrottledStepsPerSec !== null && t.throttledStepsPerSec !== null
      ? ` (${compactCount(t.unthrottledStepsPerSec)} → ${compactCount(t.throttledStepsPerSec)} steps/s)`
      : '';
  return [
    `throttled to ${t.peakPercent} % by round ${t.peakRound} (${rule}; ${rounds})${held}`,
    `the guest ran at ${times(t.speedWhileThrottled)} its unthrottled speed while throttled${steps}, ` +
      `${times(t.speedDuringPrecopy)} over all of pre-copy`,
  ];
}

/**
 * The disk and how it migrated: mode and sizes, disk bytes on the wire and pre-copy rounds, the
 * blocks by how they travelled, the guest's write latency before → during, and the engine's note.
 * Values too long for MAX_COLUMNS go on under the value column.
 */
function storageLines(storage: StorageReport): string[] {
  const lines: string[] = [];
  const field = (label: string, parts: readonly string[], separator: string): void => {
    const [first = '', ...rest] = parts;
    let line = `  ${pad(label, LABEL_WIDTH)} ${first}`;
    for (const part of rest) {
      const joined = `${line}${separator}${part}`;
      if (joined.length <= MAX_COLUMNS) {
        line = joined;
      } else {
        lines.push(line + separator.trimEnd());
        line = VALUE_INDENT + part;
      }
    }
    lines.push(line);
  };
  const s = storage;
  field(
    'storage',
    [`${s.mode}: a ${formatBytes(s.sizeBytes)} disk,`, `${formatBytes(s.allocatedBytes)} allocated`],
    ' ',
  );
  field(
    'disk on the wire',
    [formatBytes(s.wireBytes), `${s.rounds} pre-copy ${s.rounds === 1 ? 'round' : 'rounds'}`],
    ', ',
  );
  field(
    'disk blocks',
    [
      `${s.blocksCopied} copied`,
      `${s.blocksResent} re-sent`,
      `${s.blocksMirrored} mirrored`,
      `${s.blocksFetched} fetched on demand`,
      `${s.blocksPushed} pushed`,
    ],
    ', ',
  );
  const { before, during } = s.writeLatencyMs;
  field(
    'write latency',
    before === null && during === null
      ? ['not measured']
      : [
          `p50 ${latencyOf(before, 'p50')} → ${latencyOf(during, 'p50')},`,
          `p99 ${latencyOf(before, 'p99')} → ${latencyOf(during, 'p99')}`,
          '(before → during)',
        ],
    ' ',
  );
  if (s.note) field('disk note', s.note.split(/\s+/), ' ');
  return lines;
}

/** One percentile of a write-latency sample, or "n/a" when there was none. */
function latencyOf(latency: WriteLatency | null, which: 'p50' | 'p99'): string {
  return latency === null || latency.count === 0 ? 'n/a' : formatDuration(latency[which]);
}

/** The proof lines: memory first, then the other sections; "not verified" when nothing was compared. */
function verifyLines(v: MigrationReport['verify']): Array<[string, string]> {
  if (v.match === null) {
    return [['verified', 'no (the migration ended before both sides had a digest to compare)']];
  }
  const lines: Array<[string, string]> = [];
  const sections = v.sections ?? { ram: { source: v.sourceDigest, dest: v.destDigest, match: v.match } };
  for (const [name, d] of Object.entries(sections)) {
    const label = SECTION_WORDS[name] ?? `${name} digest`;
    lines.push([
      label,
      d.match ? `match (${d.source})` : `MISMATCH source ${d.source ?? 'none'} ≠ dest ${d.dest ?? 'none'}`,
    ]);
  }
  return lines;
}

const SECTION_WORDS: Record<string, string> = {
  ram: 'memory digest',
  cpu: 'CPU digest',
  devices: 'devices digest',
  disk: 'disk digest',
};

/** Who signed the migration record, and whether the destination countersigned it (or why not). */
function recordLine(signed: NonNullable<MigrationReport['record']>): string {
  const by = signed.signature ? `signed by ${signed.signature.by}` : 'unsigned';
  const c = signed.countersignature;
  if (c.status === 'signed') return `${by}, countersigned by ${c.signature.by}`;
  return `${by}; countersignature ${c.status}: ${c.reason}`;
}

/** The data plane's protection in one line: who proved what to whom, over which cipher. */
function securityLine(security: MigrationReport['security']): string {
  if (!security) return 'none: plaintext, nobody authenticated';
  const { tls, cipher, sourceName, destName, ticket } = security;
  return `mutual TLS ${tls} (${cipher}), ${sourceName} → ${destName}${ticket ? ', with a ticket' : ', no ticket'}`;
}
