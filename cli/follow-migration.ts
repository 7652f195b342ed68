/**
 * Follow one migration on an agent until it ends: a progress line on a TTY, then the final
 * report. Used by `livemig migrate` and `livemig demo`. The line (live-figures.ts progressLine)
 * shows the round and the share of memory sent in it — in post-copy the share of pages present
 * at the destination — elapsed, ETA, rate and expected downtime as the terminal's width allows;
 * it is recomposed for the width at every redraw, so it follows a resized terminal. No line at
 * all when stderr is not a terminal.
 */
import { createRequire } from 'node:module';
import type cliProgress from 'cli-progress';
import { MigrationError } from '@livemig/shared';
import type { ControlClient, MigrationInfo } from '@livemig/shared/control';
import type { MigrationReport } from '@livemig/shared/report';
import { progressLine } from './live-figures.ts';

export interface FollowOptions {
  /** Draw a progress bar on stderr. @default process.stderr.isTTY */
  progress?: boolean;
  /** How often to ask for live figures, ms. @default 200 */
  pollMs?: number;
  /** Stop following when this aborts (the migration goes on): rejects with its reason. @default none */
  signal?: AbortSignal;
}

export async function followMigration(
  client: ControlClient,
  migrationId: string,
  options: FollowOptions = {},
): Promise<MigrationReport> {
  const progress = options.progress ?? process.stderr.isTTY === true;
  const bar = progress ? createBar() : undefined;
  let timer: NodeJS.Timeout | undefined;
  let unfollow = (): void => {};
  const reported = new Promise<MigrationReport>((resolve, reject) => {
    const off = client.on('MIGRATION_REPORT', (data) => {
      if (data.migrationId !== migrationId) return;
      off();
      resolve(data.report);
    });
    const { signal } = options;
    const stop = (): void => {
      off();
      reject(signal!.reason);
    };
    if (signal?.aborted) stop();
    else signal?.addEventListener('abort', stop, { once: true });
    unfollow = () => signal?.removeEventListener('abort', stop);
  });
  // Awaited only after query-report answers: an abort meanwhile must not be an unhandled rejection.
  reported.catch(() => {});
  try {
    if (bar) {
      bar.start(100, 0, { info: undefined });
      const poll = async (): Promise<void> => {
        const info = await client.request('query-migrate', { migrationId }).catch(() => null);
        if (info?.direction === 'outgoing') bar.update(0, { info });
      };
      timer = setInterval(() => void poll(), options.pollMs ?? 200);
    }
    // The report event may have fired before we subscribed (a very short migration): ask too.
    const early = await client.request('query-report', { migrationId });
    return early ?? (await reported);
  } catch (error) {
    throw error instanceof MigrationError ? error : new MigrationError('ERR_CONTROL', String(error));
  } finally {
    if (timer) clearInterval(timer);
    unfollow();
    bar?.stop();
  }
}

/** The line on stderr, redrawn by cli-progress (at most 10 times a second) with the last figures polled. */
function createBar(stream: NodeJS.WriteStream = process.stderr): cliProgress.SingleBar {
  // Loaded here, on a terminal only: every livemig process (agents too) loads this module.
  const { SingleBar } = createRequire(import.meta.url)('cli-progress') as typeof cliProgress;
  return new SingleBar({
    format: (_options, _params, payload: { info?: MigrationInfo }) => progressLine(payload.info, lineWidth(stream)),
    stream,
    hideCursor: true,
    clearOnComplete: true,
  });
}

/**
 * Columns the line may take: the width of the terminal it is drawn on (stderr; else stdout's, else
 * 80), less one — a character in the last column leaves some terminals about to wrap.
 */
export function lineWidth(stream: { columns?: number } = process.stderr): number {
  const columns = stream.columns || process.stdout.columns || 80;
  return Math.max(0, columns - 1);
}
