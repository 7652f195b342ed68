import { describe, expect, it } from 'vitest';
import { formatHostPort, isLoopback, listenError, parseHostPort } from '@livemig/shared';

describe('parseHostPort', () => {
  it.each([
    ['127.0.0.1:7070', { host: '127.0.0.1', port: 7070 }],
    ['localhost:0', { host: 'localhost', port: 0 }],
    ['[::1]:7070', { host: '::1', port: 7070 }],
    ['ws://10.0.0.2:7171', { host: '10.0.0.2', port: 7171 }],
  ])('%s', (text, expected) => {
    expect(parseHostPort(text)).toEqual(expected);
  });

  it.each(['7070', 'host:', ':7070', 'host:70000', '::1:7070', 'a b:1'])('rejects %j', (text) => {
    expect(() => parseHostPort(text)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
  });

  it('formats IPv6 with brackets and knows loopback', () => {
    expect(formatHostPort({ host: '::1', port: 1 })).toBe('[::1]:1');
    expect(isLoopback('127.0.0.5')).toBe(true);
    expect(isLoopback('10.0.0.1')).toBe(false);
  });
});

describe('listenError', () => {
  /** An error as net.Server emits it for a failed listen. */
  const failed = (code: string): NodeJS.ErrnoException =>
    Object.assign(new Error(`listen ${code}: …`), { code, syscall: 'listen' });

  it.each([
    ['EADDRINUSE', 'ERR_ADDRESS_IN_USE', /^the data port cannot listen on 127\.0\.0\.1:7070: another process/],
    ['EADDRNOTAVAIL', 'ERR_ADDRESS_NOT_AVAILABLE', /127\.0\.0\.1:7070: that address is not assigned to this host/],
    ['EACCES', 'ERR_ADDRESS_NOT_AVAILABLE', /127\.0\.0\.1:7070 \(listen EACCES/],
    ['ENOTFOUND', 'ERR_ADDRESS_NOT_AVAILABLE', /ENOTFOUND/],
  ])('%s → %s, naming the port and the cause', (errno, code, message) => {
    const cause = failed(errno);
    const error = listenError('the data port', { host: '127.0.0.1', port: 7070 }, cause);
    expect(error).toMatchObject({ code, message: expect.stringMatching(message), cause });
  });
});
