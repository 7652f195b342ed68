/**
 * The QEMU benchmark's QMP client (bench/qemu/qmp.ts): the pure line parser and message
 * classification, then the client's protocol handling — greeting and capability negotiation,
 * answers matched by id while events interleave, the event backlog, deadlines, typed errors —
 * against a scripted peer on a real unix socket (the exact orders QEMU may produce, on demand;
 * a real QEMU runs in test/integration/qemu-migration.integration.test.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseQmpMessage, QmpClient, QmpError, QmpLineParser } from '../../../bench/qemu/qmp.ts';

const GREETING =
  '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}';

describe('parseQmpMessage', () => {
  it('classifies greeting, return, error and event', () => {
    expect(parseQmpMessage(GREETING)).toMatchObject({ kind: 'greeting', capabilities: ['oob'] });
    expect(parseQmpMessage('{"return": {}, "id": "lm-1"}')).toStrictEqual({ kind: 'return', id: 'lm-1', value: {} });
    expect(parseQmpMessage('{"error": {"class": "GenericError", "desc": "nope"}, "id": "lm-2"}')).toStrictEqual({
      kind: 'error',
      id: 'lm-2',
      errorClass: 'GenericError',
      desc: 'nope',
    });
    expect(
      parseQmpMessage(
        '{"timestamp": {"seconds": 1796280849, "microseconds": 596371}, "event": "MIGRATION", "data": {"status": "completed"}}',
      ),
    ).toStrictEqual({
      kind: 'event',
      event: 'MIGRATION',
      data: { status: 'completed' },
      timestamp: { seconds: 1796280849, microseconds: 596371 },
    });
  });

  it('an event without data gets an empty object; an id that is not ours is undefined', () => {
    expect(parseQmpMessage('{"event": "RESUME", "timestamp": {"seconds": 1, "microseconds": 2}}')).toMatchObject({
      data: {},
    });
    expect(parseQmpMessage('{"return": 3, "id": 7}')).toStrictEqual({ kind: 'return', id: undefined, value: 3 });
  });

  it.each([
    ['not JSON', '{"return":'],
    ['not an object', '[1,2]'],
    ['a string', '"hello"'],
    ['an unknown shape', '{"hello": 1}'],
  ])('%s → QMP_PROTOCOL', (_what, line) => {
    expect(() => parseQmpMessage(line)).toThrow(expect.objectContaining({ code: 'QMP_PROTOCOL' }));
  });
});

describe('QmpLineParser', () => {
  it('joins a message split across chunks, byte by byte, and splits several in one chunk', () => {
    const parser = new QmpLineParser();
    const text = `${GREETING}\n{"return": {}, "id": "lm-1"}\r\n\n{"event": "STOP", "data": {}}\n`;
    const seen = [...text].flatMap((ch) => parser.push(ch));
    expect(seen.map((m) => m.kind)).toStrictEqual(['greeting', 'return', 'event']);
    const again = new QmpLineParser().push(Buffer.from(text));
    expect(again).toStrictEqual(seen);
  });

  it('keeps an unfinished line until its newline', () => {
    const parser = new QmpLineParser();
    expect(parser.push('{"return": {}, "id"')).toStrictEqual([]);
    expect(parser.push(': "lm-9"}\n')).toStrictEqual([{ kind: 'return', id: 'lm-9', value: {} }]);
  });

  it('refuses more than maxLineBytes without a newline, before buffering more', () => {
    const parser = new QmpLineParser(64);
    expect(() => parser.push(`{"return": "${'x'.repeat(100)}`)).toThrow(
      expect.objectContaining({ code: 'QMP_PROTOCOL' }),
    );
    expect(() => new QmpLineParser(64).push(`{"return": "${'x'.repeat(100)}"}\n`)).toThrow(
      expect.objectContaining({ code: 'QMP_PROTOCOL' }),
    );
  });
});

/** A scripted QMP peer: answers each command with what `script` says, after the greeting. */
interface Peer {
  path: string;
  /** Lines the client sent, parsed. */
  received: Array<{ execute: string; arguments?: unknown; id: string }>;
  /** The connected socket (after connect). */
  socket(): Socket;
}

let dir: string;
let server: Server | undefined;
const clients: QmpClient[] = [];
/** Closed after each test, passed or failed. */
const track = (qmp: QmpClient): QmpClient => (clients.push(qmp), qmp);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'qmp-test-'));
});

afterEach(async () => {
  for (const qmp of clients.splice(0)) qmp.close();
  // The directory first: a close that never completes (a connection left open) must not leave it.
  rmSync(dir, { recursive: true, force: true });
  const closing = server;
  server = undefined;
  if (closing) await new Promise<void>((resolve) => closing.close(() => resolve()));
});

async function peer(
  answer: (cmd: { execute: string; id: string }, socket: Socket) => string | undefined,
  greeting: string | null = GREETING,
): Promise<Peer> {
  const path = join(dir, 'qmp.sock');
  const received: Peer['received'] = [];
  let current: Socket | undefined;
  server = createServer((socket) => {
    current = socket;
    socket.on('error', () => {});
    if (greeting !== null) socket.write(greeting + '\n');
    let pending = '';
    socket.on('data', (chunk) => {
      pending += chunk.toString();
      for (let nl = pending.indexOf('\n'); nl !== -1; nl = pending.indexOf('\n')) {
        const cmd = JSON.parse(pending.slice(0, nl)) as Peer['received'][number];
        pending = pending.slice(nl + 1);
        received.push(cmd);
        const reply = cmd.execute === 'qmp_capabilities' ? `{"return": {}, "id": "${cmd.id}"}` : answer(cmd, socket);
        if (reply !== undefined) socket.write(reply + '\n');
      }
    });
  });
  await new Promise<void>((resolve) => server!.listen(path, resolve));
  return { path, received, socket: () => current! };
}

describe('QmpClient', () => {
  it('negotiates capabilities after the greeting, then matches answers by id while events interleave', async () => {
    const p = await peer((cmd, socket) => {
      // An event before the answer, as QEMU sends when the command triggers one.
      socket.write(
        '{"event": "MIGRATION", "data": {"status": "setup"}, "timestamp": {"seconds": 1, "microseconds": 0}}\n',
      );
      return JSON.stringify({ return: { echoed: cmd.execute }, id: cmd.id });
    });
    const qmp = track(await QmpClient.connect(p.path, { timeoutMs: 5000 }));
    expect(qmp.greeting.version).toMatchObject({ qemu: { major: 7 } });
    expect(p.received[0]).toMatchObject({ execute: 'qmp_capabilities' });
    const [a, b] = await Promise.all([qmp.execute('query-status'), qmp.execute('query-migrate', { x: 1 })]);
    expect(a).toStrictEqual({ echoed: 'query-status' });
    expect(b).toStrictEqual({ echoed: 'query-migrate' });
    expect(p.received[2]).toMatchObject({ execute: 'query-migrate', arguments: { x: 1 } });
    // Both events were kept for later: a waiter now gets the first, then the second.
    expect(qmp.backlog).toHaveLength(2);
    await expect(qmp.waitForEvent('MIGRATION', 1000)).resolves.toMatchObject({ data: { status: 'setup' } });
    expect(qmp.backlog).toHaveLength(1);
  });

  it('waitForEvent takes the first matching event, from the backlog or as it arrives, each only once', async () => {
    const p = await peer(() => undefined);
    const qmp = track(await QmpClient.connect(p.path));
    const ev = (status: string): string =>
      `{"event": "MIGRATION", "data": {"status": "${status}"}, "timestamp": {"seconds": 1, "microseconds": 0}}\n`;
    const done = qmp.waitForEvent('MIGRATION', 2000, (d) => d.status === 'completed');
    p.socket().write(
      ev('active') + ev('completed') + '{"event": "RESUME", "timestamp": {"seconds": 2, "microseconds": 0}}\n',
    );
    await expect(done).resolves.toMatchObject({ data: { status: 'completed' } });
    await expect(qmp.waitForEvent('RESUME', 2000)).resolves.toMatchObject({ event: 'RESUME' });
    // "active" stayed in the backlog; "completed" was handed out once and is gone.
    expect(qmp.backlog.map((e) => e.data.status)).toStrictEqual(['active']);
    await expect(qmp.waitForEvent('MIGRATION', 50, (d) => d.status === 'completed')).rejects.toMatchObject({
      code: 'QMP_TIMEOUT',
    });
  });

  it('an error answer rejects with QMP_COMMAND and QEMU’s class; the connection stays usable', async () => {
    const p = await peer((cmd) =>
      cmd.execute === 'bad'
        ? `{"error": {"class": "CommandNotFound", "desc": "The command bad has not been found"}, "id": "${cmd.id}"}`
        : `{"return": {}, "id": "${cmd.id}"}`,
    );
    const qmp = track(await QmpClient.connect(p.path));
    const err = await qmp.execute('bad').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    expect(err).toMatchObject({ code: 'QMP_COMMAND', errorClass: 'CommandNotFound' });
    await expect(qmp.execute('good')).resolves.toStrictEqual({});
  });

  it('an unanswered command rejects with QMP_TIMEOUT at its deadline', async () => {
    const p = await peer(() => undefined);
    const qmp = track(await QmpClient.connect(p.path));
    const t0 = performance.now();
    await expect(qmp.execute('migrate', undefined, { timeoutMs: 100 })).rejects.toMatchObject({
      code: 'QMP_TIMEOUT',
    });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(95);
  });

  it('the peer closing rejects every outstanding wait with QMP_CLOSED, and later calls too', async () => {
    const p = await peer(() => undefined);
    const qmp = track(await QmpClient.connect(p.path));
    const pending = qmp.execute('query-migrate', undefined, { timeoutMs: 5000 });
    const event = qmp.waitForEvent('RESUME', 5000);
    p.socket().end();
    await expect(pending).rejects.toMatchObject({ code: 'QMP_CLOSED' });
    await expect(event).rejects.toMatchObject({ code: 'QMP_CLOSED' });
    await expect(qmp.execute('query-status')).rejects.toMatchObject({ code: 'QMP_CLOSED' });
  });

  it('garbage from the peer fails the connection with QMP_PROTOCOL (first error wins)', async () => {
    const p = await peer(() => 'this is not json');
    const qmp = track(await QmpClient.connect(p.path));
    await expect(qmp.execute('query-status')).rejects.toMatchObject({ code: 'QMP_PROTOCOL' });
    await expect(qmp.execute('query-status')).rejects.toMatchObject({ code: 'QMP_PROTOCOL' });
  });

  it('an answer to no outstanding command is a protocol error', async () => {
    const p = await peer(() => '{"return": {}, "id": "lm-999"}');
    const qmp = track(await QmpClient.connect(p.path));
    await expect(qmp.execute('query-status')).rejects.toMatchObject({ code: 'QMP_PROTOCOL' });
  });

  it('connect: no greeting within the deadline → QMP_TIMEOUT; a non-greeting first → QMP_PROTOCOL', async () => {
    let p = await peer(() => undefined, null);
    await expect(QmpClient.connect(p.path, { timeoutMs: 100 })).rejects.toMatchObject({ code: 'QMP_TIMEOUT' });
    await new Promise<void>((resolve) => server!.close(() => resolve()));
    p = await peer(() => undefined, '{"return": {}}');
    await expect(QmpClient.connect(p.path, { timeoutMs: 1000 })).rejects.toMatchObject({ code: 'QMP_PROTOCOL' });
  });

  it('connect: nothing listening → QMP_CONNECT', async () => {
    await expect(QmpClient.connect(join(dir, 'absent.sock'), { timeoutMs: 1000 })).rejects.toMatchObject({
      code: 'QMP_CONNECT',
    });
  });
});
