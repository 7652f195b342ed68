/**
 * `livemig pki` through the real CLI (node bin/livemig.mjs, a child process): init, issue, show
 * (human and --json), and the stable `livemig: ERR_CODE: message` lines with their exit codes —
 * 2 for bad input, 1 for a refused operation (an existing CA is never overwritten).
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, stopAll } from '../helpers/processes.ts';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'livemig-pki-cli-'));
});

afterAll(async () => {
  await stopAll();
  await rm(dir, { recursive: true, force: true });
});

describe('livemig pki', () => {
  it('init, issue, show: files with the right modes, the role and fingerprint printed', async () => {
    const init = await runCli(['pki', 'init', '--dir', dir]);
    expect(init.stderr).toBe('');
    expect(init.code).toBe(0);
    expect(init.stdout).toMatch(/fleet CA written to/);
    expect((await stat(join(dir, 'ca-key.pem'))).mode & 0o777).toBe(0o600);

    const issue = await runCli(['pki', 'issue', '--dir', dir, '--name', 'alice', '--role', 'operator', '--days', '30']);
    expect(issue.stderr).toBe('');
    expect(issue.code).toBe(0);
    expect(issue.stdout).toMatch(/^role +operator$/m);
    expect((await stat(join(dir, 'alice-key.pem'))).mode & 0o777).toBe(0o600);

    // Each check is a livemig process: those that only read run together (two cores).
    const [show, human] = await Promise.all([
      runCli(['pki', 'show', join(dir, 'alice.pem'), '--json']),
      runCli(['pki', 'show', join(dir, 'alice.pem')]),
    ]);
    expect(show.code).toBe(0);
    const identity = JSON.parse(show.stdout) as Record<string, unknown>;
    expect(identity).toMatchObject({ name: 'alice', role: 'operator', ca: false, altNames: ['dns:alice'] });
    expect(identity.fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(identity.issuer).toMatch(/^CN=livemig fleet CA /);
    const days = (Date.parse(identity.notAfter as string) - Date.now()) / 86_400_000;
    expect(days).toBeCloseTo(30, 1);
    expect(human.stdout).toContain(`sha256     ${identity.fingerprint as string}`);
  });

  it('bad input: exit 2 and livemig: ERR_INVALID_ARGUMENT', async () => {
    const cases = [
      ['--name', '../evil', '--role', 'agent'],
      ['--name', 'bob', '--role', 'root'],
      ['--name', 'bob', '--role', 'agent', '--days', 'soon'],
      ['--name', 'bob', '--role', 'agent', '--days', '0'],
    ];
    // Refused as the command line is read, so nothing they share is touched: run together.
    const runs = await Promise.all(cases.map((args) => runCli(['pki', 'issue', '--dir', dir, ...args])));
    runs.forEach((run, i) => {
      expect(run.code, cases[i]!.join(' ')).toBe(2);
      expect(run.stderr).toMatch(/^livemig: ERR_INVALID_ARGUMENT: /);
    });
  });

  it('a second init is refused (ERR_PKI, exit 1); show of a non-certificate is ERR_CERTIFICATE', async () => {
    const [again, key] = await Promise.all([
      runCli(['pki', 'init', '--dir', dir]),
      runCli(['pki', 'show', join(dir, 'alice-key.pem')]),
    ]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^livemig: ERR_PKI: .*ca\.pem already exists/);
    expect(key.code).toBe(1);
    expect(key.stderr).toMatch(/^livemig: ERR_CERTIFICATE: /);
  });

  it('--help lists the subcommands and the roles', async () => {
    const help = await runCli(['pki', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/init/);
    expect(help.stdout).toMatch(/issue/);
    expect(help.stdout).toMatch(/show/);
    expect(help.stdout).toMatch(/viewer, operator, agent, admin/);
  });
});
