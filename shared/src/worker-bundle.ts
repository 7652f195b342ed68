/**
 * Worker threads that run TypeScript (the vCPU, the destination's post-copy fault thread, the
 * source's fault worker) boot from one plain-JavaScript bundle of their module graph, built once
 * with esbuild and kept on disk, instead of through tsx.
 *
 * Why: a worker does not inherit the parent's tsx loader. Registering it in the worker starts
 * Node's module-hooks thread (another isolate) and sends every import of the worker's graph
 * through it: measured here, 0.57–0.79 s of CPU per worker for the fault thread's 120 modules,
 * against 0.10–0.18 s to load the same graph as one bundle. On a 2-core machine that CPU came
 * out of the copy: a destination used 1.5–1.6 s of CPU per 128 MiB post-copy with its fault
 * thread, 0.8–0.9 s without it, and post-copy took 1.4 s instead of 0.8.
 *
 * workerEntry(entry) returns what the worker should import: the bundle when one is on disk and
 * every file it was built from is unchanged (size and mtime, as recorded by its manifest), else
 * the TypeScript entry itself (the boot module then registers tsx, as before) while a bundle is
 * built in the background for the next worker. Bundles live in node_modules/.cache beside the
 * repository's packages, so that the packages they leave out (everything not @livemig/*: native
 * modules, msgpack-lite …) resolve from there as they do from the sources. Written to a
 * temporary name and renamed, so agents that build the same bundle at once never read half of
 * one. LIVEMIG_WORKER_BUNDLES=0 turns bundles off (every worker through tsx).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Where bundles are kept by default: <repository>/node_modules/.cache/livemig-workers. */
export function defaultBundleDir(): string {
  return fileURLToPath(new URL('../../node_modules/.cache/livemig-workers', import.meta.url));
}

/**
 * A module that names a script beside itself (`new URL('./x.mjs', import.meta.url)`, to start a
 * worker) would name it beside the bundle instead: such a graph is not bundled (tsx loads it).
 */
const SCRIPT_BESIDE_MODULE = /new URL\(\s*["']\.{1,2}\/[^"']*\.[cm]?[jt]s["']\s*,\s*import\.meta\.url/;

/** This module's source file. */
const SELF = fileURLToPath(import.meta.url);

/** The oldest Node a bundle must run on (package.json engines). */
const NODE_TARGET = 'node20';

/** What a bundle was built from: each input file's path, size and mtime. */
interface Manifest {
  entry: string;
  bundle: string;
  inputs: { path: string; size: number; mtimeMs: number }[];
}

export interface WorkerBundleOptions {
  /** @default defaultBundleDir() */
  dir?: string;
  /** @default process.env */
  env?: NodeJS.ProcessEnv;
}

/** Builds under way in this process, by bundle key (one at a time per entry). */
const building = new Map<string, Promise<string | undefined>>();

function keyOf(entryPath: string): string {
  const base = entryPath
    .split('/')
    .slice(-2)
    .join('-')
    .replace(/\.[cm]?ts$/, '');
  return `${base}-${createHash('sha256').update(entryPath).digest('hex').slice(0, 12)}`;
}

/** True when the environment turns bundles off (LIVEMIG_WORKER_BUNDLES=0). */
export function workerBundlesOff(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.LIVEMIG_WORKER_BUNDLES === '0';
}

/**
 * The file URL of a current bundle of `entryUrl` (a TypeScript module's file URL), or undefined
 * when there is none or a file it was built from changed since. Synchronous: a stat per input.
 */
export function currentBundle(entryUrl: string, options: WorkerBundleOptions = {}): string | undefined {
  const dir = options.dir ?? defaultBundleDir();
  const entryPath = fileURLToPath(entryUrl);
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(join(dir, `${keyOf(entryPath)}.json`), 'utf8')) as Manifest;
  } catch {
    return undefined;
  }
  if (manifest.entry !== entryPath) return undefined;
  try {
    for (const input of manifest.inputs) {
      const stat = statSync(input.path);
      if (stat.size !== input.size || stat.mtimeMs !== input.mtimeMs) return undefined;
    }
    statSync(manifest.bundle);
  } catch {
    return undefined;
  }
  return pathToFileURL(manifest.bundle).href;
}

/**
 * Build (or rebuild) the bundle of `entryUrl`; resolves to its file URL, or undefined if it
 * could not be built (the worker then keeps booting through tsx; the reason is returned to
 * nobody: bundles are an optimisation, never a requirement).
 */
export function buildBundle(entryUrl: string, options: WorkerBundleOptions = {}): Promise<string | undefined> {
  const dir = options.dir ?? defaultBundleDir();
  const entryPath = fileURLToPath(entryUrl);
  const key = keyOf(entryPath);
  const pending = building.get(key);
  if (pending) return pending;
  const build = (async (): Promise<string | undefined> => {
    try {
      const esbuild = await import('esbuild');
      mkdirSync(dir, { recursive: true });
      const bundle = join(dir, `${key}.mjs`);
      const temporary = `${bundle}.${process.pid}.${Date.now()}.tmp`;
      const result = await esbuild.build({
        entryPoints: [entryPath],
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: NODE_TARGET,
        outfile: temporary,
        metafile: true,
        logLevel: 'silent',
        plugins: [
          {
            // Only the repository's own sources go into the bundle; packages resolve at run time.
            name: 'livemig-packages-external',
            setup(build) {
              build.onResolve({ filter: /^[^./]/ }, (args) =>
                args.path.startsWith('@livemig/') ? undefined : { path: args.path, external: true },
              );
            },
          },
        ],
      });
      const cwd = process.cwd();
      // This file is an input of every bundle too: a change to how they are built rebuilds them.
      const paths = new Set([...Object.keys(result.metafile.inputs).map((input) => resolve(cwd, input)), SELF]);
      const inputs = [...paths].map((path) => {
        const stat = statSync(path);
        return { path, size: stat.size, mtimeMs: stat.mtimeMs };
      });
      if (SCRIPT_BESIDE_MODULE.test(readFileSync(temporary, 'utf8'))) {
        rmSync(temporary, { force: true });
        return undefined;
      }
      renameSync(temporary, bundle);
      const manifest: Manifest = { entry: entryPath, bundle, inputs };
      const manifestPath = join(dir, `${key}.json`);
      writeFileSync(`${manifestPath}.${process.pid}.tmp`, JSON.stringify(manifest));
      renameSync(`${manifestPath}.${process.pid}.tmp`, manifestPath);
      return pathToFileURL(bundle).href;
    } catch {
      return undefined;
    } finally {
      building.delete(key);
    }
  })();
  building.set(key, build);
  return build;
}

/**
 * What a worker whose code is the TypeScript module `entryUrl` should import: a current bundle,
 * or the entry itself while one is built in the background for the next worker.
 */
export function workerEntry(entryUrl: string, options: WorkerBundleOptions = {}): string {
  if (workerBundlesOff(options.env)) return entryUrl;
  const bundle = currentBundle(entryUrl, options);
  if (bundle !== undefined) return bundle;
  void buildBundle(entryUrl, options);
  return entryUrl;
}
