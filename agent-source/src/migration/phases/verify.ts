/**
 * Verification at the source: the destination's digests — each computed there, from what it
 * loaded — against ours, computed here from what we sent. Recorded as they are, both sides, and
 * a mismatch in any section (memory, CPU, devices) fails the migration with the sections named.
 */
import { MigrationError } from '@livemig/shared';
import { mismatchedSections } from '@livemig/shared/vm';
import type { MigrationContext } from '../context.ts';

export function checkDigests(
  ctx: MigrationContext,
  dest: Readonly<Record<string, string>>,
  names: readonly string[],
): void {
  Object.assign(ctx.verify.dest, dest);
  const bad = mismatchedSections(ctx.verify.source, dest, names);
  if (bad.length) {
    const detail = bad.map(
      (name) => `${name}: destination ${dest[name] ?? 'none'} ≠ source ${ctx.verify.source[name] ?? 'none'}`,
    );
    throw new MigrationError('ERR_DIGEST_MISMATCH', `digests differ — ${detail.join('; ')}`);
  }
}
