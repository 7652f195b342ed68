/**
 * Signatures with fleet identities: ES256 over the bytes, checked against the certificate the
 * signer embeds — which the fleet CA must have issued to the expected agent, valid at the time.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Signer } from '@livemig/shared/security';
import { useTestFleet } from '../../../helpers/signers.ts';

const f = useTestFleet('agent-a');
let a: Signer;
beforeAll(() => {
  a = f.signer('agent-a');
});

const data = Buffer.from('the bytes that were signed');

describe('ES256 signatures', () => {
  it('a signature is 64 bytes r‖s in base64url and verifies with the embedded certificate', () => {
    const signature = a.sign(data);
    expect(signature).toMatch(/^[A-Za-z0-9_-]{86}$/);
    expect(f.trust.verifies(a.certificate, data, signature)).toBe(true);
  });

  it('does not verify for other bytes, another certificate, or a damaged or malformed signature', async () => {
    const signature = a.sign(data);
    const b = await f.fleet.signer('agent-b');
    expect(f.trust.verifies(a.certificate, Buffer.from('other bytes'), signature)).toBe(false);
    expect(f.trust.verifies(b.certificate, data, signature)).toBe(false);
    const flipped = signature[10] === 'A' ? 'B' : 'A';
    expect(f.trust.verifies(a.certificate, data, signature.slice(0, 10) + flipped + signature.slice(11))).toBe(false);
    for (const bad of ['', 'short', signature + 'A', 42, null])
      expect(f.trust.verifies(a.certificate, data, bad)).toBe(false);
    expect(f.trust.verifies('not a certificate', data, signature)).toBe(false);
  });
});

describe('TrustAnchor.refuses: is this a certificate the fleet CA issued to that agent?', () => {
  it('accepts the agent’s own certificate with its fingerprint, name and role, within its validity', () => {
    expect(
      f.trust.refuses(a.certificate, { fingerprint: a.fingerprint, name: 'agent-a', at: Date.now() }),
    ).toBeUndefined();
  });

  it('refuses a certificate of another CA, even with the same name', async () => {
    const forged = await f.fleet.outsider('agent-a');
    expect(f.trust.refuses(forged.certificate, { name: 'agent-a' })).toMatch(/not issued by the fleet CA/);
  });

  it('refuses another fingerprint, another name, a person’s role, a time outside its validity, garbage', async () => {
    const operator = await f.fleet.signer('olga', 'operator');
    expect(f.trust.refuses(a.certificate, { fingerprint: operator.fingerprint })).toMatch(/fingerprint/);
    expect(f.trust.refuses(a.certificate, { name: 'agent-b' })).toMatch(/agent-a.*not "agent-b"/);
    expect(f.trust.refuses(operator.certificate)).toMatch(/role is operator, not agent/);
    expect(f.trust.refuses(a.certificate, { at: Date.now() + 2 * 365 * 86_400_000 })).toMatch(/not valid at/);
    expect(f.trust.refuses('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----')).toMatch(/not an X\.509/);
    expect(f.trust.refuses(undefined)).toMatch(/not an X\.509/);
  });
});
