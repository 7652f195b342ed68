/**
 * `npm ci` / `npm install` (the root package's `prepare` script): build the worker threads'
 * bundles (agent/src/worker-bundles.ts) so that the first migration of a fresh checkout does not
 * pay for them. Never fails the install: a worker without a bundle boots through tsx.
 */
import { prebuildWorkerBundles } from '@livemig/agent';

const started = performance.now();
const bundles = await prebuildWorkerBundles();
const ms = Math.round(performance.now() - started);
console.log(
  `livemig worker bundles: ${bundles.built.length} built, ${bundles.current.length} current` +
    (bundles.failed.length ? `, ${bundles.failed.length} not bundled (those workers boot through tsx)` : '') +
    ` (${ms} ms)`,
);
