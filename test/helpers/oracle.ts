/**
 * The determinism oracle across processes: stop the VM where it runs, read its step count and
 * digest, then run a never-migrated reference VM of the same spec to the same step and compare.
 * Equal digests prove the migration (or the rollback) lost nothing.
 */
import { ControlClient } from '@livemig/shared/control';
import { ToyVm, parseVmSpec, type VmSpec } from '@livemig/shared/vm';

export interface OracleResult {
  steps: number;
  digest: string;
  referenceDigest: string;
}

/** Pause `vm` on the agent at `control` and compare it with a reference run to the same step. */
export async function checkOracle(control: string, vm: string, spec: VmSpec): Promise<OracleResult> {
  const client = await ControlClient.connect(control);
  try {
    await client.request('stop', { vm });
    const { digest, steps } = await client.request('digest', { vm });
    const reference = await ToyVm.boot(parseVmSpec({ ...spec, memory: spec.memoryBytes }));
    try {
      await reference.runSteps(steps);
      return { steps, digest, referenceDigest: await reference.digest() };
    } finally {
      await reference.destroy();
    }
  } finally {
    client.close();
  }
}
