/**
 * Where an agent keeps its state — its audit log and the disk images of its VMs — from
 * `--state-dir` and `--audit-log`.
 * An agent with an identity (--pki/--name) always keeps an audit log, by default in
 * `$XDG_STATE_HOME/livemig/NAME/audit.log` (`~/.local/state/livemig/NAME/…` without
 * XDG_STATE_HOME): one directory per identity, so two agents on one host never share a log.
 * An agent without one keeps a log only when told where: it has no key to sign entries with and
 * its callers are anonymous, and plaintext agents are loopback experiments that would otherwise
 * all write to one default place. Disk images (`STATE-DIR/disks/NAME.img`) follow the same rule:
 * an agent with neither --state-dir nor an identity keeps each VM's image in a temporary
 * directory of its own — unless `--disk-dir` names their directory, which comes first: two agents
 * given the same directory on shared storage (an NFS mount, a compose volume) migrate disks with
 * `--storage shared`, the destination opening the image the source closed (libvirt's model).
 */
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import type { Command } from 'commander';
import type { LoadedPki } from '@livemig/shared/security';

export interface AuditFlags {
  stateDir?: string;
  auditLog?: string;
  diskDir?: string;
}

/** The audit log's file name inside a state directory. */
export const AUDIT_LOG_FILE = 'audit.log';

/** Add --state-dir, --audit-log and --disk-dir. */
export function addAuditOptions(command: Command): Command {
  return command
    .option(
      '--state-dir <dir>',
      "where this agent keeps its state (its audit log, its VMs' disk images in disks/); default with --pki: $XDG_STATE_HOME/livemig/NAME, else ~/.local/state/livemig/NAME",
    )
    .option(
      '--audit-log <file>',
      'the audit log: every state-changing command and migration record, hash-chained, signed with the ' +
        "agent's key, fsynced before the reply (default: STATE-DIR/audit.log; without --pki only when this or --state-dir is given)",
    )
    .option(
      '--disk-dir <dir>',
      "where this agent keeps its VMs' disk images, NAME.img (default: STATE-DIR/disks; without --pki or " +
        '--state-dir a temporary directory per VM); for `migrate --storage shared` give both agents the same ' +
        'directory on shared storage',
    );
}

/** The default state directory of the agent named `name`. */
export function defaultStateDir(name: string, env: NodeJS.ProcessEnv = process.env, home = homedir()): string {
  const xdg = env.XDG_STATE_HOME;
  return join(xdg && isAbsolute(xdg) ? xdg : join(home, '.local', 'state'), 'livemig', name);
}

/** The disk images' directory inside a state directory. */
export const DISKS_DIR = 'disks';

/**
 * The daemon's `diskDir` option from the flags: --disk-dir, else STATE-DIR/disks, else none
 * (a temporary directory per VM) for an agent without a state directory.
 */
export function diskDirFromFlags(flags: AuditFlags, pki: LoadedPki | undefined): { diskDir?: string } {
  if (flags.diskDir !== undefined) return { diskDir: flags.diskDir };
  if (flags.stateDir !== undefined) return { diskDir: join(flags.stateDir, DISKS_DIR) };
  return pki ? { diskDir: join(defaultStateDir(pki.identity.name), DISKS_DIR) } : {};
}

/** The daemon's `auditLog` option from the flags (none for an agent without an identity unless asked). */
export function auditFromFlags(flags: AuditFlags, pki: LoadedPki | undefined): { auditLog?: string } {
  if (flags.auditLog !== undefined) return { auditLog: flags.auditLog };
  if (flags.stateDir !== undefined) return { auditLog: join(flags.stateDir, AUDIT_LOG_FILE) };
  return pki ? { auditLog: join(defaultStateDir(pki.identity.name), AUDIT_LOG_FILE) } : {};
}
