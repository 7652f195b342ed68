/**
 * A real ControlServer on loopback: it dispatches only its own commands (an inherited name such
 * as "constructor" is an unknown command, through the real ControlClient and raw JSON alike), and
 * it refuses any WebSocket upgrade carrying an Origin header that `allowOrigins` does not list
 * (HTTP 403, logged), so no browser page can drive an agent.
 */
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import pino from 'pino';
import type { CommandHandlers } from '@livemig/shared/control';
import { useControlServers } from '../../../helpers/control-server.ts';

const handlers: CommandHandlers = { 'query-vms': () => ({ vms: [] }) };
const { start, connect } = useControlServers(handlers);

/** Send raw JSON over a plain ws socket and wait for the reply with that id. */
async function rawRequest(url: string, request: unknown): Promise<unknown> {
  const socket = new WebSocket(url);
  try {
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    const reply = new Promise<unknown>((resolve) =>
      socket.once('message', (data) => resolve(JSON.parse(String(data)))),
    );
    socket.send(JSON.stringify(request));
    return await reply;
  } finally {
    socket.terminate();
  }
}

/** Open a ws connection with these options: 'open', or the HTTP status it was refused with. */
function handshake(url: string, options: WebSocket.ClientOptions = {}): Promise<'open' | number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, options);
    socket.once('open', () => {
      socket.terminate();
      resolve('open');
    });
    socket.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      socket.terminate();
    });
    socket.once('error', (error) => reject(error));
  });
}

describe('ControlServer dispatch', () => {
  it('answers a command it has', async () => {
    const client = await connect(await start());
    await expect(client.request('query-vms', {})).resolves.toEqual({ vms: [] });
  });

  it.each(['constructor', 'toString', 'hasOwnProperty', 'valueOf', '__proto__', '__defineGetter__', 'digest'])(
    'answers "%s" as an unknown command (ERR_CONTROL) and stays up',
    async (command) => {
      const url = await start();
      const client = await connect(url);
      const error = await client.request(command as 'query-vms', {}).then(
        () => undefined,
        (failure: unknown) => failure,
      );
      expect(error).toMatchObject({
        code: 'ERR_CONTROL',
        message: expect.stringContaining(`unknown command "${command}"`),
      });
      expect(await rawRequest(url, { id: 9, command, args: {} })).toMatchObject({
        id: 9,
        error: { code: 'ERR_CONTROL' },
      });
      await expect(client.request('query-vms', {})).resolves.toEqual({ vms: [] });
    },
  );
});

describe('ControlServer Origin check', () => {
  it.each<[string, string[] | undefined, string | undefined, 'open' | number]>([
    ['no Origin header, default options', undefined, undefined, 'open'],
    ['no Origin header, origins allowed', ['https://console.example'], undefined, 'open'],
    ['an Origin header, default options', undefined, 'https://evil.example', 403],
    ['an Origin header, empty allow list', [], 'http://localhost:3000', 403],
    ['the "null" origin', undefined, 'null', 403],
    ['an allowed origin', ['https://console.example'], 'https://console.example', 'open'],
    ['one of several allowed origins', ['https://a.example', 'http://localhost:3000'], 'http://localhost:3000', 'open'],
    ['another origin than the allowed one', ['https://console.example'], 'https://console.example.evil', 403],
    ['the allowed host on another port', ['https://console.example'], 'https://console.example:8443', 403],
    ['the allowed host over another scheme', ['https://console.example'], 'http://console.example', 403],
  ])('%s (allow %j, origin %s) → %s', async (_name, allowOrigins, origin, expected) => {
    const url = await start(allowOrigins === undefined ? {} : { allowOrigins });
    expect(await handshake(url, origin === undefined ? {} : { origin })).toBe(expected);
  });

  it('refuses the old Sec-WebSocket-Origin header too', async () => {
    const url = await start();
    expect(await handshake(url, { protocolVersion: 8, origin: 'https://evil.example' })).toBe(403);
  });

  it('logs the refusal with the origin', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
    const url = await start({ logger });
    expect(await handshake(url, { origin: 'https://evil.example' })).toBe(403);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 40, origin: 'https://evil.example' });
  });

  it('a refused page gets no answer; the real client still works', async () => {
    const url = await start();
    expect(await handshake(url, { origin: 'https://evil.example' })).toBe(403);
    const client = await connect(url);
    await expect(client.request('query-vms', {})).resolves.toEqual({ vms: [] });
  });
});
