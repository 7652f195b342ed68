/**
 * Who may run which control command: the role a client certificate carries, checked against one
 * table keyed by every command of the control API (control/messages.ts). Pure — no I/O, no
 * certificates; the control server asks `authorize()` before it dispatches. Default deny: an
 * unknown role, an unknown command (including inherited names such as "constructor") or the
 * `agent` role (data connections only) is refused with ERR_FORBIDDEN.
 *
 *   viewer    query-vms, query-migrate, query-report, query-dirty-rate   (read only)
 *   operator  + stop, cont (without force), migrate, migrate-cancel,
 *               migrate-start-postcopy, migrate-resume
 *   admin     + create-vm, destroy-vm, cont with force, digest
 *   agent     nothing on the control channel
 */
import type { CommandName } from '../control/messages.ts';

/** The roles a certificate can carry. */
export const ROLES = ['viewer', 'operator', 'agent', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Roles that may use the control channel, weakest first; each may do all the one before may. */
export type ControlRole = Exclude<Role, 'agent'>;

export type Authorization = { allowed: true } | { allowed: false; code: 'ERR_FORBIDDEN'; reason: string };

/** The weakest role a command needs, or a function of its args (for `cont --force`). */
type Requirement = ControlRole | ((args: unknown) => ControlRole);

const RANK: Record<ControlRole, number> = { viewer: 1, operator: 2, admin: 3 };

/**
 * Every control command and the weakest role that may run it. A `Record` over CommandName, so a
 * command added to the control API does not typecheck until it is given a rule here.
 * (Issue 12 also names `status` (viewer); the control API has no such command — `livemig status`
 * uses query-vms and query-migrate — so it is unknown and denied.)
 */
export const COMMAND_ROLES: Readonly<Record<CommandName, Requirement>> = {
  'query-vms': 'viewer',
  'query-migrate': 'viewer',
  'query-report': 'viewer',
  'query-dirty-rate': 'viewer',
  stop: 'operator',
  cont: (args) => (isForced(args) ? 'admin' : 'operator'),
  migrate: 'operator',
  'prepare-incoming': 'operator',
  'migrate-cancel': 'operator',
  'migrate-start-postcopy': 'operator',
  'migrate-resume': 'operator',
  'create-vm': 'admin',
  'destroy-vm': 'admin',
  digest: 'admin',
};

/** True when `value` is one of ROLES (a certificate's role field is untrusted input). */
export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/** May `role` run `command` with `args`? Default deny; `args` are the request's, unchecked. */
export function authorize(role: Role, command: string, args: unknown): Authorization {
  if (!isRole(role)) return forbidden(`unknown role "${String(role)}"`);
  if (!Object.hasOwn(COMMAND_ROLES, command)) return forbidden(`unknown command "${command}"`);
  if (role === 'agent') return forbidden('an agent certificate opens data connections only, no control commands');
  const rule = COMMAND_ROLES[command as CommandName];
  const needed = typeof rule === 'function' ? rule(args) : rule;
  if (RANK[role] >= RANK[needed]) return { allowed: true };
  const what = command === 'cont' && needed === 'admin' ? 'cont with force' : command;
  return forbidden(`role ${role} may not run ${what} (needs ${needed})`);
}

/**
 * Does a `cont` ask for force? Any `force` other than absent or false counts, so a value the
 * handler might read as true one day is never let through at operator level.
 */
function isForced(args: unknown): boolean {
  if (typeof args !== 'object' || args === null || !Object.hasOwn(args, 'force')) return false;
  const force: unknown = (args as { force?: unknown }).force;
  return force !== undefined && force !== false;
}

function forbidden(reason: string): Authorization {
  return { allowed: false, code: 'ERR_FORBIDDEN', reason };
}
