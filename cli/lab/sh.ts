/** Running the lab's system commands (ip, tc, nft): synchronous, with the command in the error. */
import { execFileSync } from 'node:child_process';
import { MigrationError } from '@livemig/shared';

/** Run a command; returns stdout. Throws ERR_INTERNAL naming the command and its stderr. */
export function sh(command: string, ...args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new MigrationError('ERR_INTERNAL', `lab: \`${command} ${args.join(' ')}\` failed: ${stderr.trim()}`, {
      cause: error,
    });
  }
}

/** True when the command runs without error (e.g. probing a kernel feature). */
export function succeeds(command: string, ...args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
