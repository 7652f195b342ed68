/**
 * Canonical JSON: the one byte string a value is signed and hashed as. Object keys sorted by
 * UTF-16 code unit, no whitespace, strings and numbers written as ECMAScript's JSON.stringify
 * writes them — which is RFC 8785 (JCS) for the values livemig signs: plain objects, arrays,
 * strings, finite numbers, booleans and null. Anything else (undefined in an array, NaN, a
 * Date, bytes, a Map, a class instance) throws rather than be written some way a verifier in
 * another language could not reproduce.
 *
 * Why JSON and not msgpack: the records and the audit log are read by people and by tools that
 * are not livemig (`jq`, a verifier written in Python or Go): sorted-key JSON is specified
 * (JCS) and reproducible everywhere, and the audit log is JSON lines already, so an entry's
 * line *is* its canonical form. msgpack has no canonical form: key order is insertion order,
 * and an integer-valued double may travel as an int or a float depending on the encoder.
 */
import { MigrationError } from '../errors.ts';

/** `value` as canonical JSON (JCS). Throws ERR_INVALID_ARGUMENT for what JSON cannot carry exactly. */
export function canonicalJson(value: unknown): string {
  return write(value, '');
}

/** The canonical JSON of `value` as UTF-8 bytes: what is signed. */
export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value), 'utf8');
}

function write(value: unknown, path: string): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw unfit(path, `the number ${value}`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    return `[${value.map((item, i) => write(item === undefined ? unfitItem(path, i) : item, `${path}[${i}]`)).join(',')}]`;
  }
  if (typeof value === 'object' && isPlain(value)) {
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record)
      .filter((key) => record[key] !== undefined)
      .sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${write(record[key], `${path}.${key}`)}`).join(',')}}`;
  }
  throw unfit(path, typeof value === 'object' ? 'a non-plain object' : `a ${typeof value}`);
}

function isPlain(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function unfitItem(path: string, index: number): never {
  throw unfit(`${path}[${index}]`, 'undefined');
}

function unfit(path: string, what: string): MigrationError {
  return new MigrationError('ERR_INVALID_ARGUMENT', `canonical JSON cannot hold ${what} (at ${path || 'the root'})`);
}
