/**
 * The destination's own figures for the report — its threads' CPU time and its pre-fault — as
 * they arrive in its final statistics (Resumed in pre-copy, Complete in post-copy). They come from
 * the peer: each is kept only once report/threads.ts's checks pass; a refused one is logged with
 * its code and left out (the report says the destination sent none), never fails the migration.
 */
import { checkPrefault, checkSideThreads } from '@livemig/shared/report';
import { MigrationError } from '@livemig/shared';
import type { MigrationContext } from './context.ts';

export function takeDestFigures(
  ctx: Pick<MigrationContext, 'destThreads' | 'destPrefault' | 'logger'>,
  stats: Record<string, unknown>,
): void {
  const threads = stats.threads === undefined ? undefined : checkSideThreads(stats.threads);
  const prefault = stats.prefault === undefined ? undefined : checkPrefault(stats.prefault);
  for (const figure of [threads, prefault]) {
    if (figure instanceof MigrationError) {
      ctx.logger.warn({ event: 'dest.figures.refused', err: figure }, `left out of the report: ${figure.message}`);
    }
  }
  if (threads !== undefined && !(threads instanceof MigrationError)) ctx.destThreads = threads;
  if (prefault !== undefined && !(prefault instanceof MigrationError)) ctx.destPrefault = prefault;
}
