/**
 * How a bundle's sources are read (an esbuild plugin, bundle-build.ts): each module's
 * `import.meta.url` (and `.filename`, `.dirname`) becomes the literal of that module's own source
 * file, and each file is recorded with the size and mtime it had when read.
 *
 * Why the rewrite: in a bundle, `import.meta.url` is the bundle's URL, but the sources find the
 * scripts, workers and directories beside them through it (`new URL('./vcpu-worker.ts',
 * import.meta.url)`, `new URL('../package.json', import.meta.url)`, createRequire): rewritten,
 * every such path resolves as it does when the sources run through tsx, whichever bundle
 * (a worker's, the CLI's) the module ends up in.
 *
 * Why the record: the stat is taken on the open file before it is read, so the manifest holds
 * what the bundle was built from. A file written while the bundle is built has another mtime
 * by the time it is checked, and the bundle is stale at once instead of current with old code.
 *
 * The rewrite is textual: an `import.meta.url` written inside a string literal would be replaced
 * too (none is). What it does not cover (`import.meta.resolve`, `import.meta` as a value) stays
 * in the bundle as it is, where it would mean the bundle: bundle-build.ts refuses such a graph.
 */
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Plugin } from 'esbuild';
import type { BundleFile } from './bundle-manifest.mjs';

const IMPORT_META_PROPERTY = /\bimport\.meta\.(url|filename|dirname)\b/g;

/** `code` (the source of the file at `path`) with its import.meta.url/filename/dirname made literals of `path`. */
export function withSourceUrls(code: string, path: string): string {
  const values: Record<string, string> = { url: pathToFileURL(path).href, filename: path, dirname: dirname(path) };
  return code.replace(IMPORT_META_PROPERTY, (_, name: string) => JSON.stringify(values[name]));
}

/** The plugin: loads every JavaScript and TypeScript file of the graph, rewritten, and pushes its stat to `read`. */
export function sourceLoader(read: BundleFile[]): Plugin {
  return {
    name: 'livemig-source-urls',
    setup(build) {
      build.onLoad({ filter: /\.[cm]?[jt]s$/, namespace: 'file' }, (args) => {
        const fd = openSync(args.path, 'r');
        try {
          const { size, mtimeMs } = fstatSync(fd);
          const code = readFileSync(fd, 'utf8');
          read.push({ path: args.path, size, mtimeMs });
          return { contents: withSourceUrls(code, args.path), loader: /ts$/.test(args.path) ? 'ts' : 'js' };
        } finally {
          closeSync(fd);
        }
      });
    },
  };
}
