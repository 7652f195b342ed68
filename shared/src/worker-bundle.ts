/**
 * Worker threads that run TypeScript (the vCPU, the destination's post-copy fault thread, the
 * source's fault worker) boot from one plain-JavaScript bundle of their module graph
 * (bundle-build.ts), built once and kept on disk, instead of through tsx.
 *
 * Why: a worker does not inherit the parent's tsx loader. Registering it in the worker starts
 * Node's module-hooks thread (another isolate) and sends every import of the worker's graph
 * through it: measured here, 0.57–0.79 s of CPU per worker for the fault thread's 120 modules,
 * against 0.10–0.18 s to load the same graph as one bundle. On a 2-core machine that CPU came
 * out of the copy: a destination used 1.5–1.6 s of CPU per 128 MiB post-copy with its fault
 * thread, 0.8–0.9 s without it, and post-copy took 1.4 s instead of 0.8.
 *
 * workerEntry(entry) returns what the worker should import: the bundle when one is on disk and
 * every file it was built from is unchanged (bundle-manifest.mjs), else the TypeScript entry
 * itself (the boot module then registers tsx, as before) while a bundle is built in the
 * background for the next worker. LIVEMIG_WORKER_BUNDLES=0 turns worker bundles off (every
 * worker through tsx).
 */
import { bundleRefused, currentBundle, type BundleLocation } from './bundle-manifest.mjs';
import { buildBundle } from './bundle-build.ts';

export interface WorkerBundleOptions extends BundleLocation {
  /** @default process.env */
  env?: NodeJS.ProcessEnv;
}

/** True when the environment turns worker bundles off (LIVEMIG_WORKER_BUNDLES=0). */
export function workerBundlesOff(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.LIVEMIG_WORKER_BUNDLES === '0';
}

/**
 * What a worker whose code is the TypeScript module `entryUrl` should import: a current bundle,
 * or the entry itself while one is built in the background for the next worker (unless its graph
 * was refused and has not changed since).
 */
export function workerEntry(entryUrl: string, options: WorkerBundleOptions = {}): string {
  if (workerBundlesOff(options.env)) return entryUrl;
  const bundle = currentBundle(entryUrl, options);
  if (bundle !== undefined) return bundle;
  if (!bundleRefused(entryUrl, options)) void buildBundle(entryUrl, options);
  return entryUrl;
}
