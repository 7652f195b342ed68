/**
 * Which commands the audit log records, and how: state-changing ones with who, what (tickets
 * replaced by their ids), and how they ended — the reply only after the entry is written — and
 * nothing at all runs while the log cannot record it.
 */
import { describe, expect, it, vi } from 'vitest';
import { MigrationError } from '@livemig/shared';
import { AUDITED_COMMANDS, auditedHandlers, type AuditLog } from '@livemig/agent';
import type { CommandHandlers } from '@livemig/shared/control';
import { ticketIdOf, type AuditBody } from '@livemig/shared/security';

const caller = { caller: { name: 'alice', role: 'operator' as const } };

function fakeLog(failure?: MigrationError): { log: AuditLog; bodies: AuditBody[]; append: ReturnType<typeof vi.fn> } {
  const bodies: AuditBody[] = [];
  const append = vi.fn(async (body: AuditBody) => {
    bodies.push(body);
    return {} as never;
  });
  return { log: { failure, append } as unknown as AuditLog, bodies, append };
}

describe('auditedHandlers', () => {
  it('classes every state-changing command as audited, and no query', () => {
    const audited = Object.entries(AUDITED_COMMANDS)
      .filter(([, yes]) => yes)
      .map(([name]) => name);
    expect(audited.sort()).toEqual(
      [
        'cont',
        'create-vm',
        'destroy-vm',
        'migrate',
        'migrate-cancel',
        'migrate-resume',
        'migrate-start-postcopy',
        'prepare-incoming',
        'stop',
      ].sort(),
    );
  });

  it('records who, what and the result — the ticket only as its id — before the reply', async () => {
    const { log, bodies } = fakeLog();
    const ticket = 'T'.repeat(43);
    const handlers = auditedHandlers(
      {
        'prepare-incoming': ({ vm, from }) => ({ ticket, vm, from, expiresAt: 1 }),
        'query-vms': () => ({ vms: [] }),
      },
      log,
    );
    const result = await handlers['prepare-incoming']!({ vm: 'vm1', from: 'agent-a' }, caller);
    expect(result.ticket).toBe(ticket); // the caller gets the ticket; the log does not
    await handlers['query-vms']!({}, caller);
    expect(bodies).toEqual([
      {
        kind: 'command',
        caller: { name: 'alice', role: 'operator' },
        command: 'prepare-incoming',
        args: { vm: 'vm1', from: 'agent-a' },
        result: { ok: { ticketId: ticketIdOf(ticket), vm: 'vm1', from: 'agent-a', expiresAt: 1 } },
      },
    ]);
  });

  it('records a failing command with its error, and still fails it with that error', async () => {
    const { log, bodies } = fakeLog();
    const refused = new MigrationError('ERR_VM_STATE', 'not running');
    const handlers = auditedHandlers({ stop: () => Promise.reject(refused) } as CommandHandlers, log);
    await expect(handlers.stop!({ vm: 'vm1' }, { caller: null })).rejects.toBe(refused);
    expect(bodies[0]).toMatchObject({ caller: null, command: 'stop', result: { error: { code: 'ERR_VM_STATE' } } });
  });

  it('refuses a state-changing command before it runs while the log is failed', async () => {
    const { log } = fakeLog(new MigrationError('ERR_AUDIT', 'disk full'));
    const stop = vi.fn();
    const handlers = auditedHandlers({ stop, 'query-vms': () => ({ vms: [] }) } as CommandHandlers, log);
    await expect(handlers.stop!({ vm: 'vm1' }, caller)).rejects.toMatchObject({
      code: 'ERR_AUDIT',
      message: expect.stringMatching(/refused "stop": .*disk full/),
    });
    expect(stop).not.toHaveBeenCalled();
    expect(handlers['query-vms']!({}, caller)).toEqual({ vms: [] }); // queries pass untouched
  });

  it('a command that ran but could not be recorded answers ERR_AUDIT saying it ran', async () => {
    const { log, append } = fakeLog();
    append.mockRejectedValueOnce(new MigrationError('ERR_AUDIT', 'ENOSPC'));
    const handlers = auditedHandlers({ stop: () => ({ name: 'vm1' }) } as unknown as CommandHandlers, log);
    await expect(handlers.stop!({ vm: 'vm1' }, caller)).rejects.toMatchObject({
      code: 'ERR_AUDIT',
      message: expect.stringMatching(/"stop" ran but the audit log could not record it: ENOSPC/),
    });
  });
});
