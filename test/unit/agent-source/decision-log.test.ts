import { describe, expect, it } from 'vitest';
import { DecisionLog } from '../../../agent-source/src/migration/sections/ram/decision-log.ts';

describe('DecisionLog', () => {
  it('keeps every line while they fit', () => {
    const log = new DecisionLog(32);
    for (let i = 0; i < 32; i++) log.add(`choice ${i}`);
    expect(log.lines()).toEqual(Array.from({ length: 32 }, (_, i) => `choice ${i}`));
  });

  it('keeps the first and the last lines, at most max in all, and counts those left out', () => {
    const log = new DecisionLog(32);
    for (let i = 0; i < 100; i++) log.add(`choice ${i}`);
    const lines = log.lines();
    expect(lines).toHaveLength(32);
    expect(lines.slice(0, 16)).toEqual(Array.from({ length: 16 }, (_, i) => `choice ${i}`));
    expect(lines[16]).toBe('… 69 choices left out …');
    expect(lines.slice(17)).toEqual(Array.from({ length: 15 }, (_, i) => `choice ${85 + i}`));
    expect(lines.at(-1)).toBe('choice 99');
  });

  it('never shows more than max lines, the gap line included', () => {
    const log = new DecisionLog(5);
    for (let i = 0; i < 6; i++) log.add(`c${i}`);
    expect(log.lines()).toEqual(['c0', 'c1', '… 2 choices left out …', 'c4', 'c5']);
    const one = new DecisionLog(5);
    for (let i = 0; i < 5; i++) one.add(`c${i}`);
    expect(one.lines()).toEqual(['c0', 'c1', 'c2', 'c3', 'c4']);
  });
});
