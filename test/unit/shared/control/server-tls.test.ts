/**
 * The control channel over mutual TLS (issue 12): a real ControlServer with `tls` on loopback and
 * real ControlClients, certificates made in a temp dir with the fleet PKI. Every command is
 * authorized by the caller's role before its handler runs (handler spies prove a refused command
 * never reached one); the handler learns who asked. No certificate, a certificate of another CA,
 * a server certificate for another host, or plaintext ws: no connection, and no handler ran.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { silentLogger } from '@livemig/shared';
import {
  ControlClient,
  ControlServer,
  type CommandContext,
  type CommandHandlers,
  type VmInfo,
} from '@livemig/shared/control';
import { initPki, issueCertificate, loadPki, type LoadedPki } from '@livemig/shared/security';

const dirs: string[] = [];
const servers: ControlServer[] = [];
const clients: ControlClient[] = [];

/** Credentials by name: the server "127.0.0.1" and "agent-a" (agents), one person per role, a stranger. */
const creds: Record<string, LoadedPki> = {};

beforeAll(async () => {
  const fleet = await mkdtemp(join(tmpdir(), 'livemig-control-tls-'));
  const other = await mkdtemp(join(tmpdir(), 'livemig-control-tls-other-'));
  dirs.push(fleet, other);
  await initPki(fleet);
  await initPki(other);
  const fleetNames = [
    ['127.0.0.1', 'agent'],
    ['agent-a', 'agent'],
    ['agent-b', 'agent'],
    ['vera', 'viewer'],
    ['otto', 'operator'],
    ['ada', 'admin'],
  ] as const;
  for (const [name, role] of fleetNames) {
    await issueCertificate(fleet, { name, role });
    creds[name] = await loadPki(fleet, name);
  }
  await issueCertificate(other, { name: 'mallory', role: 'admin' });
  creds.mallory = await loadPki(other, 'mallory');
});

afterAll(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

function cred(name: string): LoadedPki {
  const found = creds[name];
  if (!found) throw new Error(`no credentials for ${name}`);
  return found;
}

const vm = (name: string): VmInfo => ({ name }) as unknown as VmInfo;

let spies: {
  'query-vms': ReturnType<typeof vi.fn>;
  stop: ReturnType<typeof vi.fn>;
  cont: ReturnType<typeof vi.fn>;
  'destroy-vm': ReturnType<typeof vi.fn>;
};
let contexts: CommandContext[];

beforeEach(() => {
  contexts = [];
  const record = (context: CommandContext): void => void contexts.push(context);
  spies = {
    'query-vms': vi.fn((_args: unknown, context: CommandContext) => (record(context), { vms: [] })),
    stop: vi.fn((args: { vm: string }, context: CommandContext) => (record(context), vm(args.vm))),
    cont: vi.fn((args: { vm: string }, context: CommandContext) => (record(context), vm(args.vm))),
    'destroy-vm': vi.fn((_args: unknown, context: CommandContext) => (record(context), { destroyed: true as const })),
  };
});

function handlerCalls(): number {
  return Object.values(spies).reduce((sum, spy) => sum + spy.mock.calls.length, 0);
}

/** A TLS control server with the certificate of `serverName`; its port. */
async function start(serverName = '127.0.0.1'): Promise<number> {
  const { ca, cert, key } = cred(serverName);
  const server = await ControlServer.start(
    { host: '127.0.0.1', port: 0, logger: silentLogger(), tls: { ca, cert, key } },
    spies as unknown as CommandHandlers,
  );
  servers.push(server);
  return server.address().port;
}

async function connectAs(name: string, port: number, host = '127.0.0.1'): Promise<ControlClient> {
  const { ca, cert, key } = cred(name);
  const client = await ControlClient.connect(`wss://${host}:${port}`, { tls: { ca, cert, key } });
  clients.push(client);
  return client;
}

async function failure(promise: Promise<unknown>): Promise<{ code?: string; message: string } | undefined> {
  return promise.then(
    () => undefined,
    (error: unknown) => error as { code?: string; message: string },
  );
}

describe('ControlServer with tls: authorization by role', () => {
  it('viewer can query-vms, not stop (ERR_FORBIDDEN naming role and command; the handler never ran)', async () => {
    const client = await connectAs('vera', await start());
    await expect(client.request('query-vms', {})).resolves.toEqual({ vms: [] });
    expect(await failure(client.request('stop', { vm: 'vm1' }))).toMatchObject({
      code: 'ERR_FORBIDDEN',
      message: expect.stringMatching(/viewer.*stop/),
    });
    expect(spies.stop).not.toHaveBeenCalled();
    // The connection stays up after a refusal.
    await expect(client.request('query-vms', {})).resolves.toEqual({ vms: [] });
    expect(spies['query-vms']).toHaveBeenCalledTimes(2);
  });

  it('operator can stop and cont, not cont with force nor destroy-vm', async () => {
    const client = await connectAs('otto', await start());
    await expect(client.request('stop', { vm: 'vm1' })).resolves.toEqual({ name: 'vm1' });
    await expect(client.request('cont', { vm: 'vm1' })).resolves.toEqual({ name: 'vm1' });
    await expect(client.request('cont', { vm: 'vm1', force: false })).resolves.toEqual({ name: 'vm1' });
    expect(await failure(client.request('cont', { vm: 'vm1', force: true }))).toMatchObject({
      code: 'ERR_FORBIDDEN',
      message: expect.stringMatching(/operator.*cont with force/),
    });
    expect(await failure(client.request('destroy-vm', { vm: 'vm1' }))).toMatchObject({
      code: 'ERR_FORBIDDEN',
      message: expect.stringMatching(/operator.*destroy-vm/),
    });
    expect(spies.stop).toHaveBeenCalledTimes(1);
    expect(spies.cont).toHaveBeenCalledTimes(2);
    expect(spies['destroy-vm']).not.toHaveBeenCalled();
  });

  it('admin can cont with force and destroy-vm', async () => {
    const client = await connectAs('ada', await start());
    await expect(client.request('query-vms', {})).resolves.toEqual({ vms: [] });
    await expect(client.request('stop', { vm: 'vm1' })).resolves.toEqual({ name: 'vm1' });
    await expect(client.request('cont', { vm: 'vm1', force: true })).resolves.toEqual({ name: 'vm1' });
    await expect(client.request('destroy-vm', { vm: 'vm1' })).resolves.toEqual({ destroyed: true });
    expect(handlerCalls()).toBe(4);
  });

  it('an agent certificate can do nothing on the control channel', async () => {
    const client = await connectAs('agent-b', await start());
    for (const [command, args] of [
      ['query-vms', {}],
      ['stop', { vm: 'vm1' }],
      ['cont', { vm: 'vm1' }],
      ['destroy-vm', { vm: 'vm1' }],
    ] as const) {
      expect(await failure(client.request(command, args as never))).toMatchObject({
        code: 'ERR_FORBIDDEN',
        message: expect.stringContaining(`refused "${command}" for "agent-b" (role agent)`),
      });
    }
    expect(handlerCalls()).toBe(0);
  });

  it('an unknown or inherited command is refused as forbidden before dispatch (default deny)', async () => {
    const client = await connectAs('ada', await start());
    for (const command of ['constructor', '__proto__', 'no-such-command']) {
      expect(await failure(client.request(command as 'query-vms', {}))).toMatchObject({ code: 'ERR_FORBIDDEN' });
    }
    expect(handlerCalls()).toBe(0);
  });

  it("the handler gets the caller's verified identity", async () => {
    const port = await start();
    await (await connectAs('otto', port)).request('stop', { vm: 'vm1' });
    await (await connectAs('vera', port)).request('query-vms', {});
    expect(contexts).toEqual([
      { caller: { name: 'otto', role: 'operator' } },
      { caller: { name: 'vera', role: 'viewer' } },
    ]);
  });
});

describe('ControlServer with tls: who cannot connect', () => {
  it('a client without a certificate: ERR_UNAUTHENTICATED, no handler ran', async () => {
    const port = await start();
    const { ca } = cred('vera');
    // ControlClient with no credentials does not trust the fleet CA (nor present a certificate).
    expect(await failure(ControlClient.connect(`wss://127.0.0.1:${port}`))).toMatchObject({
      code: 'ERR_UNAUTHENTICATED',
    });
    // A raw ws client trusting the CA but presenting no certificate: the handshake is refused.
    const outcome = await new Promise<string>((resolve) => {
      const socket = new WebSocket(`wss://127.0.0.1:${port}`, { ca });
      socket.once('open', () => {
        socket.send(JSON.stringify({ id: 1, command: 'query-vms', args: {} }));
        resolve('open');
      });
      socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    });
    expect(outcome).not.toBe('open');
    expect(handlerCalls()).toBe(0);
  });

  it('a client certificate of another CA: ERR_UNAUTHENTICATED saying the server refused it', async () => {
    const port = await start();
    const { cert, key } = cred('mallory');
    const { ca } = cred('vera');
    // Trusting the fleet CA (the server is genuine) but holding a stranger's certificate.
    expect(await failure(ControlClient.connect(`wss://127.0.0.1:${port}`, { tls: { ca, cert, key } }))).toMatchObject({
      code: 'ERR_UNAUTHENTICATED',
      message: expect.stringContaining('refused our client certificate'),
    });
    // Entirely of the other CA: the server is not trusted either.
    expect(await failure(connectAs('mallory', port))).toMatchObject({ code: 'ERR_UNAUTHENTICATED' });
    expect(handlerCalls()).toBe(0);
  });

  it('a server whose certificate is not for the URL host: ERR_UNAUTHENTICATED', async () => {
    const port = await start('agent-a');
    expect(await failure(connectAs('ada', port))).toMatchObject({
      code: 'ERR_UNAUTHENTICATED',
      message: expect.stringContaining('ERR_TLS_CERT_ALTNAME_INVALID'),
    });
    expect(handlerCalls()).toBe(0);
  });

  it('a server certificate is checked against a DNS host name too', async () => {
    const port = await start('agent-a');
    // "localhost" resolves to loopback but is not the name in agent-a's certificate.
    expect(await failure(connectAs('ada', port, 'localhost'))).toMatchObject({ code: 'ERR_UNAUTHENTICATED' });
  });

  it('plaintext ws to a TLS server fails', async () => {
    const port = await start();
    expect(await failure(ControlClient.connect(`ws://127.0.0.1:${port}`, { timeoutMs: 2000 }))).toMatchObject({
      code: 'ERR_CONNECTION',
    });
    expect(handlerCalls()).toBe(0);
  });

  it('a client certificate is never sent over ws:// (ERR_INVALID_ARGUMENT)', async () => {
    const port = await start();
    const { ca, cert, key } = cred('ada');
    expect(await failure(ControlClient.connect(`ws://127.0.0.1:${port}`, { tls: { ca, cert, key } }))).toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
    });
  });

  it('a bare host:port with tls means wss', async () => {
    const port = await start();
    const { ca, cert, key } = cred('vera');
    const client = await ControlClient.connect(`127.0.0.1:${port}`, { tls: { ca, cert, key } });
    clients.push(client);
    await expect(client.request('query-vms', {})).resolves.toEqual({ vms: [] });
  });
});
