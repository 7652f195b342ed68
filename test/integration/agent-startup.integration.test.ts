/**
 * An agent that cannot start does not run: every startup step that fails — the data port or the
 * control port busy, an address not on this host, plaintext beyond loopback, the PKI unreadable,
 * the state directory or audit log unusable, the VM to boot unable to take its address — ends the
 * process with `livemig: ERR_CODE: message` on stderr and exit 1 (2 for bad input), having closed
 * what it had opened before: no half-started agent that a supervisor would take for a running one.
 *
 * Real processes (`livemig agent|source|dest`), each run to its end within a time limit — one that
 * kept a port or a worker open would never end — and killed in afterEach whatever happened. The
 * ports are chosen here: a "busy" one is a server this test binds, a free one is bound and closed
 * first, so the test can check afterwards that nobody listens there (connection refused).
 * 192.0.2.1 (TEST-NET-1) and 10.99.99.99 are addresses this machine does not have; nothing is
 * sent to them, binding fails locally. AgentDaemon.start() is also run in this process, where a
 * port left open would stay open for the test to find.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AgentDaemon } from '@livemig/agent';
import { createLogger } from '@livemig/shared';
import { initPki, issueCertificate } from '@livemig/shared/security';
import { parseVmSpec } from '@livemig/shared/vm';
import { freePort, listenOn, refused } from '../helpers/ports.ts';
import { runCli, startAgent, stopAll } from '../helpers/processes.ts';

/** Not assigned to this machine (TEST-NET-1): binding it fails with EADDRNOTAVAIL. */
const FOREIGN_IP = '192.0.2.1';
// No "mode 000" cases: the suite runs as root in CI, and root reads and writes through any file
// mode, so such a test could only skip there. The path they would take (an fs error while opening
// the PKI or the audit log, mapped to ERR_PKI / ERR_AUDIT before anything is bound) is the one the
// not-a-directory, key-mode and held-log cases below take.

let dir: string;
let pki: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'livemig-startup-'));
  pki = join(dir, 'pki');
  await initPki(pki);
  await issueCertificate(pki, { name: 'agent-a', role: 'agent' });
  await writeFile(join(dir, 'a-file'), 'not a directory\n');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const servers: net.Server[] = [];
const restoreModes: Array<() => Promise<void>> = [];
afterEach(async () => {
  await stopAll();
  await Promise.all(restoreModes.splice(0).map((restore) => restore()));
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

/** A loopback port this test keeps bound for the length of the test. */
async function busyPort(): Promise<number> {
  const server = net.createServer();
  servers.push(server);
  return listenOn(server);
}

interface FailedStart {
  /** Exit code; null when it did not end by itself within the time limit (killed). */
  code: number | null;
  /** Its `livemig: ERR_…: …` line. */
  error: string | undefined;
  stderr: string;
  stdout: string;
}

/** Run `livemig <args>` to its end (killed after 30 s: a half-started agent never ends). */
async function start(args: readonly string[]): Promise<FailedStart> {
  const run = await runCli([...args, '--log-level', 'debug'], { timeoutMs: 30_000 });
  const error = run.stderr.split('\n').find((line) => line.startsWith('livemig: '));
  return { ...run, error };
}

/** It failed at start as `code` says, with `exitCode`, never said it was ready, and `ports` are closed. */
async function expectFailedStart(
  run: FailedStart,
  expected: { code: string; exitCode: 1 | 2; message?: RegExp; closed: number[] },
): Promise<void> {
  expect(run.code, `exit code; stderr:\n${run.stderr}`).toBe(expected.exitCode);
  expect(run.error).toMatch(new RegExp(`^livemig: ${expected.code}: `));
  if (expected.message) expect(run.error).toMatch(expected.message);
  expect(run.stdout).not.toContain('"event":"ready"');
  for (const port of expected.closed) expect(await refused(port), `port ${port} is closed`).toBe(true);
}

/** Two loopback ports nobody listens on, and the flags that give them to an agent. */
async function freePorts(): Promise<{ control: number; data: number; flags: string[] }> {
  const [control, data] = await Promise.all([freePort(), freePort()]);
  return { control, data, flags: ['--control', `127.0.0.1:${control}`, '--listen', `127.0.0.1:${data}`] };
}

describe('an agent that cannot start exits with a coded error and leaves nothing open', () => {
  it('the data port is busy (dest): ERR_ADDRESS_IN_USE, exit 1, the control port it had bound closed', async () => {
    const [data, control] = await Promise.all([busyPort(), freePort()]);
    const run = await start(['dest', '--listen', `127.0.0.1:${data}`, '--control', `127.0.0.1:${control}`]);
    await expectFailedStart(run, {
      code: 'ERR_ADDRESS_IN_USE',
      exitCode: 1,
      message: new RegExp(`the data port cannot listen on 127\\.0\\.0\\.1:${data}: another process`),
      closed: [control],
    });
  });

  it.each([
    ['plaintext', (): string[] => []],
    ['mutual TLS', (): string[] => ['--pki', pki, '--name', 'agent-a', '--state-dir', join(dir, 'state-tls')]],
  ])('the control port is busy (%s): ERR_ADDRESS_IN_USE, exit 1, no data port', async (_, security) => {
    const [control, data] = await Promise.all([busyPort(), freePort()]);
    const ports = ['--control', `127.0.0.1:${control}`, '--listen', `127.0.0.1:${data}`];
    const run = await start(['agent', ...ports, ...security()]);
    await expectFailedStart(run, {
      code: 'ERR_ADDRESS_IN_USE',
      exitCode: 1,
      message: new RegExp(`the control API cannot listen on 127\\.0\\.0\\.1:${control}: another process`),
      closed: [data],
    });
  });

  it(`a data address not on this host (${FOREIGN_IP}): ERR_ADDRESS_NOT_AVAILABLE, exit 1, control port closed`, async () => {
    const control = await freePort();
    const ports = ['--listen', `${FOREIGN_IP}:7070`, '--control', `127.0.0.1:${control}`];
    const run = await start(['agent', ...ports, '--insecure']);
    await expectFailedStart(run, {
      code: 'ERR_ADDRESS_NOT_AVAILABLE',
      exitCode: 1,
      message: /the data port cannot listen on 192\.0\.2\.1:7070: that address is not assigned to this host/,
      closed: [control],
    });
  });

  it(`a control address not on this host (${FOREIGN_IP}): ERR_ADDRESS_NOT_AVAILABLE, exit 1, no data port`, async () => {
    const data = await freePort();
    const ports = ['--control', `${FOREIGN_IP}:7071`, '--listen', `127.0.0.1:${data}`];
    const run = await start(['dest', ...ports, '--insecure']);
    await expectFailedStart(run, { code: 'ERR_ADDRESS_NOT_AVAILABLE', exitCode: 1, closed: [data] });
  });

  it('plaintext beyond loopback without --insecure: ERR_INSECURE, exit 2 (bad input), nothing bound', async () => {
    const control = await freePort();
    const run = await start(['agent', '--listen', `${FOREIGN_IP}:7070`, '--control', `127.0.0.1:${control}`]);
    await expectFailedStart(run, { code: 'ERR_INSECURE', exitCode: 2, closed: [control] });
  });

  it('the VM to boot cannot take its address (source --nic 10.99.99.99): ERR_ADDRESS, exit 1, both ports closed', async () => {
    const { control, data, flags } = await freePorts();
    const vm = ['--vm', 'kv1', '--memory', '16MiB', '--workload', 'kv', '--nic', '10.99.99.99:7700'];
    const run = await start(['source', ...flags, ...vm]);
    // Both ports listened before the VM failed to boot: they were closed again.
    await expectFailedStart(run, {
      code: 'ERR_ADDRESS',
      exitCode: 1,
      message: /10\.99\.99\.99 is not on this host/,
      closed: [control, data],
    });
  });

  describe('the PKI cannot be loaded: ERR_PKI, exit 1, nothing bound', () => {
    it('--pki is not a directory', async () => {
      const { control, data, flags } = await freePorts();
      const run = await start(['agent', ...flags, '--pki', join(dir, 'a-file'), '--name', 'agent-a']);
      await expectFailedStart(run, { code: 'ERR_PKI', exitCode: 1, message: /ENOTDIR/, closed: [control, data] });
    });

    it('the private key is readable by others', async () => {
      const { control, data, flags } = await freePorts();
      const key = join(pki, 'agent-a-key.pem');
      await chmod(key, 0o644);
      restoreModes.push(() => chmod(key, 0o600));
      const run = await start(['agent', ...flags, '--pki', pki, '--name', 'agent-a']);
      await expectFailedStart(run, { code: 'ERR_PKI', exitCode: 1, closed: [control, data] });
    });
  });

  describe('the audit log cannot be opened: ERR_AUDIT, exit 1, nothing bound', () => {
    it('--state-dir cannot be created (a file is in the way)', async () => {
      const { control, data, flags } = await freePorts();
      const run = await start(['dest', ...flags, '--state-dir', join(dir, 'a-file', 'state')]);
      await expectFailedStart(run, { code: 'ERR_AUDIT', exitCode: 1, message: /ENOTDIR/, closed: [control, data] });
    });

    it('--audit-log is held by another running agent', async () => {
      const log = join(dir, 'held', 'audit.log');
      const holder = await startAgent('agent', ['--audit-log', log]);
      const { control, data, flags } = await freePorts();
      const run = await start(['agent', ...flags, '--audit-log', log]);
      await expectFailedStart(run, { code: 'ERR_AUDIT', exitCode: 1, closed: [control, data] });
      expect(holder.child.exitCode, 'the agent holding the log runs on').toBeNull();
    });
  });
});

describe('AgentDaemon.start() in this process: a failed start closes what it had opened', () => {
  const logger = createLogger({ name: 'startup-test', level: 'silent' });

  it('the data port is busy: rejects with ERR_ADDRESS_IN_USE, the control port is closed again', async () => {
    const [data, control] = await Promise.all([busyPort(), freePort()]);
    const started = AgentDaemon.start({
      control: { host: '127.0.0.1', port: control },
      listen: { host: '127.0.0.1', port: data },
      logger,
    });
    await expect(started).rejects.toMatchObject({ code: 'ERR_ADDRESS_IN_USE' });
    expect(await refused(control)).toBe(true);
  });

  it('the VM cannot boot: rejects with its error, both ports are closed again', async () => {
    const [control, data] = await Promise.all([freePort(), freePort()]);
    const spec = parseVmSpec({ memory: '16MiB', init: 'zero', workload: 'kv', seed: 1, nic: '10.99.99.99:7700' });
    const started = AgentDaemon.start({
      control: { host: '127.0.0.1', port: control },
      listen: { host: '127.0.0.1', port: data },
      logger,
      vm: { name: 'kv1', spec },
    });
    await expect(started).rejects.toMatchObject({ code: 'ERR_ADDRESS' });
    expect(await refused(control)).toBe(true);
    expect(await refused(data)).toBe(true);
  });
});
