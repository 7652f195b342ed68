/**
 * Where the dashboard may listen (loopback literals and localhost; anything else only with
 * --insecure-listen), which Host headers name it, and the reconnect backoff.
 */
import { describe, expect, it } from 'vitest';
import { backoffMs } from '../../../../cli/dashboard/backoff.ts';
import { buildProgram, runCli } from '../../../../cli/program.ts';
import {
  checkListenAddress,
  isLoopbackHostHeader,
  isLoopbackIp,
  isLoopbackListenHost,
} from '../../../../cli/dashboard/listen-address.ts';

describe('the listen address', () => {
  it('loopback: 127.0.0.0/8, ::1 (and its mapped and long forms), localhost', () => {
    for (const host of [
      '127.0.0.1',
      '127.1.2.3',
      '::1',
      '0:0:0:0:0:0:0:1',
      '::ffff:127.0.0.1',
      'localhost',
      'LOCALHOST',
    ]) {
      expect(isLoopbackListenHost(host), host).toBe(true);
    }
  });

  it('not loopback: wildcards, other addresses, and names — "127.example.com" is a name, whatever it resolves to', () => {
    for (const host of ['0.0.0.0', '::', '10.0.0.1', '::ffff:10.0.0.1', '128.0.0.1', '127.example.com', 'agent-a']) {
      expect(isLoopbackListenHost(host), host).toBe(false);
    }
    expect(isLoopbackIp('localhost')).toBe(false);
  });

  it('refuses a non-loopback --listen with ERR_INVALID_ARGUMENT that says why, unless --insecure-listen', () => {
    expect(() => checkListenAddress('0.0.0.0:8080', false)).toThrow(
      expect.objectContaining({
        code: 'ERR_INVALID_ARGUMENT',
        message: expect.stringMatching(/no login.*--insecure-listen/s),
      }),
    );
    expect(checkListenAddress('0.0.0.0:8080', true)).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(checkListenAddress('[::1]:0', false)).toEqual({ host: '::1', port: 0 });
    expect(() => checkListenAddress('8080', false)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
  });

  it('`livemig dashboard --listen 0.0.0.0:8080` is bad input: one error line, exit 2, nothing served', async () => {
    let stderr = '';
    const output = { out: () => {}, err: (text: string) => (stderr += text) };
    const code = await runCli(
      await buildProgram(output),
      ['node', 'livemig', 'dashboard', '--listen', '0.0.0.0:8080'],
      output,
    );
    expect(code).toBe(2);
    expect(stderr).toMatch(/^livemig: ERR_INVALID_ARGUMENT: --listen 0\.0\.0\.0:8080 is not a loopback address: .*\n$/);
  });
});

describe('the Host header', () => {
  it('names a loopback host with our port', () => {
    expect(isLoopbackHostHeader('127.0.0.1:8080', 8080)).toBe(true);
    expect(isLoopbackHostHeader('localhost:8080', 8080)).toBe(true);
    expect(isLoopbackHostHeader('[::1]:8080', 8080)).toBe(true);
    expect(isLoopbackHostHeader('127.0.0.1', 80)).toBe(true);
  });

  it('anything else is refused: another port, a rebound name, none', () => {
    expect(isLoopbackHostHeader('127.0.0.1:8081', 8080)).toBe(false);
    expect(isLoopbackHostHeader('evil.example:8080', 8080)).toBe(false);
    expect(isLoopbackHostHeader('127.0.0.1.evil.example:8080', 8080)).toBe(false);
    expect(isLoopbackHostHeader(undefined, 8080)).toBe(false);
    expect(isLoopbackHostHeader('', 8080)).toBe(false);
  });
});

describe('the reconnect backoff', () => {
  it('doubles from 250 ms to at most 5 s, ±20%', () => {
    expect([0, 1, 2, 3, 4, 5, 10].map((n) => backoffMs(n, 0.5))).toEqual([250, 500, 1000, 2000, 4000, 5000, 5000]);
    expect(backoffMs(0, 0)).toBe(200);
    expect(backoffMs(10, 0.999999)).toBe(6000);
  });
});
