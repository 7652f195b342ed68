/**
 * `--allow-source PATTERN`: which source certificate names may migrate VMs into this agent. A
 * pattern is a glob over the whole name (`*` any run of characters, `?` one character, nothing
 * else special); a name is allowed when any pattern matches. No patterns: nobody (default deny).
 */
import { MigrationError } from '@livemig/shared';

export function allowSourceMatcher(patterns: readonly string[]): (name: string) => boolean {
  const compiled = patterns.map((pattern) => {
    if (pattern === '' || pattern.length > 253) {
      throw new MigrationError('ERR_INVALID_ARGUMENT', `--allow-source "${pattern}" is not a name pattern`);
    }
    const source = pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.');
    return new RegExp(`^${source}$`);
  });
  return (name) => compiled.some((re) => re.test(name));
}
