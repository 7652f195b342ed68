/**
 * `query-migrate` on an agent, which may send VMs and receive others at the same time: QEMU has
 * one migration per process, outgoing or incoming, and its `query-migrate` answers with that one;
 * here the answer is one migration too, told apart by `direction`.
 *
 *   with an id      that migration, outgoing (MigrationInfo) or incoming (IncomingInfo);
 *                   ERR_NOT_FOUND when neither side knows it
 *   without one     the newest in progress — an outgoing one first: an agent that sends one VM
 *                   while it receives another is asked about the one it sends — else the newest
 *                   that ended (by start time); null when there was none
 */
import type { IncomingInfo, MigrationInfo } from '@livemig/shared/control';

/** The agent's outgoing migrations (OutgoingMigrations), as query-migrate reads them. */
export interface OutgoingSide {
  /** The migration with this id (ERR_NOT_FOUND when unknown), or without one the newest in progress, else the newest. */
  find(migrationId: string | undefined): { info(): MigrationInfo } | undefined;
}

/** The agent's incoming migrations (IncomingMigrations), as query-migrate reads them. */
export interface IncomingSide {
  /** The migration with this id, or without one the newest in progress, else the one that ended last. */
  info(migrationId?: string): IncomingInfo | undefined;
}

const ENDED: ReadonlySet<string> = new Set(['completed', 'failed', 'cancelled']);

export function queryMigrate(
  outgoing: OutgoingSide,
  incoming: IncomingSide,
  migrationId?: string,
): MigrationInfo | IncomingInfo | null {
  if (migrationId !== undefined) return incoming.info(migrationId) ?? outgoing.find(migrationId)?.info() ?? null;
  const out = outgoing.find(undefined)?.info();
  const into = incoming.info();
  if (!out || !into) return out ?? into ?? null;
  const outRuns = !ENDED.has(out.status);
  const intoRuns = !ENDED.has(into.status);
  if (outRuns || intoRuns) return outRuns ? out : into;
  return into.startedAt > out.startedAt ? into : out;
}
