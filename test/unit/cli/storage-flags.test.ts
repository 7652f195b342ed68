/**
 * How a disk migrates, on the command line (issue 15): `--storage shared|copy|mirror|postcopy`
 * on every command that starts a migration (migrate, demo, lab run), parsed into the control
 * API's MigrateParams with the engine's default, a bad value refused as bad input; each mode
 * explained in one line of --help; and the agent's `--disk-dir`, which comes before the state
 * directory's disks/ (two agents given one directory on shared storage use `--storage shared`).
 * The agent checks `storage` again (resolveMigrateParams): test/unit/agent-source/params-storage.test.ts.
 */
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { DEFAULT_MIGRATE_PARAMS } from '@livemig/agent-source';
import { STORAGE_MODES } from '@livemig/shared/protocol';
import type { LoadedPki } from '@livemig/shared/security';
import { buildProgram, runCli } from '../../../cli/program.ts';
import type { CliOutput } from '../../../cli/usage.ts';
import { defaultStateDir, diskDirFromFlags } from '../../../cli/audit-flags.ts';
import { migrateParams, storageFlag } from '../../../cli/options.ts';

interface Parsed {
  code: number;
  stdout: string;
  stderr: string;
  /** The options the command's action would have run with (undefined: never reached). */
  opts: Record<string, unknown> | undefined;
}

/** Parse `args` with the real program in-process, stopping before any action runs. */
async function parse(args: readonly string[]): Promise<Parsed> {
  let stdout = '';
  let stderr = '';
  const output: CliOutput = { out: (text) => (stdout += text), err: (text) => (stderr += text) };
  const program = await buildProgram(output);
  let opts: Record<string, unknown> | undefined;
  const stop = new Error('stopped before the action');
  program.hook('preAction', (_program, command: Command) => {
    opts = command.opts();
    throw stop;
  });
  let code: number;
  try {
    code = await runCli(program, ['node', 'livemig', ...args], output);
  } catch (error) {
    if (error !== stop) throw error;
    code = 0;
  }
  return { code, stdout, stderr, opts };
}

const MIGRATE = ['migrate', '--vm', 'vm1', '--to', '127.0.0.1:7070'];
const COMMANDS = [['migrate'], ['demo'], ['lab', 'run', '--profile', 'lan']];

describe('--storage', () => {
  it.each(STORAGE_MODES)('migrate --storage %s reaches MigrateParams.storage', async (mode) => {
    const parsed = await parse([...MIGRATE, '--storage', mode]);
    expect(parsed.opts, parsed.stderr).toBeDefined();
    expect(parsed.opts!.storage).toBe(mode);
    expect(migrateParams(parsed.opts as unknown as Parameters<typeof migrateParams>[0]).storage).toBe(mode);
  });

  it("defaults to the engine's default (copy), and combines with any memory mode", async () => {
    expect(DEFAULT_MIGRATE_PARAMS.storage).toBe('copy');
    expect((await parse(MIGRATE)).opts!.storage).toBe('copy');
    const both = await parse([...MIGRATE, '--mode', 'precopy', '--storage', 'postcopy']);
    expect([both.opts!.mode, both.opts!.storage]).toEqual(['precopy', 'postcopy']);
  });

  it.each(COMMANDS)('%s takes it too', async (...command) => {
    const parsed = await parse([...command, '--storage', 'mirror']);
    expect(parsed.opts?.storage, parsed.stderr).toBe('mirror');
  });

  it.each(COMMANDS)(
    '%s refuses a bad value: one coded line naming the flag and the modes, exit 2',
    async (...command) => {
      const parsed = await parse([...command, '--storage', 'nfs']);
      expect(parsed.opts).toBeUndefined();
      expect(parsed.stderr).toBe(
        'livemig: ERR_INVALID_ARGUMENT: --storage: expected one of shared, copy, mirror, postcopy, got "nfs"\n',
      );
      expect(parsed.code).toBe(2);
    },
  );

  it('is case-sensitive and exact, as --mode is', () => {
    for (const text of ['Shared', ' copy', 'mirror,copy', '']) {
      expect(() => storageFlag(text), JSON.stringify(text)).toThrow(/expected one of shared, copy, mirror, postcopy/);
    }
  });

  it('migrateParams leaves storage out when no flag set it (the agent applies its default)', () => {
    const params = migrateParams({ downtimeLimit: 300, maxRounds: 30 });
    expect('storage' in params).toBe(false);
    expect(migrateParams({ downtimeLimit: 300, maxRounds: 30, storage: 'shared' }).storage).toBe('shared');
  });

  it.each(COMMANDS)('%s --help explains every mode in one line', async (...command) => {
    const { stdout, code } = await parse([...command, '--help']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/--storage <mode>/);
    const section = stdout.split('\nStorage modes')[1];
    expect(section, stdout).toBeDefined();
    for (const mode of STORAGE_MODES) {
      const lines = section!.split('\n').filter((line) => line.startsWith(`  ${mode} `));
      expect(lines, mode).toHaveLength(1);
      expect(lines[0]!.length, lines[0]).toBeLessThanOrEqual(100);
    }
    expect(section).toMatch(/shared .*--disk-dir/);
  });
});

describe('agent --disk-dir', () => {
  const pki = { identity: { name: 'host-b' } } as unknown as LoadedPki;

  it('names the disk directory, before --state-dir and the default state directory', () => {
    expect(diskDirFromFlags({ diskDir: '/mnt/nfs/livemig' }, undefined)).toEqual({ diskDir: '/mnt/nfs/livemig' });
    expect(diskDirFromFlags({ diskDir: '/mnt/nfs/livemig', stateDir: '/var/lib/a' }, pki)).toEqual({
      diskDir: '/mnt/nfs/livemig',
    });
  });

  it("without it: STATE-DIR/disks, the identity's default state directory, else none (a temporary directory per VM)", () => {
    expect(diskDirFromFlags({ stateDir: '/var/lib/a' }, undefined)).toEqual({ diskDir: '/var/lib/a/disks' });
    expect(diskDirFromFlags({}, pki)).toEqual({ diskDir: `${defaultStateDir('host-b')}/disks` });
    expect(diskDirFromFlags({}, undefined)).toEqual({});
  });

  it('is parsed by the agent commands, and its help says to share it for --storage shared', async () => {
    for (const role of ['agent', 'source', 'dest']) {
      const parsed = await parse([role, '--disk-dir', '/mnt/shared/disks']);
      expect(parsed.opts?.diskDir, parsed.stderr).toBe('/mnt/shared/disks');
    }
    const { stdout } = await parse(['agent', '--help']);
    const help = stdout.replace(/\s+/g, ' ');
    expect(help).toMatch(/--disk-dir <dir> where this agent keeps its VMs' disk images/);
    expect(help).toMatch(/--storage shared/);
  });
});
