/**
 * Signatures with fleet identities: ES256 over the bytes, checked against the certificate the
 * signer embeds — which the fleet CA must have issued to the expected agent, valid at the time.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TrustAnchor, type Signer } from '@livemig/shared/security';
import { createTestFleet, type TestFleet } from '../../../helpers/signers.ts';

let fleet: TestFleet;
let a: Signer;
let trust: TrustAnchor;
beforeAll(async () => {
  fleet = await createTestFleet();
  a = await fleet.signer('agent-a');
  trust = new TrustAnchor(await readFile(join(fleet.dir, 'ca.pem'), 'utf8'));
});
afterAll(() => fleet.remove());

const data = Buffer.from('the bytes that were signed');

describe('ES256 signatures', () => {
  it('a signature is 64 bytes r‖s in base64url and verifies with the embedded certificate', () => {
    const signature = a.sign(data);
    expect(signature).toMatch(/^[A-Za-z0-9_-]{86}$/);
    expect(trust.verifies(a.certificate, data, signature)).toBe(true);
  });

  it('does not verify for other bytes, another certificate, or a damaged or malformed signature', async () => {
    const signature = a.sign(data);
    const b = await fleet.signer('agent-b');
    expect(trust.verifies(a.certificate, Buffer.from('other bytes'), signature)).toBe(false);
    expect(trust.verifies(b.certificate, data, signature)).toBe(false);
    const flipped = signature[10] === 'A' ? 'B' : 'A';
    expect(trust.verifies(a.certificate, data, signature.slice(0, 10) + flipped + signature.slice(11))).toBe(false);
    for (const bad of ['', 'short', signature + 'A', 42, null])
      expect(trust.verifies(a.certificate, data, bad)).toBe(false);
    expect(trust.verifies('not a certificate', data, signature)).toBe(false);
  });
});

describe('TrustAnchor.refuses: is this a certificate the fleet CA issued to that agent?', () => {
  it('accepts the agent’s own certificate with its fingerprint, name and role, within its validity', () => {
    expect(
      trust.refuses(a.certificate, { fingerprint: a.fingerprint, name: 'agent-a', at: Date.now() }),
    ).toBeUndefined();
  });

  it('refuses a certificate of another CA, even with the same name', async () => {
    const forged = await fleet.outsider('agent-a');
    expect(trust.refuses(forged.certificate, { name: 'agent-a' })).toMatch(/not issued by the fleet CA/);
  });

  it('refuses another fingerprint, another name, a person’s role, a time outside its validity, garbage', async () => {
    const operator = await fleet.signer('olga', 'operator');
    expect(trust.refuses(a.certificate, { fingerprint: operator.fingerprint })).toMatch(/fingerprint/);
    expect(trust.refuses(a.certificate, { name: 'agent-b' })).toMatch(/agent-a.*not "agent-b"/);
    expect(trust.refuses(operator.certificate)).toMatch(/role is operator, not agent/);
    expect(trust.refuses(a.certificate, { at: Date.now() + 2 * 365 * 86_400_000 })).toMatch(/not valid at/);
    expect(trust.refuses('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----')).toMatch(/not an X\.509/);
    expect(trust.refuses(undefined)).toMatch(/not an X\.509/);
  });
});
