/**
 * Data connections over mutual TLS 1.3 with the built-in PKI, on real loopback sockets: each
 * end proves who it is before a single livemig frame is read, the source accepts only the
 * destination it expects, the destination only sources its allowlist names with role `agent`,
 * and a certificate of another CA or a plaintext peer gets nowhere (the daemon never sees it).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, type MigrationError } from '@livemig/shared';
import {
  connectPeer,
  listenForPeers,
  type AcceptedPeer,
  type DestTls,
  type PeerListener,
} from '@livemig/shared/channel';
import { msg, MsgType } from '@livemig/shared/protocol';
import { initPki, issueCertificate, loadPki, type LoadedPki, type Role } from '@livemig/shared/security';

let dir: string;
let otherDir: string;
const ids: Record<string, LoadedPki> = {};
const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'livemig-tls-'));
  otherDir = await mkdtemp(join(tmpdir(), 'livemig-tls-other-'));
  await initPki(dir);
  await initPki(otherDir);
  const issue = async (at: string, name: string, role: Role): Promise<LoadedPki> => {
    await issueCertificate(at, { name, role });
    return loadPki(at, name);
  };
  ids.dest = await issue(dir, 'dest-a', 'agent');
  ids.source = await issue(dir, 'src-a', 'agent');
  ids.intruder = await issue(dir, 'intruder', 'agent');
  ids.operator = await issue(dir, 'src-op', 'operator');
  ids.foreign = await issue(otherDir, 'src-b', 'agent');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  await rm(otherDir, { recursive: true, force: true });
});
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

function creds(id: LoadedPki): { ca: string; cert: string; key: string } {
  return { ca: id.ca, cert: id.cert, key: id.key };
}

async function listen(tls: DestTls): Promise<{ port: number; peers: AcceptedPeer[] }> {
  const peers: AcceptedPeer[] = [];
  const listener: PeerListener = await listenForPeers({
    host: '127.0.0.1',
    port: 0,
    agentId: 'dest',
    logger: silentLogger(),
    onPeer: (peer) => {
      peers.push(peer);
      cleanups.push(() => peer.channel.close());
    },
    tls,
  });
  cleanups.push(() => listener.close());
  return { port: listener.address().port, peers };
}

const destTls = (allow: (name: string) => boolean = (name) => name.startsWith('src-')): DestTls => ({
  ...creds(ids.dest!),
  allowSource: allow,
});

function connect(port: number, id: LoadedPki, expectName = 'dest-a'): ReturnType<typeof connectPeer> {
  return connectPeer({
    host: '127.0.0.1',
    port,
    agentId: 'source',
    logger: silentLogger(),
    tls: { ...creds(id), expectName },
  });
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    return (error as MigrationError).code;
  }
}

describe('data connections over mutual TLS', () => {
  it('both ends prove who they are; the channel says who the peer is; frames flow', async () => {
    const { port, peers } = await listen(destTls());
    const source = await connect(port, ids.source!);
    cleanups.push(() => source.close());
    expect(source.peer).toMatchObject({ name: 'dest-a', role: 'agent', protocol: 'TLSv1.3' });
    expect(source.peer?.cipher).toMatch(/AES|CHACHA/);
    expect(peers).toHaveLength(1);
    expect(peers[0]!.channel.peer).toMatchObject({ name: 'src-a', role: 'agent', protocol: 'TLSv1.3' });
    source.send(msg.roundEnd({ round: 7, pages: 0, bytes: 0 }));
    expect((await peers[0]!.channel.expect(MsgType.RoundEnd)).round).toBe(7);
  });

  it('the source refuses a destination that is not the one it expects; the destination sees no peer', async () => {
    const { port, peers } = await listen(destTls());
    expect(await codeOf(connect(port, ids.source!, 'dest-b'))).toBe('ERR_UNAUTHENTICATED');
    expect(peers).toHaveLength(0);
  });

  it('the destination refuses a source its allowlist does not name (default deny), with ERR_FORBIDDEN', async () => {
    const { port, peers } = await listen(destTls());
    expect(await codeOf(connect(port, ids.intruder!))).toBe('ERR_FORBIDDEN');
    const nobody = await listen(destTls(() => false));
    expect(await codeOf(connect(nobody.port, ids.source!))).toBe('ERR_FORBIDDEN');
    expect([...peers, ...nobody.peers]).toHaveLength(0);
  });

  it('a certificate with a person’s role cannot open a data connection', async () => {
    const { port, peers } = await listen(destTls(() => true));
    expect(await codeOf(connect(port, ids.operator!))).toBe('ERR_FORBIDDEN');
    expect(peers).toHaveLength(0);
  });

  it('a certificate of another CA gets no connection, in either direction', async () => {
    const { port, peers } = await listen(destTls(() => true));
    expect(await codeOf(connect(port, ids.foreign!))).toBe('ERR_UNAUTHENTICATED');
    expect(peers).toHaveLength(0);
    const foreignDest = await listenForPeers({
      host: '127.0.0.1',
      port: 0,
      agentId: 'foreign',
      logger: silentLogger(),
      onPeer: () => {},
      tls: { ...creds(ids.foreign!), allowSource: () => true },
    });
    cleanups.push(() => foreignDest.close());
    expect(await codeOf(connect(foreignDest.address().port, ids.source!, 'src-b'))).toBe('ERR_UNAUTHENTICATED');
  });

  it('a plaintext peer gets nowhere: the TLS listener never hands it to the daemon', async () => {
    const { port, peers } = await listen(destTls(() => true));
    const closed = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write(Buffer.alloc(64, 0x41)));
      socket.on('error', () => resolve(true));
      socket.on('close', () => resolve(true));
    });
    expect(closed).toBe(true);
    expect(peers).toHaveLength(0);
  });
});
