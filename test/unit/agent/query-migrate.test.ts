import { describe, expect, it } from 'vitest';
import { MigrationError } from '@livemig/shared';
import type { IncomingInfo, MigrationInfo } from '@livemig/shared/control';
import { queryMigrate, type IncomingSide, type OutgoingSide } from '../../../agent/src/query-migrate.ts';

const out = (migrationId: string, status: string, startedAt: number) =>
  ({ direction: 'outgoing', migrationId, status, startedAt }) as MigrationInfo;
const into = (migrationId: string, status: string, startedAt: number) =>
  ({ direction: 'incoming', migrationId, status, startedAt }) as IncomingInfo;

/** An agent's two sides holding at most one migration each. */
function sides(outgoing?: MigrationInfo, incoming?: IncomingInfo): [OutgoingSide, IncomingSide] {
  return [
    {
      find: (id) => {
        if (id !== undefined && id !== outgoing?.migrationId) {
          throw new MigrationError('ERR_NOT_FOUND', `no migration ${id} on this agent`);
        }
        return outgoing && { info: () => outgoing };
      },
    },
    { info: (id) => (id === undefined || id === incoming?.migrationId ? incoming : undefined) },
  ];
}

describe('queryMigrate', () => {
  it('by id: that migration, outgoing or incoming; ERR_NOT_FOUND when neither side has it', () => {
    const [o, i] = sides(out('a', 'precopy', 1), into('b', 'receiving', 2));
    expect(queryMigrate(o, i, 'a')?.direction).toBe('outgoing');
    expect(queryMigrate(o, i, 'b')?.direction).toBe('incoming');
    expect(() => queryMigrate(o, i, 'c')).toThrow(expect.objectContaining({ code: 'ERR_NOT_FOUND' }));
  });

  it('without an id: whichever there is, null when there is none', () => {
    expect(queryMigrate(...sides())).toBeNull();
    expect(queryMigrate(...sides(out('a', 'completed', 1)))?.migrationId).toBe('a');
    expect(queryMigrate(...sides(undefined, into('b', 'postcopy', 1)))?.migrationId).toBe('b');
  });

  it('without an id: the one in progress, outgoing first; else the newest that ended', () => {
    expect(queryMigrate(...sides(out('a', 'completed', 5), into('b', 'receiving', 1)))?.migrationId).toBe('b');
    expect(queryMigrate(...sides(out('a', 'precopy', 1), into('b', 'completed', 5)))?.migrationId).toBe('a');
    expect(queryMigrate(...sides(out('a', 'postcopy', 1), into('b', 'postcopy', 5)))?.migrationId).toBe('a');
    expect(queryMigrate(...sides(out('a', 'failed', 1), into('b', 'completed', 5)))?.migrationId).toBe('b');
    expect(queryMigrate(...sides(out('a', 'cancelled', 9), into('b', 'failed', 5)))?.migrationId).toBe('a');
  });
});
