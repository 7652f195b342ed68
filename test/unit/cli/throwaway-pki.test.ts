/**
 * The throwaway PKI (cli/throwaway-pki.ts) holds a CA key in /tmp: it is removed by remove(),
 * and by process exit when a run ends early (process.exit skips every `finally`).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createThrowawayPki } from '../../../cli/throwaway-pki.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MODULE = new URL('../../../cli/throwaway-pki.ts', import.meta.url).href;

describe('throwaway PKI', () => {
  it('remove() deletes the directory, CA key included', async () => {
    const pki = await createThrowawayPki([{ name: 'op', role: 'operator' }]);
    expect(existsSync(`${pki.dir}/ca-key.pem`)).toBe(true);
    await pki.remove();
    expect(existsSync(pki.dir)).toBe(false);
  });

  it('a process that exits early (process.exit, its finally never run) leaves no directory behind', () => {
    const script = `const { createThrowawayPki } = await import(${JSON.stringify(MODULE)});
      const pki = await createThrowawayPki([{ name: 'op', role: 'operator' }]);
      const { existsSync } = await import('node:fs');
      console.log(pki.dir, existsSync(pki.dir + '/ca-key.pem'));
      try { process.exit(130); } finally { await pki.remove(); }`;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(child.stderr).toBe('');
    expect(child.status).toBe(130);
    const [dir, existed] = child.stdout.trim().split(' ');
    expect(existed).toBe('true');
    expect(dir).toMatch(/livemig-pki-/);
    expect(existsSync(dir!)).toBe(false);
  });
});
