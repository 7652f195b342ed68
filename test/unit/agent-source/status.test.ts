import { describe, expect, it } from 'vitest';
import {
  SOURCE_OWNS_VM,
  SOURCE_PAST_HANDOFF,
  SOURCE_TRANSITIONS,
  type SourceStatus,
} from '../../../agent-source/src/migration/status.ts';

describe('the source state machine', () => {
  it('reaches every status from none', () => {
    const seen = new Set<SourceStatus>(['none']);
    const frontier: SourceStatus[] = ['none'];
    while (frontier.length) {
      for (const next of SOURCE_TRANSITIONS[frontier.pop()!]) {
        if (!seen.has(next)) {
          seen.add(next);
          frontier.push(next);
        }
      }
    }
    expect([...seen].sort()).toEqual(Object.keys(SOURCE_TRANSITIONS).sort());
  });

  it('may cancel only where it owns the VM, and may fail from every phase that is not final', () => {
    for (const [status, next] of Object.entries(SOURCE_TRANSITIONS) as Array<[SourceStatus, readonly SourceStatus[]]>) {
      expect(next.includes('cancelled')).toBe(SOURCE_OWNS_VM.includes(status));
      expect(next.includes('failed')).toBe(SOURCE_OWNS_VM.includes(status) || SOURCE_PAST_HANDOFF.includes(status));
    }
  });
});
