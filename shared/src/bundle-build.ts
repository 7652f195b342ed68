/**
 * Builds the plain-JavaScript bundle of a TypeScript entry's module graph with esbuild, and its
 * manifest (bundle-manifest.mjs): worker threads boot from such bundles (worker-bundle.ts), and
 * so does the CLI (cli/cli-bundle.mjs), instead of loading ~100–300 modules through tsx.
 *
 * Bundles live in node_modules/.cache beside the repository's packages, so that the packages
 * they leave out (everything not @livemig/*: native modules, msgpack-lite …) resolve from there
 * as they do from the sources; each module's import.meta.url is its source file's
 * (bundle-sources.ts), so paths beside a module resolve as from the sources too. Written to a
 * temporary name and renamed, so processes that build the same bundle at once never read half of
 * one.
 */
import { mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  bundleKey,
  defaultBundleDir,
  manifestPath,
  type BundleFile,
  type BundleLocation,
  type BundleManifest,
} from './bundle-manifest.mjs';
import { sourceLoader } from './bundle-sources.ts';

/**
 * How bundles are built and checked: inputs of every bundle, so that a change to them (options,
 * the rewrite, the guard) rebuilds bundles instead of reusing ones built the old way.
 */
const BUILDER = [
  import.meta.url,
  new URL('./bundle-sources.ts', import.meta.url).href,
  new URL('./bundle-manifest.mjs', import.meta.url).href,
].map((url) => fileURLToPath(url));

/** The oldest Node a bundle must run on (package.json engines). */
const NODE_TARGET = 'node20';

/**
 * An `import.meta` left in a bundle after the rewrite (`import.meta.resolve(…)`, `import.meta`
 * passed as a value) would mean the bundle, not the module it was written in: such a graph is not
 * bundled (its code runs through tsx).
 */
const IMPORT_META_LEFT = /\bimport\.meta\b/;

/** Builds under way in this process, by bundle key (one at a time per entry). */
const building = new Map<string, Promise<string | undefined>>();

function statOf(path: string): BundleFile {
  const { size, mtimeMs } = statSync(path);
  return { path, size, mtimeMs };
}

/** Write `text` to `path` by a temporary name and a rename; the written file's stat. */
function writeAtomically(path: string, text: string): BundleFile {
  const temporary = `${path}.${process.pid}.${Date.now()}.tmp`;
  writeFileSync(temporary, text);
  const written = statOf(temporary); // a rename keeps size and mtime
  renameSync(temporary, path);
  return { ...written, path };
}

/**
 * Build (or rebuild) the bundle of `entryUrl`; resolves to its file URL, or undefined if it could
 * not be built or was refused (its code keeps running through tsx; the reason is returned to
 * nobody: bundles are an optimisation, never a requirement). A refusal is written down in the
 * manifest, so that the same sources are not built again to be refused again.
 */
export function buildBundle(entryUrl: string, options: BundleLocation = {}): Promise<string | undefined> {
  const dir = options.dir ?? defaultBundleDir();
  const entryPath = fileURLToPath(entryUrl);
  const key = bundleKey(entryPath);
  const pending = building.get(key);
  if (pending) return pending;
  const build = (async (): Promise<string | undefined> => {
    try {
      const esbuild = await import('esbuild');
      mkdirSync(dir, { recursive: true });
      const bundlePath = join(dir, `${key}.mjs`);
      const read: BundleFile[] = [];
      const result = await esbuild.build({
        entryPoints: [entryPath],
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: NODE_TARGET,
        outfile: bundlePath,
        // Stack traces name the TypeScript sources, as they do through tsx (whose loader turns
        // source maps on; so do the processes that run a bundle). Without the sources' text: the
        // files are beside it.
        sourcemap: 'linked',
        sourcesContent: false,
        write: false,
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
          sourceLoader(read),
        ],
      });
      // Files esbuild read itself (JSON …) and the builder's own are stat'ed now.
      const inputs = new Map(read.map((file) => [file.path, file]));
      const cwd = process.cwd();
      for (const path of [...Object.keys(result.metafile.inputs).map((input) => resolve(cwd, input)), ...BUILDER]) {
        if (!inputs.has(path)) inputs.set(path, statOf(path));
      }
      const output = (path: string): string => result.outputFiles.find((file) => file.path === path)!.text;
      const code = output(bundlePath);
      const refused = IMPORT_META_LEFT.test(code);
      if (!refused) writeAtomically(`${bundlePath}.map`, output(`${bundlePath}.map`));
      const bundle = refused ? null : writeAtomically(bundlePath, code);
      const manifest: BundleManifest = { entry: entryPath, bundle, inputs: [...inputs.values()] };
      writeAtomically(manifestPath(dir, entryPath), JSON.stringify(manifest));
      return bundle === null ? undefined : pathToFileURL(bundle.path).href;
    } catch {
      return undefined;
    } finally {
      building.delete(key);
    }
  })();
  building.set(key, build);
  return build;
}
