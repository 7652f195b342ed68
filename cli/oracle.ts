/**
 * The determinism oracle across processes: stop the VM where it runs, read its step count and
 * digest, then run a never-migrated reference VM of the same spec to the same step at full speed
 * and compare digests. Equal digests prove the migration (or the rollback) lost nothing. Used by
 * `livemig demo`, `livemig lab run` and the integration tests (the one cross-process oracle; the
 * reference run itself is the in-process oracle's, shared/src/vm/oracle.ts).
 */
import { ControlClient } from '@livemig/shared/control';
import type { MigrationReport } from '@livemig/shared/report';
import { runReference, type VmSpec } from '@livemig/shared/vm';

export type OracleResult = NonNullable<MigrationReport['oracle']>;

/**
 * Pause `vm` on an agent and compare it with a reference run to the same step. `agent` is its
 * control URL (plaintext, connected and closed here) or an open client (a secure agent's, which
 * needs `stop` and `digest`: role admin).
 */
export async function checkOracle(agent: string | ControlClient, vm: string, spec: VmSpec): Promise<OracleResult> {
  const client = typeof agent === 'string' ? await ControlClient.connect(agent) : agent;
  try {
    await client.request('stop', { vm });
    const { digest, steps, disk } = await client.request('digest', { vm });
    const reference = await runReference(spec, steps);
    const result: OracleResult = {
      steps,
      migratedDigest: digest,
      referenceDigest: reference.digest,
      match: digest === reference.digest,
    };
    if (reference.disk !== null) {
      // Memory and disk: a migration that lost a block fails the oracle even with memory intact.
      result.disk = { migratedDigest: disk ?? null, referenceDigest: reference.disk };
      result.match &&= disk === reference.disk;
    }
    return result;
  } finally {
    if (client !== agent) client.close();
  }
}

/** The digest a never-migrated VM of this spec has after `steps` steps. */
export async function referenceDigestAt(spec: VmSpec, steps: number): Promise<string> {
  return (await runReference(spec, steps)).digest;
}
