import { describe, expect, it } from 'vitest';
import {
  PROTOCOL_VERSION,
  SUPPORTED_VERSIONS,
  VERSION_HISTORY,
  isSupportedVersion,
} from '../../../../shared/src/protocol/index.ts';

describe('protocol versions', () => {
  it('supports the current version first, then the previous one only if it existed', () => {
    expect(SUPPORTED_VERSIONS[0]).toBe(PROTOCOL_VERSION);
    const previous = PROTOCOL_VERSION - 1;
    expect(SUPPORTED_VERSIONS.includes(previous)).toBe(previous in VERSION_HISTORY);
    expect(SUPPORTED_VERSIONS.length).toBeLessThanOrEqual(2);
  });

  it('rejects versions outside the supported set (0, future 2, 255)', () => {
    expect(isSupportedVersion(PROTOCOL_VERSION)).toBe(true);
    for (const v of [0, PROTOCOL_VERSION + 1, 255]) expect(isSupportedVersion(v)).toBe(false);
  });

  it('every version up to the current one is documented', () => {
    for (let v = 1; v <= PROTOCOL_VERSION; v++) expect(VERSION_HISTORY[v]).toBeTruthy();
  });
});
