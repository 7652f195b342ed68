/**
 * `livemig lab` from the command line (issue 14): every prerequisite of a profile named at once,
 * nftables only for a profile with loss, a wrong `lab shape` device as a coded input error, and
 * `lab down` removing only the labs of the user who runs it (`--all`: every livemig lab, never a
 * namespace livemig did not create).
 *
 * The `lab up`/`lab down` runs happen in a sandbox of their own: a mount and network namespace
 * (unshare) with fresh tmpfs on /run/netns and /etc/netns, entered with nsenter. Inside it
 * `ip netns` sees only what this test makes, so `lab down --all` cannot reach anybody else's
 * lab on this machine; killing the sandbox's holder process at the end (or at exit, even after
 * a failure) frees every namespace and link made in it. "Different users" are SUDO_UID values.
 *
 * The prerequisite runs take the tools away with PATH and build nothing. Building needs root and
 * util-linux (unshare, nsenter); elsewhere those tests skip, saying why (in CI as root they fail
 * instead: test/helpers/prerequisites.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH, REPO_ROOT } from '../../cli/agent-process.ts';
import { sh, succeeds } from '../../cli/lab/sh.ts';
import { labUnavailable } from '../../cli/lab/topology.ts';
import { describeWhenAvailable } from '../helpers/prerequisites.ts';
import { stopAll, track } from '../helpers/processes.ts';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run `command` to completion (tracked: stopAll kills it). */
function run(command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  const child = spawn(command, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return new Promise((resolve) => {
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `livemig <args>` with this PATH (the tools it holds are all the CLI finds). */
function livemigWithPath(path: string, args: readonly string[]): Promise<Run> {
  return run(process.execPath, [CLI_PATH, ...args], { ...process.env, PATH: path });
}

/** A directory holding only links to these tools, for PATH. */
function pathWith(dir: string, tools: readonly string[]): string {
  const bin = join(dir, tools.join('-') || 'nothing');
  mkdirSync(bin, { recursive: true });
  for (const tool of tools) symlinkSync(sh('sh', '-c', `command -v ${tool}`).trim(), join(bin, tool));
  return bin;
}

afterEach(stopAll);

describe('lab prerequisites, all at once', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'livemig-lab-path-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('wan without ip, tc and nft: one coded error names all three and installs iproute2 and nftables', async () => {
    const result = await livemigWithPath(pathWith(dir, []), ['lab', 'up', '--profile', 'wan']);
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toMatch(/^livemig: ERR_PREREQUISITE: livemig lab: cannot build a lab shaped to wan here/);
    expect(result.stderr).toMatch(/missing: .*`ip` .*`tc` .*`nft` /);
    expect(result.stderr).toContain('Install with: apt-get install -y iproute2 nftables.');
    expect(result.stderr).not.toMatch(/arping/);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('lan has no loss: no nftables in the error, only iproute2 to install', async () => {
    const result = await livemigWithPath(pathWith(dir, []), ['lab', 'run', '--profile', 'lan', '--memory', '64MiB']);
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toMatch(/missing: .*`ip` .*`tc` /);
    expect(result.stderr).toMatch(/Install with: apt-get install -y iproute2(\.|$)/m);
    expect(result.stderr).not.toMatch(/nft|arping/);
  });

  it('lab down needs ip only among the tools', async () => {
    const result = await livemigWithPath(pathWith(dir, []), ['lab', 'down']);
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toMatch(/Install with: apt-get install -y iproute2(\.|$)/m);
    expect(result.stderr).not.toMatch(/`tc`|nft|arping/);
  });
});

const sandboxUnavailable =
  labUnavailable() ??
  (succeeds('unshare', '--version') && succeeds('nsenter', '--version')
    ? undefined
    : 'util-linux unshare and nsenter are not installed');

describeWhenAvailable('lab shape and lab down, as root', sandboxUnavailable, () => {
  let dir: string;
  let holder: ChildProcess | undefined;
  const killHolder = (): void => {
    holder?.kill('SIGKILL');
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'livemig-lab-path-'));
    // The mount points the sandbox's tmpfs go on (ip netns and the lab use them anyway).
    mkdirSync('/run/netns', { recursive: true });
    mkdirSync('/etc/netns', { recursive: true });
    const script =
      'mount -t tmpfs livemig-test /run/netns && mount -t tmpfs livemig-test /etc/netns && ' +
      'ip link set lo up && echo ready && exec sleep infinity';
    // unshare execs sh in place: holder.pid is the process whose namespaces nsenter enters.
    holder = spawn('unshare', ['--mount', '--net', '--propagation', 'private', 'sh', '-c', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    process.once('exit', killHolder);
    const child = holder;
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', (line) =>
        line === 'ready' ? resolve() : reject(new Error(`sandbox: ${line}`)),
      );
      child.once('exit', (code) => reject(new Error(`sandbox exited ${code}`)));
    });
  });

  afterAll(() => {
    // The sandbox's namespaces, links and tmpfs all go with its last process.
    killHolder();
    process.off('exit', killHolder);
    rmSync(dir, { recursive: true, force: true });
  });

  /** Run a command inside the sandbox, as the user with uid `owner` (SUDO_UID). */
  const inSandbox = (args: readonly string[], owner = '0'): Promise<Run> =>
    run('nsenter', ['-t', String(holder!.pid), '-m', '-n', '--', ...args], { ...process.env, SUDO_UID: owner });
  const livemig = (args: readonly string[], owner?: string): Promise<Run> =>
    inSandbox([process.execPath, CLI_PATH, ...args], owner);
  const namespaces = async (): Promise<string[]> => {
    const listed = await inSandbox(['ip', 'netns', 'list']);
    expect(listed.code, listed.stderr).toBe(0);
    return listed.stdout
      .split('\n')
      .map((line) => line.split(' ')[0] ?? '')
      .filter(Boolean)
      .sort();
  };
  /** `lab up --profile lan` as `owner`: the lab's namespaces. */
  const labUp = async (owner: string): Promise<string[]> => {
    const before = new Set(await namespaces());
    const up = await livemig(['lab', 'up', '--profile', 'lan'], owner);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toMatch(/dest\s+namespace lmp/);
    expect(up.stdout).toContain(`as uid ${owner}, its owner`);
    const made = (await namespaces()).filter((ns) => !before.has(ns));
    expect(made).toHaveLength(3);
    return made;
  };

  it('lan shapes without nftables; a device that does not exist is a coded input error (exit 2)', async () => {
    const result = await livemigWithPath(pathWith(dir, ['ip', 'tc']), [
      'lab',
      'shape',
      '--dev',
      'lmnosuch0',
      '--profile',
      'lan',
    ]);
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toMatch(/^livemig: ERR_INVALID_ARGUMENT: --dev "lmnosuch0": no such device/);
    const badName = await livemigWithPath(process.env.PATH ?? '', ['lab', 'shape', '--dev', 'a/b', '--profile', 'lan']);
    expect(badName.code, badName.stderr).toBe(2);
    expect(badName.stderr).toMatch(/^livemig: ERR_INVALID_ARGUMENT: --dev "a\/b" is not a network device name/);
  });

  it("lab down removes its user's labs only; --all every livemig lab, never a namespace livemig did not create", async () => {
    // Not livemig's: one with a lab-like name (no mark), one with a name of its own.
    const foreign = ['lmp1x1br', 'someone-elses-ns'];
    for (const ns of foreign) {
      const add = await inSandbox(['ip', 'netns', 'add', ns]);
      expect(add.code, add.stderr).toBe(0);
    }
    const mine = await labUp('1111');
    const theirs = await labUp('2222');
    expect(await namespaces()).toEqual([...foreign, ...mine, ...theirs].sort());

    const down = await livemig(['lab', 'down'], '1111');
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toMatch(/^removed /);
    for (const ns of mine) expect(down.stdout).toContain(ns);
    expect(down.stdout).toMatch(/of other users \(uid 2222\): `livemig lab down --all` removes them/);
    expect(await namespaces()).toEqual([...foreign, ...theirs].sort());

    const again = await livemig(['lab', 'down'], '1111');
    expect(again.stdout).toMatch(/^no labs of yours \(uid 1111\)/);
    expect(await namespaces()).toEqual([...foreign, ...theirs].sort());

    const all = await livemig(['lab', 'down', '--all'], '1111');
    expect(all.code, all.stderr).toBe(0);
    for (const ns of theirs) expect(all.stdout).toContain(ns);
    expect(await namespaces()).toEqual([...foreign].sort());

    const none = await livemig(['lab', 'down', '--all'], '1111');
    expect(none.stdout).toBe('no livemig labs\n');
    expect(await namespaces()).toEqual([...foreign].sort());
  });
});
