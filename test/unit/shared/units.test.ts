import { describe, expect, it } from 'vitest';
import { parseDuration, parseRate, parseSize, formatBytes, formatDuration, formatRate } from '@livemig/shared';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

describe('parseSize', () => {
  it.each([
    ['4096', 4096],
    ['64KiB', 65536],
    ['256MiB', 256 * 2 ** 20],
    ['1GiB', 2 ** 30],
    ['1.5GiB', 1.5 * 2 ** 30],
    ['1GB', 1e9],
    ['16g', 16 * 2 ** 30],
    [' 2 MiB ', 2 * 2 ** 20],
  ])('%s → %d bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(['', 'abc', '12XB', '-1MiB', '1.5', '0.1KiB'])('rejects %j with ERR_INVALID_SIZE', (text) => {
    expect(codeOf(() => parseSize(text))).toBe('ERR_INVALID_SIZE');
  });
});

describe('parseRate', () => {
  it.each([
    ['1gbit', 125e6],
    ['100mbit', 12.5e6],
    ['125MB/s', 125e6],
    ['1GiB/s', 2 ** 30],
    ['20000', 20000],
  ])('%s → %d B/s', (text, rate) => {
    expect(parseRate(text)).toBe(rate);
  });

  it('rejects words with ERR_INVALID_RATE', () => {
    expect(codeOf(() => parseRate('fast'))).toBe('ERR_INVALID_RATE');
  });
});

describe('parseDuration', () => {
  it.each([
    ['300ms', 300],
    ['2s', 2000],
    ['1.5m', 90_000],
    ['500us', 0.5],
    ['20', 20],
  ])('%s → %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it('rejects unknown units with ERR_INVALID_DURATION', () => {
    expect(codeOf(() => parseDuration('10 parsecs'))).toBe('ERR_INVALID_DURATION');
  });
});

describe('formatting', () => {
  it('formats bytes, rates and durations for people', () => {
    expect(formatBytes(2 ** 30)).toBe('1.00 GiB');
    expect(formatBytes(17)).toBe('17 B');
    expect(formatRate(1.234e9)).toBe('1.23 GB/s');
    expect(formatDuration(0.85)).toBe('850 µs');
    expect(formatDuration(1420)).toBe('1.42 s');
  });
});
