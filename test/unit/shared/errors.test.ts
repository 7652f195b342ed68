import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MigrationError, isMigrationError, toMigrationError } from '@livemig/shared';
import { renderErrorDocs } from '../../../scripts/error-docs.ts';

describe('MigrationError', () => {
  it('carries a stable code and serialises to {code, message}', () => {
    const error = new MigrationError('ERR_TIMEOUT', 'too slow');
    expect(error.toJSON()).toEqual({ code: 'ERR_TIMEOUT', message: 'too slow' });
    expect(isMigrationError(error)).toBe(true);
  });

  it('wraps foreign errors with a fallback code and keeps the cause', () => {
    const cause = new TypeError('boom');
    const wrapped = toMigrationError(cause, 'ERR_CONNECTION');
    expect(wrapped.code).toBe('ERR_CONNECTION');
    expect(wrapped.cause).toBe(cause);
    expect(isMigrationError(cause)).toBe(false);
  });

  it('docs/errors.md lists every code exactly as errors.ts does (run `npm run docs:errors`)', () => {
    const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
    expect(doc).toBe(renderErrorDocs());
  });
});
