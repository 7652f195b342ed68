/**
 * authorize(): every (role, command) pair of the control API against the table of issue 12,
 * written out here independently of roles.ts, plus cont with and without force and the commands
 * that do not exist (default deny).
 */
import { describe, expect, it } from 'vitest';
import { COMMAND_ROLES, ROLES, authorize, isRole, type Role } from '../../../../shared/src/security/roles.ts';

type Row = [command: string, args: unknown, allowed: Record<Role, boolean>];

const none = { agent: false, viewer: false, operator: false, admin: false };
const viewerUp = { agent: false, viewer: true, operator: true, admin: true };
const operatorUp = { agent: false, viewer: false, operator: true, admin: true };
const adminOnly = { agent: false, viewer: false, operator: false, admin: true };

const TABLE: Row[] = [
  ['query-vms', {}, viewerUp],
  ['query-migrate', {}, viewerUp],
  ['query-migrate', { migrationId: 'm1' }, viewerUp],
  ['query-report', { migrationId: 'm1' }, viewerUp],
  ['query-dirty-rate', { vm: 'a' }, viewerUp],
  ['query-dirty-rate', { vm: 'a', calcTimeMs: 60_000, samplePagesPerGiB: 16_384 }, viewerUp],
  ['stop', { vm: 'a' }, operatorUp],
  ['cont', { vm: 'a' }, operatorUp],
  ['cont', { vm: 'a', force: false }, operatorUp],
  ['cont', { vm: 'a', force: undefined }, operatorUp],
  ['cont', { vm: 'a', force: true }, adminOnly],
  ['cont', { vm: 'a', force: 'yes' }, adminOnly],
  ['cont', { vm: 'a', force: 1 }, adminOnly],
  ['cont', undefined, operatorUp],
  ['migrate', { vm: 'a', to: '127.0.0.1:7070' }, operatorUp],
  ['prepare-incoming', { vm: 'a', from: 'src-a' }, operatorUp],
  ['migrate-cancel', {}, operatorUp],
  ['migrate-start-postcopy', {}, operatorUp],
  ['migrate-resume', {}, operatorUp],
  ['create-vm', { name: 'a', memory: '1MiB' }, adminOnly],
  ['destroy-vm', { vm: 'a' }, adminOnly],
  ['digest', { vm: 'a' }, adminOnly],
  // Not commands of the control API: denied to everyone.
  ['status', {}, none],
  ['query-secrets', {}, none],
  ['constructor', {}, none],
  ['toString', {}, none],
  ['__proto__', {}, none],
  ['hasOwnProperty', {}, none],
  ['', {}, none],
  ['QUERY-VMS', {}, none],
];

describe('authorize', () => {
  const cases = TABLE.flatMap(([command, args, allowed]) =>
    ROLES.map((role) => ({ role, command, args, allowed: allowed[role] })),
  );

  it.each(cases)('$role $command $args → allowed $allowed', ({ role, command, args, allowed }) => {
    const result = authorize(role, command, args);
    if (allowed) {
      expect(result).toEqual({ allowed: true });
    } else {
      expect(result).toMatchObject({ allowed: false, code: 'ERR_FORBIDDEN' });
      expect(result.allowed === false && result.reason.length > 0).toBe(true);
    }
  });

  it('the table above covers every command of the control API', () => {
    const tested = new Set(TABLE.map(([command]) => command));
    for (const command of Object.keys(COMMAND_ROLES)) expect(tested.has(command), command).toBe(true);
    expect(Object.keys(COMMAND_ROLES).sort()).toEqual(
      [
        'cont',
        'create-vm',
        'destroy-vm',
        'digest',
        'migrate',
        'migrate-cancel',
        'migrate-resume',
        'migrate-start-postcopy',
        'prepare-incoming',
        'query-dirty-rate',
        'query-migrate',
        'query-report',
        'query-vms',
        'stop',
      ].sort(),
    );
  });

  it('every query-* command is open to viewers', () => {
    for (const command of Object.keys(COMMAND_ROLES).filter((name) => name.startsWith('query-'))) {
      expect(authorize('viewer', command, {}), command).toEqual({ allowed: true });
    }
  });

  it('says why: the role, the command and what it needs', () => {
    expect(authorize('operator', 'cont', { vm: 'a', force: true })).toEqual({
      allowed: false,
      code: 'ERR_FORBIDDEN',
      reason: 'role operator may not run cont with force (needs admin)',
    });
    expect(authorize('viewer', 'migrate', {})).toMatchObject({
      reason: 'role viewer may not run migrate (needs operator)',
    });
    expect(authorize('admin', 'constructor', {})).toMatchObject({ reason: 'unknown command "constructor"' });
  });

  it('denies a role that is not one (untrusted certificate field)', () => {
    for (const role of ['root', '', 'Admin', 'constructor', undefined, null]) {
      expect(authorize(role as Role, 'query-vms', {})).toMatchObject({ allowed: false, code: 'ERR_FORBIDDEN' });
    }
  });
});

describe('isRole', () => {
  it.each([
    ['agent', true],
    ['viewer', true],
    ['operator', true],
    ['admin', true],
    ['root', false],
    ['toString', false],
    [7, false],
    [null, false],
  ])('%s → %s', (value, expected) => {
    expect(isRole(value)).toBe(expected);
  });
});
