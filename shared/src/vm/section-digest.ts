/**
 * Digests of the small sections (CPU registers, device state) that a migration verifies next
 * to memory: sha256 over the register bytes, and over a canonical serialisation of the device
 * state (keys sorted at every level, so two equal states hash equally however they were
 * built). Each side hashes its own copy — the source what it exported, the destination what it
 * exported again after importing — so a register or device field changed in transit fails the
 * migration before the destination runs the VM.
 */
import { createHash } from 'node:crypto';

/** sha256 (hex) of the CPU state bytes. */
export function cpuStateDigest(registers: Uint8Array): string {
  return createHash('sha256').update(registers).digest('hex');
}

/** sha256 (hex) of a plain-data value (device state), canonically serialised. */
export function deviceStateDigest(state: unknown): string {
  return createHash('sha256').update(canonicalJson(state)).digest('hex');
}

/** JSON with object keys sorted at every level; typed arrays as arrays. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(canonical(value));
}

function canonical(value: unknown): unknown {
  if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<number>);
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) out[key] = canonical((value as Record<string, unknown>)[key]);
    return out;
  }
  return value;
}

/**
 * The sections among `names` whose digests differ between `a` and `b`, or that either side
 * lacks (a digest missing is a failed verification, never a pass).
 */
export function mismatchedSections(
  a: Readonly<Record<string, string>>,
  b: Readonly<Record<string, string>>,
  names: readonly string[],
): string[] {
  return names.filter((name) => a[name] === undefined || b[name] === undefined || a[name] !== b[name]);
}
