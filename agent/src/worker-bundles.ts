/**
 * The bundles this agent's worker threads boot from (shared/src/worker-bundle.ts: the vCPU, the
 * source's fault worker, the destination's fault thread), built before their first use: by
 * `npm ci` (the root package's `prepare` script, scripts/build-bundles.ts) and, for sources
 * changed since, as an agent starts. Without that, the first worker of each kind boots through
 * tsx (0.6–0.8 s of CPU) while its bundle is built: in a fresh clone that fell on the first
 * migrations, which `livemig compare` runs to calibrate its model ("post-copy setup 318 ms").
 */
import { buildBundle, bundleRefused, currentBundle, workerBundlesOff, type WorkerBundleOptions } from '@livemig/shared';
import { vcpuWorkerEntry } from '@livemig/shared/vm';
import { faultWorkerEntry } from '@livemig/agent-source';
import { faultThreadEntry } from '@livemig/agent-dest';

/** Every worker entry an agent boots from a bundle. */
export function workerEntries(): string[] {
  return [vcpuWorkerEntry(), faultWorkerEntry(), faultThreadEntry()];
}

export interface PrebuiltBundles {
  /** Entries whose bundle was current already. */
  current: string[];
  /** Entries built now. */
  built: string[];
  /** Entries that could not be bundled (their workers boot through tsx). */
  failed: string[];
}

/**
 * Build every worker bundle that is missing or stale (one at a time: this runs beside other work);
 * one whose unchanged graph was refused before is not built again.
 */
export async function prebuildWorkerBundles(options: WorkerBundleOptions = {}): Promise<PrebuiltBundles> {
  const result: PrebuiltBundles = { current: [], built: [], failed: [] };
  if (workerBundlesOff(options.env)) return result;
  for (const entry of workerEntries()) {
    if (currentBundle(entry, options) !== undefined) result.current.push(entry);
    else if (bundleRefused(entry, options)) result.failed.push(entry);
    else if ((await buildBundle(entry, options)) !== undefined) result.built.push(entry);
    else result.failed.push(entry);
  }
  return result;
}
