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

/** Pause `vm` on the agent at `control` and compare it with a reference run to the same step. */
export async function checkOracle(control: string, vm: string, spec: VmSpec): Promise<OracleResult> {
  const client = await ControlClient.connect(control);
  try {
    await client.request('stop', { vm });
    const { digest, steps } = await client.request('digest', { vm });
    const referenceDigest = await referenceDigestAt(spec, steps);
    return { steps, migratedDigest: digest, referenceDigest, match: digest === referenceDigest };
  } finally {
    client.close();
  }
}

/** The digest a never-migrated VM of this spec has after `steps` steps. */
export async function referenceDigestAt(spec: VmSpec, steps: number): Promise<string> {
  return (await runReference(spec, steps)).digest;
}
