/**
 * @livemig/shared — what both agents are and speak. Leaf modules are re-exported here; the
 * larger areas have their own entry points: `@livemig/shared/vm`, `@livemig/shared/protocol`,
 * `@livemig/shared/report`.
 */
export * from './errors.ts';
export * from './units.ts';
export * from './logger.ts';
export * from './state-machine.ts';
export * from './address.ts';
export * from './daemon.ts';
export * from './admission.ts';
export { answerClientError } from './http-client-error.ts';
export { workerBundlesOff, workerEntry, type WorkerBundleOptions } from './worker-bundle.ts';
export { buildBundle } from './bundle-build.ts';
export { bundleRefused, currentBundle, type BundleLocation } from './bundle-manifest.mjs';
