/**
 * Table-driven metadata validation. Each message's metadata schema (in MESSAGE_SPEC) is a small
 * object of field types; `fromWire` walks it over what msgpack decoded from a hostile peer and
 * builds a fresh, typed object holding only the known fields (unknown keys are ignored, inherited
 * ones are never read, so `__proto__` keys cannot smuggle fields in). `toWire` does the reverse
 * for the encoder. Anything that does not match throws `ERR_BAD_METADATA` naming the field.
 *
 * Binary fields travel as msgpack `bin`: page-number lists as the little-endian bytes of a
 * `Uint32Array` (4 bytes per page instead of up to 5 and no per-element decode), per-page kinds
 * as the bytes of a `Uint8Array`.
 */
import { MigrationError } from '../errors.ts';

/** The type of one metadata field. */
export type FieldSchema =
  /** A safe integer ≥ 0. */
  | 'uint'
  /** An integer in [0, 2^32). */
  | 'uint32'
  /** A finite number. */
  | 'number'
  /** A string of at most MAX_STRING_LENGTH characters. */
  | 'string'
  /** An array (≤ MAX_ARRAY_LENGTH) of integers in [0, 2^32). */
  | 'uint32[]'
  /** An array (≤ MAX_ARRAY_LENGTH) of strings. */
  | 'string[]'
  /** msgpack bin holding little-endian u32s → `Uint32Array` (copied, so it is aligned and owned). */
  | 'u32array'
  /** msgpack bin → `Uint8Array`. */
  | 'u8array'
  /** A plain map of plain data (null, boolean, number, string, bytes, arrays, maps), depth ≤ 32. */
  | 'record'
  /** Section name → digest: at most MAX_DIGESTS entries, names ≤ 64 and digests ≤ 128 characters. */
  | 'digests'
  /** One of the listed strings. */
  | { readonly oneOf: readonly string[] }
  /** A nested map with its own fields. */
  | { readonly fields: ObjectSchema }
  /** A field that may be absent (then it is absent in the decoded message too); present, it has this type. */
  | { readonly optional: FieldSchema };

/** Field name → type. Every listed field is required unless its type is `{ optional }`. */
export type ObjectSchema = Readonly<Record<string, FieldSchema>>;

/** Longest string accepted in metadata. */
export const MAX_STRING_LENGTH = 65_536;
/** Longest plain array accepted in metadata (versions, capabilities). */
export const MAX_ARRAY_LENGTH = 4096;
/** Deepest nesting accepted inside a `record` field. */
export const MAX_RECORD_DEPTH = 32;
/** Most entries of a `digests` field (one per section). */
export const MAX_DIGESTS = 16;

const IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function bad(path: string, what: string): MigrationError {
  return new MigrationError('ERR_BAD_METADATA', `metadata field "${path}" ${what}`);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Validate `raw` (as decoded by msgpack) against `schema` and return a fresh object with exactly
 * the schema's fields (added to `out`, e.g. `{ type }`), converted to their in-memory types.
 * Throws `ERR_BAD_METADATA`.
 */
export function fromWire(
  schema: ObjectSchema,
  raw: unknown,
  path = '',
  out: Record<string, unknown> = {},
): Record<string, unknown> {
  // A `__proto__` key in the msgpack map may have replaced the prototype; we accept that object
  // but read own properties only.
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || raw instanceof Uint8Array) {
    throw bad(path || '(root)', 'is not a map');
  }
  const source = raw as Record<string, unknown>;
  for (const key of Object.keys(schema)) {
    const fieldPath = path ? `${path}.${key}` : key;
    let type = schema[key]!;
    if (typeof type === 'object' && 'optional' in type) {
      if (!Object.hasOwn(source, key)) continue;
      type = type.optional;
    }
    if (!Object.hasOwn(source, key)) throw bad(fieldPath, 'is missing');
    out[key] = fieldFromWire(type, source[key], fieldPath);
  }
  return out;
}

function fieldFromWire(type: FieldSchema, value: unknown, path: string): unknown {
  switch (type) {
    case 'uint':
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
        throw bad(path, 'is not a non-negative integer');
      }
      return value;
    case 'uint32':
      if (!isUint32(value)) throw bad(path, 'is not an integer in [0, 2^32)');
      return value;
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) throw bad(path, 'is not a finite number');
      return value;
    case 'string':
      if (typeof value !== 'string' || value.length > MAX_STRING_LENGTH) throw bad(path, 'is not a string');
      return value;
    case 'uint32[]':
      if (!Array.isArray(value) || value.length > MAX_ARRAY_LENGTH || !value.every(isUint32)) {
        throw bad(path, 'is not a list of integers in [0, 2^32)');
      }
      return [...(value as number[])];
    case 'string[]':
      if (
        !Array.isArray(value) ||
        value.length > MAX_ARRAY_LENGTH ||
        !value.every((s) => typeof s === 'string' && s.length <= MAX_STRING_LENGTH)
      ) {
        throw bad(path, 'is not a list of strings');
      }
      return [...(value as string[])];
    case 'u32array':
      if (!(value instanceof Uint8Array) || value.length % 4 !== 0) {
        throw bad(path, 'is not a byte string of little-endian u32s');
      }
      return u32FromBytes(value);
    case 'u8array':
      if (!(value instanceof Uint8Array)) throw bad(path, 'is not a byte string');
      return new Uint8Array(value.buffer, value.byteOffset, value.length);
    case 'record':
      if (!isPlainObject(value)) throw bad(path, 'is not a map');
      checkPlainData(value, path, 0);
      return value;
    case 'digests': {
      if (!isPlainObject(value)) throw bad(path, 'is not a map');
      const entries = Object.entries(value);
      const ok =
        entries.length <= MAX_DIGESTS &&
        entries.every(([k, v]) => k.length <= 64 && typeof v === 'string' && v.length <= 128);
      if (!ok) throw bad(path, `is not a map of at most ${MAX_DIGESTS} section names to digests`);
      return { ...(value as Record<string, string>) };
    }
    default:
      if ('oneOf' in type) {
        if (typeof value !== 'string' || !type.oneOf.includes(value)) {
          throw bad(path, `is not one of ${type.oneOf.join(' | ')}`);
        }
        return value;
      }
      if ('optional' in type) return fieldFromWire(type.optional, value, path);
      return fromWire(type.fields, value, path);
  }
}

function isUint32(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffff_ffff;
}

function checkPlainData(value: unknown, path: string, depth: number): void {
  if (depth > MAX_RECORD_DEPTH) throw bad(path, `nests deeper than ${MAX_RECORD_DEPTH}`);
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw bad(path, 'holds a non-finite number');
    return;
  }
  if (value instanceof Uint8Array) return;
  if (Array.isArray(value)) {
    for (const item of value) checkPlainData(item, path, depth + 1);
    return;
  }
  if (isPlainObject(value)) {
    for (const key of Object.keys(value)) checkPlainData(value[key], `${path}.${key}`, depth + 1);
    return;
  }
  throw bad(path, 'holds a value that is not plain data');
}

/** Copy little-endian u32 bytes into a fresh (aligned, owned) Uint32Array. */
export function u32FromBytes(bytes: Uint8Array): Uint32Array {
  const out = new Uint32Array(bytes.length >>> 2);
  if (IS_LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(bytes);
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    for (let i = 0; i < out.length; i++) out[i] = view.getUint32(i * 4, true);
  }
  return out;
}

/** The little-endian bytes of a Uint32Array, as a Buffer view (no copy on little-endian hosts). */
export function u32ToBytes(values: Uint32Array): Buffer {
  if (IS_LITTLE_ENDIAN) return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  const out = Buffer.allocUnsafe(values.byteLength);
  for (let i = 0; i < values.length; i++) out.writeUInt32LE(values[i]!, i * 4);
  return out;
}

/** The bytes of a Uint8Array as a Buffer view (msgpack-lite writes Buffers as `bin`). */
export function u8ToBytes(values: Uint8Array): Buffer {
  return Buffer.isBuffer(values) ? values : Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}

/** Convert a message's fields to what msgpack-lite should write, following `schema`. */
export function toWire(schema: ObjectSchema, value: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(schema)) {
    const type = schema[key]!;
    if (typeof type === 'object' && 'optional' in type && value[key] === undefined) continue;
    out[key] = fieldToWire(type, value[key]);
  }
  return out;
}

function fieldToWire(type: FieldSchema, field: unknown): unknown {
  if (type === 'u32array') return u32ToBytes(field as Uint32Array);
  if (type === 'u8array') return u8ToBytes(field as Uint8Array);
  if (typeof type === 'object' && 'fields' in type) return toWire(type.fields, field as Record<string, unknown>);
  if (typeof type === 'object' && 'optional' in type) return fieldToWire(type.optional, field);
  return field;
}
