/**
 * What an outgoing migration has measured so far: counters updated by the page sender and the
 * round loop, read by `query-migrate` (live) and turned into the report at the end. One place
 * for every figure, so the live view and the report can never disagree.
 */
import type { RoundReport } from '@livemig/shared/report';

export class MigrationStats {
  readonly startedAt = performance.now();
  setupMs = 0;
  /** Page bytes sent (raw pages only). */
  pagePayloadBytes = 0;
  /** Pages sent with their bytes (QMP: normal). */
  rawPages = 0;
  /** Pages sent as zero records (QMP: duplicate). */
  zeroPages = 0;
  /** Pages known to be zero at setup and never sent at all. */
  skippedZeroPages = 0;
  /** Pages sent again after a first send. */
  resentPages = 0;
  /** Dirty-log harvests (QMP: dirty-sync-count). */
  harvests = 0;
  readonly rounds: RoundReport[] = [];
  /**
   * Round in progress (or the stop-and-copy set): index, pages planned, pages sent so far, and
   * when it began — performance.now() and the main channel's bytes sent then — so `query-migrate`
   * can tell the rate of the round in progress.
   */
  current = { index: 0, planned: 0, sent: 0, startedAt: 0, bytesAtStart: 0 };
  /**
   * Post-copy: when the current push attempt began (the first, or the one after a reconnect),
   * with the pages sent and wire bytes so far then — the push rate's origin. Undefined before.
   */
  postcopyPush: { startedAt: number; pagesAtStart: number; bytesAtStart: number } | undefined;
  /** Pages dirty as of the last harvest (what is still to send). */
  pendingPages = 0;
  expectedDowntimeMs = Number.POSITIVE_INFINITY;
  downtimeMs: number | null = null;

  get elapsedMs(): number {
    return performance.now() - this.startedAt;
  }

  get lastRound(): RoundReport | undefined {
    return this.rounds[this.rounds.length - 1];
  }

  /** Pages dirtied per second over the last round (its dirty count over its duration); null before a round ended. */
  get dirtyPagesRate(): number | null {
    const last = this.lastRound;
    return last && last.ms > 0 ? (last.dirtyAfter / last.ms) * 1000 : null;
  }
}
