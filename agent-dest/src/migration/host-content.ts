/**
 * The host content a destination offers an incoming migration that asked for it (Setup's
 * `hostContent`, capability `dedup-host`): a snapshot of the contents its other VMs hold
 * (shared/src/codec/host-content.ts builds it), bounded three ways —
 *
 *   entries   what the source asked for, at most MAX_HOST_CONTENT_PAGES (16384: 64 MiB of
 *             4 KiB pages, 512 KiB of hashes in SetupDone)
 *   memory    at most half of the guest-memory budget still free once the incoming VM is
 *             counted, so a table never takes the room of a VM this host could take
 *   time      the scan stops after HOST_SCAN_BUDGET_MS (it runs on the event loop before
 *             SetupDone) and hashes at most HOST_SCAN_MAX_PAGES pages, spread over every VM
 *   value     only contents seen at least HOST_MIN_SEEN times are offered
 *
 * The VM being built (all zero, written by this migration) is not a source of content.
 */
import type { Logger } from 'pino';
import { buildHostContent, HostContentTable } from '@livemig/shared/codec';
import type { VmHost } from '@livemig/shared/host';
import { MAX_HOST_CONTENT_PAGES } from '@livemig/shared/protocol';
import type { GuestMemory } from '@livemig/shared/vm';

/** Most pages hashed while looking for content to offer (256 MiB of 4 KiB pages). */
export const HOST_SCAN_MAX_PAGES = 65_536;
/** Time the scan may take, ms (SHA-256 runs at ~1 GB/s per core: ~30 000 pages). */
export const HOST_SCAN_BUDGET_MS = 150;
/**
 * Times a content must have been seen here to be offered: twice — in one VM (a library, the page
 * cache) or in two (the same image). A content seen once is mostly that VM's own data, and each
 * entry costs a page here. Measured (a 48 MiB `realistic` VM migrating to a host running another
 * of a different seed): every content seen offered 7 472 (30.8 MB, built in 202 ms) for 1 253
 * references; those seen twice, 195 (0.8 MB, 147 ms) for 1 143.
 */
export const HOST_MIN_SEEN = 2;

/** The content to offer `incoming` (the VM this migration builds), within the bounds above. */
export function offerHostContent(
  host: VmHost,
  incoming: string,
  requested: number,
  pageSize: number,
  logger: Logger,
): HostContentTable {
  const memories: GuestMemory[] = [];
  for (const { name } of host.list()) {
    if (name === incoming) continue;
    try {
      memories.push(host.get(name).vm.memory);
    } catch {
      // Migrated away: only its figures are kept here, not its memory.
    }
  }
  const { budgetBytes, hostedBytes, reservedBytes } = host.guestMemory;
  const roomPages = Math.floor(Math.max(0, budgetBytes - hostedBytes - reservedBytes) / 2 / pageSize);
  const maxPages = Math.min(requested, MAX_HOST_CONTENT_PAGES, roomPages);
  let table = HostContentTable.empty(pageSize);
  try {
    if (memories.length > 0) {
      table = buildHostContent(memories, pageSize, {
        maxPages,
        maxScanPages: HOST_SCAN_MAX_PAGES,
        timeBudgetMs: HOST_SCAN_BUDGET_MS,
        minSeen: HOST_MIN_SEEN,
      });
    }
  } catch (error) {
    // An offer is an optimisation: without it every page simply travels as it would have.
    logger.warn({ event: 'dedup.host.failed', err: error }, 'could not build the host content table; offering none');
  }
  logger.info(
    { event: 'dedup.host', vms: memories.length, requested, maxPages, offered: table.count, ...table.figures },
    `offering ${table.count} page contents of ${memories.length} other VM(s) for references`,
  );
  return table;
}
