/**
 * cli-bundle.mjs: `livemig` starts from a current bundle of cli/main.ts, else from cli/main.ts
 * through tsx (and builds one) — never from a bundle any of whose sources changed since.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBundle } from '../../../shared/src/bundle-build.ts';
import { manifestPath, type BundleManifest } from '../../../shared/src/bundle-manifest.mjs';
import { CLI_ENTRY, cliStart } from '../../../cli/cli-bundle.mjs';

let dir: string;
let bundle: string | undefined;

beforeAll(async () => {
  // Beside the repository's packages, as the bundles are: the packages a bundle leaves out resolve from there.
  dir = mkdtempSync(fileURLToPath(new URL('../../../node_modules/.cache/livemig-cli-bundle-test-', import.meta.url)));
  bundle = await buildBundle(CLI_ENTRY, { dir });
}, 60_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('the CLI bundle', () => {
  it('is built, and the CLI starts from it while its sources are unchanged', () => {
    expect(bundle).toMatch(/cli-main-[0-9a-f]{12}\.mjs$/);
    expect(cliStart({ dir, env: {} })).toEqual({ module: bundle, build: false });
  });

  it('runs without tsx, and finds the files beside its modules as the sources do (../package.json)', () => {
    const version = (
      JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
    ).version;
    const out = execFileSync(process.execPath, [fileURLToPath(bundle!), '--version'], {
      encoding: 'utf8',
      cwd: tmpdir(),
    });
    expect(out.trim()).toBe(version);
  });

  it('is not run once a file it was built from changed: the CLI starts through tsx and builds one', () => {
    const path = manifestPath(dir, fileURLToPath(CLI_ENTRY));
    const saved = readFileSync(path, 'utf8');
    try {
      const manifest = JSON.parse(saved) as BundleManifest;
      const changed = manifest.inputs.find((input) => input.path.endsWith('/shared/src/units.ts'))!;
      changed.mtimeMs += 1; // as though units.ts had been written after the build
      writeFileSync(path, JSON.stringify(manifest));
      expect(cliStart({ dir, env: {} })).toEqual({ module: CLI_ENTRY, build: true });
      writeFileSync(path, JSON.stringify({ ...manifest, bundle: null, inputs: JSON.parse(saved).inputs }));
      expect(cliStart({ dir, env: {} }), 'refused, unchanged: not built again').toEqual({
        module: CLI_ENTRY,
        build: false,
      });
    } finally {
      writeFileSync(path, saved);
    }
  });

  it('is off with LIVEMIG_CLI_BUNDLE=0: through tsx, nothing built', () => {
    expect(cliStart({ dir, env: { LIVEMIG_CLI_BUNDLE: '0' } })).toEqual({ module: CLI_ENTRY, build: false });
  });
});
