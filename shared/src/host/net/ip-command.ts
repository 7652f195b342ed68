/**
 * Running iproute2's `ip`: this module owns how livemig runs it — directly (no shell), in the
 * current network namespace (the agent runs inside its host's namespace or container, and so
 * does everything it starts), each command logged at debug, and every failure an ERR_ADDRESS
 * that names the command and what `ip` said.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { MigrationError, toMigrationError } from '../../errors.ts';

const execFileAsync = promisify(execFile);

/** What `ip` says about a link that is not there (`ip link show|del|set`). */
const NO_SUCH_LINK = /does not exist|Cannot find device/;

/** Runs `ip …` and resolves with its stdout; a failure is ERR_ADDRESS naming the command and what it said. */
export async function runIp(args: readonly string[], logger?: Logger): Promise<string> {
  logger?.debug({ event: 'address.command', command: ['ip', ...args].join(' ') });
  try {
    const { stdout } = await execFileAsync('ip', args, { encoding: 'utf8' });
    return stdout;
  } catch (error) {
    const { code, stderr } = error as { code?: unknown; stderr?: string };
    const said =
      code === 'ENOENT' ? 'ip (iproute2) is not installed' : stderr?.trim() || toMigrationError(error).message;
    throw new MigrationError('ERR_ADDRESS', `\`ip ${args.join(' ')}\` failed: ${said}`, { cause: error });
  }
}

/** True if `error` is runIp()'s failure for a link that does not exist. */
export function isNoSuchLink(error: unknown): boolean {
  return error instanceof MigrationError && NO_SUCH_LINK.test(error.message);
}
