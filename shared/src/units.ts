/**
 * Parsing and formatting of the quantities users type: sizes ("256MiB", "1GiB", "4096"),
 * rates ("1gbit", "125MB/s", "20000" bytes/s) and durations ("300ms", "2s", "1.5m").
 * Binary prefixes (KiB, MiB, GiB, TiB) are powers of 1024; decimal ones (kB, MB, GB) of 1000,
 * as in QEMU and iproute2. Rates in bits ("mbit", "gbit") are converted to bytes per second.
 */
import { MigrationError } from './errors.ts';

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tib: 1024 ** 4,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  tb: 1000 ** 4,
};

const RATE_UNITS: Record<string, number> = {
  '': 1,
  'b/s': 1,
  bps: 1,
  'kb/s': 1000,
  'mb/s': 1000 ** 2,
  'gb/s': 1000 ** 3,
  'kib/s': 1024,
  'mib/s': 1024 ** 2,
  'gib/s': 1024 ** 3,
  bit: 1 / 8,
  kbit: 1000 / 8,
  mbit: 1000 ** 2 / 8,
  gbit: 1000 ** 3 / 8,
};

const DURATION_UNITS: Record<string, number> = {
  us: 0.001,
  ms: 1,
  s: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
};

const NUMBER_AND_UNIT = /^\s*(\d+(?:\.\d+)?)\s*([a-z/]*)\s*$/i;

function split(text: string): { value: number; unit: string } | undefined {
  const match = NUMBER_AND_UNIT.exec(text);
  if (!match) return undefined;
  return { value: Number(match[1]), unit: (match[2] ?? '').toLowerCase() };
}

/** Parse a size in bytes: "4096", "64KiB", "256MiB", "1.5GiB", "1GB". Whole bytes only. */
export function parseSize(text: string | number): number {
  if (typeof text === 'number') return checkWhole(text, String(text));
  const parts = split(text);
  const factor = parts && SIZE_UNITS[parts.unit];
  if (!parts || factor === undefined) {
    throw new MigrationError(
      'ERR_INVALID_SIZE',
      `cannot parse size "${text}": use a number with an optional unit (KiB, MiB, GiB, TiB, kB, MB, GB), e.g. 256MiB`,
    );
  }
  return checkWhole(parts.value * factor, text);
}

function checkWhole(bytes: number, text: string): number {
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new MigrationError('ERR_INVALID_SIZE', `size "${text}" is not a whole, non-negative number of bytes`);
  }
  return bytes;
}

/** Parse a rate in bytes per second: "1gbit", "100mbit", "125MB/s", "1GiB/s", "20000". */
export function parseRate(text: string | number): number {
  if (typeof text === 'number') return text;
  const parts = split(text);
  const factor = parts && RATE_UNITS[parts.unit];
  if (!parts || factor === undefined) {
    throw new MigrationError(
      'ERR_INVALID_RATE',
      `cannot parse rate "${text}": use e.g. 1gbit, 100mbit, 125MB/s, 1GiB/s, or bytes per second`,
    );
  }
  return parts.value * factor;
}

/** Parse a duration in milliseconds: "300ms", "2s", "1.5m", "500us"; a bare number is ms. */
export function parseDuration(text: string | number): number {
  if (typeof text === 'number') return text;
  const parts = split(text);
  const factor = parts && (parts.unit === '' ? 1 : DURATION_UNITS[parts.unit]);
  if (!parts || factor === undefined) {
    throw new MigrationError(
      'ERR_INVALID_DURATION',
      `cannot parse duration "${text}": use e.g. 300ms, 2s, 1.5m (a bare number means ms)`,
    );
  }
  return parts.value * factor;
}

/** "1.00 GiB", "512.0 MiB", "4.0 KiB", "17 B". */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

/** "1.23 GB/s", "118 MB/s" (decimal, like network tools). */
export function formatRate(bytesPerSec: number): string {
  if (bytesPerSec >= 1e9) return `${(bytesPerSec / 1e9).toFixed(2)} GB/s`;
  if (bytesPerSec >= 1e6) return `${(bytesPerSec / 1e6).toFixed(1)} MB/s`;
  if (bytesPerSec >= 1e3) return `${(bytesPerSec / 1e3).toFixed(1)} kB/s`;
  return `${bytesPerSec.toFixed(0)} B/s`;
}

/** "850 µs", "12.3 ms", "1.42 s". */
export function formatDuration(ms: number): string {
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}
