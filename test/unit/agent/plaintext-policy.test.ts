/**
 * Where an agent without a PKI may speak plaintext: loopback always, beyond it only with
 * --insecure (checkPlaintext, agent/src/plaintext-policy.ts).
 */
import { describe, expect, it } from 'vitest';
import { isMigrationError } from '@livemig/shared';
import { checkPlaintext } from '../../../agent/src/plaintext-policy.ts';

const at = (host: string, port = 7070): { host: string; port: number } => ({ host, port });

describe('checkPlaintext', () => {
  it('loopback ports (127.0.0.0/8, ::1, localhost) are allowed and exposed nothing', () => {
    expect(checkPlaintext({ control: at('127.0.0.1'), listen: at('127.9.9.9') }, false).exposed).toEqual([]);
    expect(checkPlaintext({ control: at('::1'), listen: at('localhost') }, false).exposed).toEqual([]);
  });

  it('a port beyond loopback without insecure: ERR_INSECURE naming it, whichever port it is', () => {
    for (const ports of [
      { control: at('0.0.0.0', 7071) },
      { control: at('127.0.0.1'), listen: at('10.0.0.2', 7070) },
    ]) {
      let thrown: unknown;
      try {
        checkPlaintext(ports, false);
      } catch (error) {
        thrown = error;
      }
      expect(isMigrationError(thrown) && thrown.code).toBe('ERR_INSECURE');
      expect(String((thrown as Error).message)).toMatch(/0\.0\.0\.0:7071|10\.0\.0\.2:7070/);
    }
  });

  it('with insecure it is allowed, and says which ports are exposed (for the warnings)', () => {
    const verdict = checkPlaintext({ control: at('127.0.0.1'), listen: at('0.0.0.0'), none: undefined }, true);
    expect(verdict.exposed).toEqual(['listen 0.0.0.0:7070']);
  });
});
