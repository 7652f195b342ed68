/**
 * The determinism oracle for tests (cli/oracle.ts), returning `digest` and `referenceDigest`
 * so a test reads `expect(oracle.digest).toBe(oracle.referenceDigest)`.
 */
import type { VmSpec } from '@livemig/shared/vm';
import { checkOracle as runOracle } from '../../cli/oracle.ts';

export async function checkOracle(
  control: string,
  vm: string,
  spec: VmSpec,
): Promise<{ steps: number; digest: string; referenceDigest: string }> {
  const result = await runOracle(control, vm, spec);
  return { steps: result.steps, digest: result.migratedDigest, referenceDigest: result.referenceDigest };
}
