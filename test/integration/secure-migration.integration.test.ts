/**
 * Migrations between two agents (in this process, real sockets) whose data plane runs mutual
 * TLS 1.3 with the built-in PKI, and whose destination takes a VM only with a ticket its
 * operator issued (`prepare-incoming`): each attack fails before the destination reserves any
 * memory, and the VM keeps running, intact, on the source. The control plane is wss with client
 * certificates too, each command allowed by the caller's role: a role one step too small is
 * refused on every command class, and nothing happens to the VM.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AgentDaemon, type AgentSecurity } from '@livemig/agent';
import { silentLogger } from '@livemig/shared';
import { ControlClient } from '@livemig/shared/control';
import type { MigrationReport } from '@livemig/shared/report';
import { initPki, issueCertificate, loadPki } from '@livemig/shared/security';
import { parseVmSpec } from '@livemig/shared/vm';
import { followMigration } from '../../cli/follow-migration.ts';
import { expectCompleted, expectOutcome } from '../helpers/report.ts';
import { waitUntil } from '../helpers/wait.ts';

const LOOPBACK = { host: '127.0.0.1', port: 0 };
const spec = parseVmSpec({ memory: '16MiB', init: 'random', workload: 'hotset:wss=2MiB,rate=5000', seed: 9 });
let dir: string;
const daemons: AgentDaemon[] = [];
const names = new Map<AgentDaemon, string>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'livemig-secure-'));
  await initPki(dir);
  for (const name of ['src-a', 'dest-b', 'src-evil', 'agent-x']) await issueCertificate(dir, { name, role: 'agent' });
  await issueCertificate(dir, { name: 'oscar', role: 'operator' });
  await issueCertificate(dir, { name: 'ada', role: 'admin' });
  await issueCertificate(dir, { name: 'viewer-v', role: 'viewer' });
});
afterAll(() => rm(dir, { recursive: true, force: true }));
afterEach(async () => {
  await Promise.all(daemons.splice(0).map((daemon) => daemon.stop('test over')));
});

async function start(name: string, security: Partial<AgentSecurity> = {}): Promise<AgentDaemon> {
  const daemon = await AgentDaemon.start({
    control: LOOPBACK,
    listen: LOOPBACK,
    logger: silentLogger(),
    security: { pki: await loadPki(dir, name), ...security },
  });
  daemons.push(daemon);
  names.set(daemon, name);
  return daemon;
}

async function pair(): Promise<{ a: AgentDaemon; b: AgentDaemon; to: string }> {
  const [a, b] = await Promise.all([start('src-a'), start('dest-b', { allowSource: ['src-*'] })]);
  await a.host.create('vm', spec);
  return { a, b, to: b.dataAddress! };
}

/** An operator's client: the control plane is wss with client certificates too. */
async function request<T>(daemon: AgentDaemon, run: (client: ControlClient) => Promise<T>, as = 'oscar'): Promise<T> {
  const { ca, cert, key } = await loadPki(dir, as);
  // The agent is reached at 127.0.0.1; its certificate says who it is.
  const expectName = names.get(daemon);
  const client = await ControlClient.connect(daemon.controlUrl, { tls: { ca, cert, key }, expectName });
  try {
    return await run(client);
  } finally {
    client.close();
  }
}

function ticketFor(b: AgentDaemon, vm = 'vm', from = 'src-a'): Promise<string> {
  return request(b, async (client) => (await client.request('prepare-incoming', { vm, from })).ticket);
}

function migrate(a: AgentDaemon, to: string, args: { ticket?: string; destName?: string }): Promise<MigrationReport> {
  return request(a, async (client) => {
    const { migrationId } = await client.request('migrate', { vm: 'vm', to, destName: 'dest-b', ...args });
    return followMigration(client, migrationId, { progress: false });
  });
}

/** The attack failed with `code`, nothing of the VM left the source, and it runs there as before. */
async function expectRefused(report: MigrationReport, a: AgentDaemon, b: AgentDaemon, code: string): Promise<void> {
  expectOutcome(report, 'failed');
  expect(report.error?.code).toBe(code);
  expect(report.bytes.pagePayload).toBe(0);
  expect(report.vmRunsOn).toBe('source');
  expect(a.host.get('vm').state).toBe('running');
  expect(b.host.list()).toEqual([]);
}

describe('secure migration: mutual TLS and tickets', () => {
  it('with the ticket its operator issued, the VM moves over mutual TLS and arrives intact', async () => {
    const { a, b, to } = await pair();
    const report = await migrate(a, to, { ticket: await ticketFor(b) });
    expectCompleted(report);
    expect(report.verify.match).toBe(true);
    expect(b.host.get('vm').state).toBe('running');
  });

  it('without a ticket: refused before any memory is reserved', async () => {
    const { a, b, to } = await pair();
    await expectRefused(await migrate(a, to, {}), a, b, 'ERR_TICKET_UNKNOWN');
  });

  it('a replayed ticket is refused', async () => {
    const { a, b, to } = await pair();
    const ticket = await ticketFor(b);
    expectCompleted(await migrate(a, to, { ticket }));
    // Back on A under the same name (the first copy left B's VM running there: destroy it).
    await request(b, (client) => client.request('destroy-vm', { vm: 'vm' }), 'ada'); // destroy needs admin
    await a.host.remove('vm');
    await a.host.create('vm', spec);
    await expectRefused(await migrate(a, to, { ticket }), a, b, 'ERR_TICKET_USED');
  });

  it('an expired ticket is refused', async () => {
    const { a, b, to } = await pair();
    const { ticket, expiresAt } = await request(b, (client) =>
      client.request('prepare-incoming', { vm: 'vm', from: 'src-a', ttlMs: 50 }),
    );
    // The ticket's own clock decides: wait until its expiry has passed, then present it.
    await waitUntil(() => Date.now() > expiresAt + 5, { what: 'the ticket expired', intervalMs: 10 });
    await expectRefused(await migrate(a, to, { ticket }), a, b, 'ERR_TICKET_EXPIRED');
  });

  it('a ticket for another VM, or for another source, is refused', async () => {
    const { a, b, to } = await pair();
    await expectRefused(await migrate(a, to, { ticket: await ticketFor(b, 'other-vm') }), a, b, 'ERR_TICKET_MISMATCH');
    await expectRefused(
      await migrate(a, to, { ticket: await ticketFor(b, 'vm', 'src-evil') }),
      a,
      b,
      'ERR_TICKET_MISMATCH',
    );
  });

  it('a destination with another name than expected gets no byte of the VM', async () => {
    const { a, b, to } = await pair();
    const report = await migrate(a, to, { ticket: await ticketFor(b), destName: 'dest-c' });
    await expectRefused(report, a, b, 'ERR_UNAUTHENTICATED');
  });

  it('the control plane is wss with client certificates: a viewer may look but not migrate or issue tickets', async () => {
    const { a, b, to } = await pair();
    expect(a.controlUrl).toMatch(/^wss:/);
    const vms = await request(a, (client) => client.request('query-vms', {}), 'viewer-v');
    expect(vms.vms.map((v) => v.name)).toEqual(['vm']);
    const refused = (run: (client: ControlClient) => Promise<unknown>): Promise<string | undefined> =>
      request(a, run, 'viewer-v').then(
        () => undefined,
        (error: { code?: string }) => error.code,
      );
    expect(await refused((client) => client.request('migrate', { vm: 'vm', to, destName: 'dest-b' }))).toBe(
      'ERR_FORBIDDEN',
    );
    expect(await refused((client) => client.request('prepare-incoming', { vm: 'vm', from: 'src-a' }))).toBe(
      'ERR_FORBIDDEN',
    );
    expect(a.host.get('vm').state).toBe('running');
    expect(b.host.list()).toEqual([]);
    await expect(ControlClient.connect(a.controlUrl)).rejects.toMatchObject({ code: 'ERR_UNAUTHENTICATED' });
  });

  it('a source the destination does not allow is refused (default deny)', async () => {
    const [a, b] = await Promise.all([start('src-a'), start('dest-b')]);
    await a.host.create('vm', spec);
    const report = await migrate(a, b.dataAddress!, { ticket: await ticketFor(b) });
    await expectRefused(report, a, b, 'ERR_FORBIDDEN');
  });

  it('each command class refuses the role just below it, and nothing happens to the VM', async () => {
    const { a, b, to } = await pair();
    const code = (as: string, run: (client: ControlClient) => Promise<unknown>): Promise<string | undefined> =>
      request(a, run, as).then(
        () => undefined,
        (error: { code?: string }) => error.code,
      );
    // viewer class (query-*): an agent certificate opens data connections only.
    expect(await code('agent-x', (c) => c.request('query-vms', {}))).toBe('ERR_FORBIDDEN');
    // operator class: a viewer may not stop, cancel, resume, switch to post-copy or migrate.
    expect(await code('viewer-v', (c) => c.request('stop', { vm: 'vm' }))).toBe('ERR_FORBIDDEN');
    expect(await code('viewer-v', (c) => c.request('migrate-cancel', { migrationId: 'x' }))).toBe('ERR_FORBIDDEN');
    expect(await code('viewer-v', (c) => c.request('migrate', { vm: 'vm', to, destName: 'dest-b' }))).toBe(
      'ERR_FORBIDDEN',
    );
    // admin class: an operator may not destroy, boot, read digests or force a cont.
    expect(await code('oscar', (c) => c.request('destroy-vm', { vm: 'vm' }))).toBe('ERR_FORBIDDEN');
    expect(await code('oscar', (c) => c.request('digest', { vm: 'vm' }))).toBe('ERR_FORBIDDEN');
    expect(await code('oscar', (c) => c.request('cont', { vm: 'vm', force: true }))).toBe('ERR_FORBIDDEN');
    expect(await code('oscar', (c) => c.request('create-vm', { name: 'vm2', memory: 1 << 20 }))).toBe('ERR_FORBIDDEN');
    // Each class's own role is let through (the same client, the same command shape).
    expect(await code('viewer-v', (c) => c.request('query-vms', {}))).toBeUndefined();
    expect(await code('ada', (c) => c.request('digest', { vm: 'vm' }))).toBeUndefined();
    expect(a.host.list().map((vm) => [vm.name, vm.state])).toEqual([['vm', 'running']]);
    expect(b.host.list()).toEqual([]);
  });

  it('a client certificate of another fleet gets no control connection', async () => {
    const { a } = await pair();
    const other = await mkdtemp(join(tmpdir(), 'livemig-other-fleet-'));
    try {
      await initPki(other);
      await issueCertificate(other, { name: 'oscar', role: 'admin' });
      const { cert, key } = await loadPki(other, 'oscar');
      // Trusting our own CA would not help it either: its certificate is not signed by the agent's CA.
      const connecting = ControlClient.connect(a.controlUrl, {
        tls: { ca: (await loadPki(dir, 'oscar')).ca, cert, key },
        expectName: 'src-a',
      });
      await expect(connecting).rejects.toMatchObject({ code: 'ERR_UNAUTHENTICATED' });
    } finally {
      await rm(other, { recursive: true, force: true });
    }
    expect(a.host.get('vm').state).toBe('running');
  });
});
