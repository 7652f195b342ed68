/**
 * `livemig run-vm` through the real CLI (node bin/livemig.mjs, a child process): determinism from
 * the shell, the --seconds rate, and exit code 2 with a stable error code for bad input.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const CLI = ['bin/livemig.mjs'];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function livemig(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [...CLI, ...args], { cwd: root, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function json(run: Run): Record<string, unknown> {
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  const lines = run.stdout.trim().split('\n');
  expect(lines.length).toBe(1); // exactly one object
  return JSON.parse(lines[0]!) as Record<string, unknown>;
}

describe('livemig run-vm', () => {
  it('same spec, seed and steps ⇒ same digest and CPU state; another seed ⇒ another digest', async () => {
    const args = [
      'run-vm',
      '--memory',
      '16MiB',
      '--init',
      'random',
      '--workload',
      'uniform:rate=0',
      '--steps',
      '300000',
      '--json',
    ];
    const [a, b, c] = await Promise.all([
      livemig(...args, '--seed', '7'),
      livemig(...args, '--seed', '7'),
      livemig(...args, '--seed', '8'),
    ]);
    const ra = json(a);
    const rb = json(b);
    expect(ra).toMatchObject({
      memoryBytes: 16 * 1024 * 1024,
      workload: 'uniform:rate=0',
      init: 'random',
      seed: 7,
      steps: 300000,
    });
    expect(ra.digest).toMatch(/^[0-9a-f]{16}$/);
    expect(rb.digest).toBe(ra.digest);
    expect(rb.cpuState).toBe(ra.cpuState);
    expect(rb.devices).toEqual(ra.devices);
    expect(json(c).digest).not.toBe(ra.digest);
    expect(ra.writeRatePagesPerSec).toBeGreaterThan(0);
  });

  it('--seconds runs at the requested write rate, within 10%', async () => {
    const run = json(
      await livemig(
        'run-vm',
        '--memory',
        '64MiB',
        '--workload',
        'hotset:wss=16MiB,rate=20000',
        '--seconds',
        '2',
        '--json',
      ),
    );
    expect(run.requestedWriteRatePagesPerSec).toBe(20000);
    expect(run.writeRatePagesPerSec).toBeGreaterThan(18000);
    expect(run.writeRatePagesPerSec).toBeLessThan(22000);
    expect(run.steps).toBeGreaterThan(36000);
  });

  it('prints a short table without --json and lists workloads in --help', async () => {
    const [table, help] = await Promise.all([
      livemig('run-vm', '--memory', '4MiB', '--workload', 'sweep:rate=0', '--steps', '1000'),
      livemig('run-vm', '--help'),
    ]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/digest\s+[0-9a-f]{16}/);
    expect(table.stdout).toContain('sweep:rate=0');
    expect(help.code).toBe(0);
    for (const name of ['idle', 'uniform', 'hotset', 'sweep', 'ab', 'wss=', 'rate='])
      expect(help.stdout).toContain(name);
  });

  it('the old name `vm` still runs it, hidden from --help and saying it is deprecated', async () => {
    const args = ['--memory', '4MiB', '--workload', 'sweep:rate=0', '--steps', '1000', '--json'];
    const [old, current, help] = await Promise.all([
      livemig('vm', ...args),
      livemig('run-vm', ...args),
      livemig('--help'),
    ]);
    expect(old.code).toBe(0);
    expect(old.stderr).toBe('livemig: `livemig vm` is deprecated: it is `livemig run-vm` now\n');
    expect((JSON.parse(old.stdout) as { digest: string }).digest).toBe(json(current).digest);
    expect(help.stdout).toMatch(/^ {2}run-vm /m);
    expect(help.stdout).not.toMatch(/^ {2}vm /m);
  });

  // Each case is a CLI process that reads its flags and exits (~0.7 s here, nearly all of it
  // loading modules): they run side by side (at most maxConcurrency, 5, at once), not in turn.
  it.concurrent.for([
    ['both --steps and --seconds', ['--steps', '1', '--seconds', '1'], 'ERR_INVALID_ARGUMENT'],
    ['neither --steps nor --seconds', [], 'ERR_INVALID_ARGUMENT'],
    ['memory below 1MiB', ['--memory', '512KiB', '--steps', '1'], 'ERR_INVALID_SIZE'],
    ['memory above 16GiB', ['--memory', '17GiB', '--steps', '1'], 'ERR_INVALID_SIZE'],
    ['memory not whole pages', ['--memory', '3000KB', '--steps', '1'], 'ERR_INVALID_SIZE'],
    ['unknown workload', ['--workload', 'bitcoin', '--steps', '1'], 'ERR_INVALID_WORKLOAD'],
    ['bad parameter', ['--workload', 'uniform:rate=fast', '--steps', '1'], 'ERR_INVALID_WORKLOAD'],
    ['wss > memory', ['--memory', '4MiB', '--workload', 'hotset:wss=8MiB', '--steps', '1'], 'ERR_INVALID_WORKLOAD'],
    ['bad init', ['--init', 'ones', '--steps', '1'], 'ERR_INVALID_INIT'],
    ['bad seed', ['--seed', '-3', '--steps', '1'], 'ERR_INVALID_ARGUMENT'],
    ['bad steps', ['--steps', 'ten'], 'ERR_INVALID_ARGUMENT'],
    ['kv without a NIC address', ['--workload', 'kv', '--steps', '1'], 'ERR_INVALID_ARGUMENT'],
    [
      'kv, which only steps on network input',
      ['--workload', 'kv', '--nic', '127.0.0.1:7700', '--steps', '1'],
      'ERR_INVALID_ARGUMENT',
    ],
    [
      'a NIC on a workload that does not drive one',
      ['--nic', '127.0.0.1:7700', '--steps', '1'],
      'ERR_INVALID_ARGUMENT',
    ],
  ] as const)('rejects %s: exit 2, code on stderr', async ([, args, code], { expect }) => {
    const run = await livemig('run-vm', ...args);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(`livemig: ${code}: `);
  });
});
