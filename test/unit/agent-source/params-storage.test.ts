/**
 * The agent's own check of `storage` in a migrate request (resolveMigrateParams, what the
 * control API's `migrate` runs before anything starts): one of the storage modes, copy when
 * absent; anything else — from a client other than the CLI — is ERR_INVALID_ARGUMENT.
 */
import { describe, expect, it } from 'vitest';
import { isMigrationError } from '@livemig/shared';
import type { MigrateParams } from '@livemig/shared/control';
import { STORAGE_MODES } from '@livemig/shared/protocol';
import { resolveMigrateParams } from '@livemig/agent-source';

describe('resolveMigrateParams: storage', () => {
  it('defaults to copy', () => {
    expect(resolveMigrateParams('precopy').storage).toBe('copy');
    expect(resolveMigrateParams('postcopy', {}).storage).toBe('copy');
  });

  it.each(STORAGE_MODES)('takes %s with every memory mode', (storage) => {
    for (const mode of ['precopy', 'postcopy', 'hybrid']) {
      expect(resolveMigrateParams(mode, { storage }).storage).toBe(storage);
    }
  });

  it.each([['nfs'], ['Shared'], [''], [1], [null]])('refuses %j: ERR_INVALID_ARGUMENT naming the modes', (storage) => {
    let caught: unknown;
    try {
      resolveMigrateParams('precopy', { storage } as unknown as MigrateParams);
    } catch (error) {
      caught = error;
    }
    expect(isMigrationError(caught) && caught.code).toBe('ERR_INVALID_ARGUMENT');
    expect((caught as Error).message).toMatch(/storage must be one of shared, copy, mirror, postcopy/);
  });
});
