/**
 * SECURITY.md names, for each threat, the tests that prove the mechanism against it. A renamed
 * or deleted test must not leave the table pointing at nothing: every quoted test name (a
 * trailing "…" marks a prefix) must occur in the test file it is listed with.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('../../', import.meta.url).pathname;
const table = readFileSync(join(ROOT, 'SECURITY.md'), 'utf8')
  .split('\n')
  .filter((line) => line.startsWith('| ') && !line.startsWith('| plane') && !/^\|[\s|-]+$/.test(line));

/** Every test file under test/, by base name (the table names files by base name or path). */
const files = new Map<string, string>();
for (const dir of ['test/unit', 'test/integration']) {
  const walk = (path: string): void => {
    for (const entry of readdirSync(join(ROOT, path), { withFileTypes: true })) {
      const child = join(path, entry.name);
      if (entry.isDirectory()) walk(child);
      else if (entry.name.endsWith('.test.ts')) files.set(entry.name, readFileSync(join(ROOT, child), 'utf8'));
    }
  };
  walk(dir);
}

/** `file.test.ts` › "name", "name" pairs of one table cell. */
function citations(cell: string): { file: string; name: string }[] {
  const found: { file: string; name: string }[] = [];
  for (const part of cell.split(/;\s*(?=`)/)) {
    const file = /`(?:[\w/.-]*\/)?([\w.-]+\.test\.ts)`/.exec(part)?.[1];
    if (!file) continue;
    for (const match of part.matchAll(/"([^"]+)"/g)) found.push({ file, name: match[1]! });
  }
  return found;
}

describe('SECURITY.md', () => {
  const cited = table.flatMap((line) => citations(line.split(' | ').at(-1) ?? ''));

  it('cites at least one test for every row of the threat table', () => {
    expect(table.length).toBeGreaterThan(8);
    for (const line of table) expect(citations(line.split(' | ').at(-1) ?? ''), line).not.toEqual([]);
  });

  it.each(cited.map((c) => [c.file, c.name]))('%s has a test named "%s"', (file, name) => {
    const source = files.get(file);
    expect(source, `no test file ${file}`).toBeDefined();
    const prefix = name.replace(/\s*…$/, '');
    // describe.each titles carry a %s where the table names one instance.
    const candidates = [prefix, prefix.replace(/\((precopy|postcopy)\)$/, '(%s)')];
    expect(
      candidates.some((text) => source!.includes(text)),
      `${file} has no test "${name}"`,
    ).toBe(true);
  });
});
