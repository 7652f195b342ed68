/**
 * A destination countersigns only what it can hold the source to. Here the source's data
 * connection is 127.0.0.1's (mutual TLS), but it signs its record with another agent's key —
 * the record says so, and the destination, whose TLS peer is 127.0.0.1, refuses to countersign
 * it and says why. The VM still arrives (the record is no part of the migration's outcome), the
 * source's report carries the refusal, and the destination keeps the record it refused in its
 * audit log, which still verifies. In process, over real sockets: one AgentDaemon as the
 * destination, the source's OutgoingMigrations driven directly so that its signer can lie.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentDaemon } from '@livemig/agent';
import { silentLogger } from '@livemig/shared';
import { ControlClient } from '@livemig/shared/control';
import { VmHost } from '@livemig/shared/host';
import {
  createSigner,
  initPki,
  issueCertificate,
  loadPki,
  TrustAnchor,
  verifyAuditLog,
  type AuditEntry,
  type SignedRecord,
} from '@livemig/shared/security';
import { parseVmSpec } from '@livemig/shared/vm';
import { OutgoingMigrations } from '../../agent/src/outgoing-migrations.ts';
import { waitUntil } from '../helpers/wait.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'livemig-refusal-'));
  await initPki(dir);
  for (const name of ['127.0.0.1', '127.0.0.2', '127.0.0.3']) await issueCertificate(dir, { name, role: 'agent' });
  await issueCertificate(dir, { name: 'oscar', role: 'operator' });
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('the destination refuses to countersign a record it cannot hold the source to', () => {
  it('a record signed by another agent than the TLS peer: refused, said why, the VM arrives anyway', async () => {
    const destLog = join(dir, 'dest', 'audit.log');
    const dest = await AgentDaemon.start({
      control: { host: '127.0.0.2', port: 0 },
      listen: { host: '127.0.0.2', port: 0 },
      logger: silentLogger(),
      security: { pki: await loadPki(dir, '127.0.0.2'), allowSource: ['127.0.0.*'] },
      auditLog: destLog,
    });
    const host = new VmHost();
    try {
      const operator = await loadPki(dir, 'oscar');
      const client = await ControlClient.connect(dest.controlUrl, {
        tls: { ca: operator.ca, cert: operator.cert, key: operator.key },
        expectName: '127.0.0.2',
      });
      const { ticket } = await client.request('prepare-incoming', { vm: 'vm', from: '127.0.0.1' });
      client.close();

      await host.create('vm', parseVmSpec({ memory: '8MiB', init: 'random', workload: 'idle', seed: 3 }));
      const kept: SignedRecord[] = [];
      const outgoing = new OutgoingMigrations({
        host,
        agentId: 'liar',
        logger: silentLogger(),
        emit: () => {},
        pki: await loadPki(dir, '127.0.0.1'),
        stillArriving: () => undefined,
        // The lie: the data connection is 127.0.0.1's, the record is signed as 127.0.0.3.
        signer: createSigner(await loadPki(dir, '127.0.0.3')),
        keepRecord: async (record) => {
          kept.push(record);
        },
      });
      const id = outgoing.start('vm', dest.dataAddress!, 'precopy', {}, { ticket, destName: '127.0.0.2' });
      const report = await waitUntil(() => outgoing.report(id) ?? undefined, { what: 'the report', timeoutMs: 60_000 });

      expect(report.outcome).toBe('completed');
      expect(report.record?.countersignature).toEqual({
        status: 'refused',
        by: '127.0.0.2',
        reason: expect.stringMatching(/^the source's signature: it is signed by 127\.0\.0\.3 .*, not by 127\.0\.0\.1 /),
      });
      expect(kept).toEqual([report.record]);

      const text = await readFile(destLog, 'utf8');
      const trust = new TrustAnchor(operator.ca);
      expect(verifyAuditLog(text, trust)).toMatchObject({ ok: true });
      const records = text
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line) as AuditEntry)
        .filter((entry) => entry.kind === 'record');
      expect(records).toHaveLength(1);
      expect(records[0]).toMatchObject({ role: 'dest', record: { countersignature: { status: 'refused' } } });
    } finally {
      await dest.stop('test over');
      await host.removeAll();
    }
  });
});
