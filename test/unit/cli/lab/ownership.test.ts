/**
 * Whose lab is whose (cli/lab/ownership.ts): the mark round-trips, anything else is no mark,
 * the owner is the sudo caller, and which namespaces `lab down` (mine), `lab down --all` and a
 * new lab (stale) remove.
 */
import { describe, expect, it } from 'vitest';
import {
  formatMark,
  labOwner,
  namespacesToRemove,
  parseMark,
  type LabMark,
  type MarkedNamespace,
} from '../../../../cli/lab/ownership.ts';

describe('the mark', () => {
  it('round-trips', () => {
    const mark: LabMark = { lab: 'lmp1a2bx3c', owner: '1000', pid: 4242, persistent: true };
    expect(formatMark(mark)).toBe('livemig-lab v1 lab=lmp1a2bx3c owner=1000 pid=4242 kind=persistent');
    expect(parseMark(formatMark(mark))).toEqual(mark);
    expect(parseMark(formatMark({ ...mark, persistent: false }))).toEqual({ ...mark, persistent: false });
  });

  it.each([undefined, '', 'lo', 'livemig-lab', 'livemig-lab v2 lab=x owner=0 pid=1 kind=run', 'livemig-lab v1 lab=x'])(
    '%j is no mark',
    (alias) => {
      expect(parseMark(alias)).toBeUndefined();
    },
  );
});

describe('labOwner', () => {
  it('is the sudo caller under sudo, else the uid', () => {
    expect(labOwner({ SUDO_UID: '1000' }, 0)).toBe('1000');
    expect(labOwner({}, 0)).toBe('0');
    expect(labOwner({ SUDO_UID: 'x' }, 1001)).toBe('1001');
  });
});

describe('namespacesToRemove', () => {
  const ns = (name: string, owner: string, pid: number, persistent: boolean): MarkedNamespace => ({
    ns: name,
    mark: { lab: name, owner, pid, persistent },
  });
  const found = [
    ns('mine-up', '1000', 10, true),
    ns('mine-running', '1000', 11, false),
    ns('mine-crashed', '1000', 12, false),
    ns('theirs-up', '2000', 20, true),
    ns('theirs-crashed', '2000', 22, false),
  ];
  const alive = (pid: number): boolean => pid === 11;
  const names = (entries: MarkedNamespace[]): string[] => entries.map((e) => e.ns);

  it("lab down: the owner's labs left up and crashed, not a running one, never another user's", () => {
    expect(names(namespacesToRemove(found, { kind: 'mine', owner: '1000' }, alive))).toEqual([
      'mine-up',
      'mine-crashed',
    ]);
  });

  it('lab down --all: every marked one', () => {
    expect(names(namespacesToRemove(found, { kind: 'all' }, alive))).toEqual(names(found));
  });

  it("a new lab: only the owner's crashed ones", () => {
    expect(names(namespacesToRemove(found, { kind: 'stale', owner: '1000' }, alive))).toEqual(['mine-crashed']);
    expect(names(namespacesToRemove(found, { kind: 'stale', owner: '3000' }, alive))).toEqual([]);
  });
});
