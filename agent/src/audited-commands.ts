/**
 * Which control commands the audit log records, and the wrapper that records them. Hooked at
 * the daemon's handler table rather than in ControlServer, so an entry holds the result: who
 * (the verified caller), what (the command and its arguments, tickets replaced by their ids),
 * when, and how it ended — and the reply waits until that entry is fsynced.
 *
 * A state-changing command the role check refused never reaches a handler: ControlServer calls
 * `refusalRecorder` for it, so the attempt and who made it are in the log before the refusal is
 * answered. A command is refused *before* it runs when the log has failed, so nothing changes
 * unrecorded.
 */
import { MigrationError, toMigrationError } from '@livemig/shared';
import type { CommandContext, CommandHandlers, CommandName } from '@livemig/shared/control';
import { redactTickets } from '@livemig/shared/security';
import type { AuditLog } from './audit-log.ts';

/**
 * Every control command, and whether it changes state (and so is audited). A `Record` over
 * CommandName: a command added to the control API does not typecheck until it is classed here.
 */
export const AUDITED_COMMANDS: Readonly<Record<CommandName, boolean>> = {
  'query-vms': false,
  'query-migrate': false,
  'query-report': false,
  'query-dirty-rate': false,
  digest: false,
  'create-vm': true,
  'destroy-vm': true,
  stop: true,
  cont: true,
  migrate: true,
  'prepare-incoming': true,
  'migrate-cancel': true,
  'migrate-start-postcopy': true,
  'migrate-resume': true,
};

type AnyHandler = (args: unknown, context: CommandContext) => unknown;

/** `handlers` with every state-changing command recorded in `audit` (fsynced before its reply). */
export function auditedHandlers(handlers: CommandHandlers, audit: AuditLog): CommandHandlers {
  const wrapped: Record<string, AnyHandler> = {};
  for (const [name, handler] of Object.entries(handlers) as Array<[CommandName, AnyHandler | undefined]>) {
    if (!handler) continue;
    wrapped[name] = AUDITED_COMMANDS[name] ? audited(name, handler, audit) : handler;
  }
  return wrapped as CommandHandlers;
}

/**
 * ControlServer's onRefused: record a state-changing command the role check refused (who tried
 * what, ERR_FORBIDDEN). Queries and unknown names are not recorded: an attempt to look changes
 * nothing, and an unknown name is no command (the log must not grow with junk at a client's pace).
 */
export function refusalRecorder(
  audit: AuditLog,
): (refusal: {
  caller: { name: string; role: string };
  command: string;
  args: unknown;
  error: MigrationError;
}) => Promise<void> {
  return async ({ caller, command, args, error }) => {
    if (!Object.hasOwn(AUDITED_COMMANDS, command) || !AUDITED_COMMANDS[command as CommandName]) return;
    await audit.append({
      kind: 'command',
      caller: { name: caller.name, role: caller.role },
      command,
      args: redactTickets(args ?? {}),
      result: { error: error.toJSON() },
    });
  };
}

function audited(command: CommandName, handler: AnyHandler, audit: AuditLog): AnyHandler {
  return async (args, context) => {
    if (audit.failure) {
      throw new MigrationError(
        'ERR_AUDIT',
        `refused "${command}": the audit log cannot record it (${audit.failure.message})`,
      );
    }
    let outcome: { ok: true; value: unknown } | { ok: false; error: unknown };
    try {
      outcome = { ok: true, value: await handler(args, context) };
    } catch (error) {
      outcome = { ok: false, error };
    }
    try {
      await audit.append({
        kind: 'command',
        caller: context.caller ? { name: context.caller.name, role: context.caller.role } : null,
        command,
        args: redactTickets(args ?? {}),
        result: outcome.ok
          ? { ok: redactTickets(outcome.value ?? null) }
          : { error: toMigrationError(outcome.error).toJSON() },
      });
    } catch (error) {
      throw new MigrationError(
        'ERR_AUDIT',
        `"${command}" ${outcome.ok ? 'ran' : 'failed'} but the audit log could not record it: ${toMigrationError(error).message}`,
        { cause: error },
      );
    }
    if (!outcome.ok) throw outcome.error;
    return outcome.value;
  };
}
