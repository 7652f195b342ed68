/**
 * Follow one migration on an agent until it ends: a progress bar on a TTY (round, share of
 * memory sent this pass, rate, expected downtime), then the final report. Used by
 * `livemig migrate` and `livemig demo`.
 */
import cliProgress from 'cli-progress';
import { formatDuration, formatRate, MigrationError } from '@livemig/shared';
import type { ControlClient, MigrationInfo } from '@livemig/shared/control';
import type { MigrationReport } from '@livemig/shared/report';

export interface FollowOptions {
  /** Draw a progress bar on stderr. @default process.stderr.isTTY */
  progress?: boolean;
  /** How often to ask for live figures, ms. @default 200 */
  pollMs?: number;
}

export async function followMigration(
  client: ControlClient,
  migrationId: string,
  options: FollowOptions = {},
): Promise<MigrationReport> {
  const progress = options.progress ?? process.stderr.isTTY === true;
  const bar = progress ? createBar() : undefined;
  let timer: NodeJS.Timeout | undefined;
  const reported = new Promise<MigrationReport>((resolve) => {
    const off = client.on('MIGRATION_REPORT', (data) => {
      if (data.migrationId !== migrationId) return;
      off();
      resolve(data.report);
    });
  });
  try {
    if (bar) {
      bar.start(100, 0, fields(undefined));
      const poll = async (): Promise<void> => {
        const info = await client.request('query-migrate', { migrationId }).catch(() => null);
        if (info) bar.update(Math.round(info.passProgress * 100), fields(info));
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
    bar?.stop();
  }
}

function createBar(): cliProgress.SingleBar {
  return new cliProgress.SingleBar(
    {
      format:
        ' {status} round {pass} |{bar}| {percentage}% of memory this round | {rate} | expected downtime {expected}',
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
    },
    cliProgress.Presets.shades_classic,
  );
}

function fields(info: MigrationInfo | null | undefined): Record<string, string | number> {
  if (!info) return { status: 'setup', pass: 0, rate: '—', expected: '—' };
  return {
    status: info.status,
    pass: info.pass,
    rate: formatRate((info.mbps * 1e6) / 8),
    expected: Number.isFinite(info.expectedDowntime) ? formatDuration(info.expectedDowntime) : '—',
  };
}
