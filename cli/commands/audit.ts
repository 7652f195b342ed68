/**
 * `livemig audit`: an agent's audit log (issue 13).
 *   audit verify --log FILE [--pki DIR] [--json]      the hash chain, and with the fleet CA every
 *                                                    entry's signature and every record's signature
 *                                                    and countersignature; `ok N entries`, or the
 *                                                    first broken line and why (exit 1)
 *   audit show --log FILE [--vm NAME] [--json]       the history, one line per entry
 * The checks are shared/src/security/audit.ts and record.ts; this file reads and prints.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { MigrationError } from '@livemig/shared';
import {
  CA_CERT_FILE,
  parseAuditLog,
  TrustAnchor,
  verifyAuditLog,
  type AuditEntry,
  type SignedRecord,
} from '@livemig/shared/security';

async function readLog(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw new MigrationError('ERR_INVALID_ARGUMENT', `cannot read the audit log ${file}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

async function trustOf(pki: string): Promise<TrustAnchor> {
  const file = join(pki, CA_CERT_FILE);
  const pem = await readFile(file, 'utf8').catch((error: unknown) => {
    throw new MigrationError('ERR_PKI', `cannot read the fleet CA ${file}: ${(error as Error).message}`, {
      cause: error,
    });
  });
  return new TrustAnchor(pem);
}

export function registerAuditCommand(program: Command): void {
  const audit = program
    .command('audit')
    .description("An agent's audit log: check its hash chain and signatures, or read its history.")
    .addHelpText(
      'after',
      '\nEach agent appends every state-changing command (who, what, when, result) and every migration\n' +
        'record (signed by the source, countersigned by the destination) to its audit log: JSON lines,\n' +
        "each carrying the hash of the line before and a signature by the agent's key.\n\n" +
        'Example:\n' +
        '  livemig audit verify --log ~/.local/state/livemig/host-a/audit.log --pki ./pki\n' +
        '  livemig audit show --log ~/.local/state/livemig/host-a/audit.log --vm vm1',
    );

  audit
    .command('verify')
    .description(
      'Check the log: every line in order and unedited (hash chain); with --pki every entry signature and every ' +
        'record signature and countersignature against the fleet CA. Prints `ok N entries`, or the first broken ' +
        'line and why, and exits 1.',
    )
    .requiredOption('--log <file>', 'the audit log')
    .option('--pki <dir>', 'the fleet PKI directory (its ca.pem); without it only the hash chain is checked')
    .option('--json', 'print {"ok", "entries", "line"?, "reason"?}')
    .action(async (flags: { log: string; pki?: string; json?: boolean }) => {
      const trust = flags.pki === undefined ? undefined : await trustOf(flags.pki);
      const verdict = verifyAuditLog(await readLog(flags.log), trust);
      if (flags.json) process.stdout.write(JSON.stringify(verdict) + '\n');
      else if (verdict.ok) {
        const what = trust
          ? 'hash chain, entry signatures, records'
          : 'hash chain only: no --pki, signatures not checked';
        process.stdout.write(`ok ${verdict.entries} entries (${what}; last hash ${verdict.lastHash})\n`);
      } else {
        process.stdout.write(`${flags.log}: line ${verdict.line}: ${verdict.reason}\n`);
      }
      if (!verdict.ok) process.exitCode = 1;
    });

  audit
    .command('show')
    .description('Print the history in the log, one line per entry (oldest first).')
    .requiredOption('--log <file>', 'the audit log')
    .option('--vm <name>', 'only what concerns this VM (commands naming it, its migration records)')
    .option('--json', 'print the entries as a JSON array')
    .action(async (flags: { log: string; vm?: string; json?: boolean }) => {
      const lines = parseAuditLog(await readLog(flags.log)).filter(
        (item) => flags.vm === undefined || ('entry' in item && concerns(item.entry, flags.vm)),
      );
      if (flags.json) {
        process.stdout.write(JSON.stringify(lines.map((item) => ('entry' in item ? item.entry : item))) + '\n');
        return;
      }
      for (const item of lines) {
        process.stdout.write(
          'entry' in item ? `${describeEntry(item.entry)}\n` : `line ${item.line}: not an entry (${item.error})\n`,
        );
      }
    });
}

/** Does `entry` concern VM `vm`? */
function concerns(entry: AuditEntry, vm: string): boolean {
  if (entry.kind === 'record') return entry.record?.record?.vm?.name === vm;
  if (entry.kind !== 'command') return false;
  const args = entry.args as { vm?: unknown; name?: unknown } | null;
  return args?.vm === vm || (entry.command === 'create-vm' && args?.name === vm);
}

/** One readable line: seq, time, agent, then what happened. */
function describeEntry(entry: AuditEntry): string {
  const head = `#${entry.seq} ${entry.at} ${entry.agent}`;
  switch (entry.kind) {
    case 'open':
      return `${head} open: the agent started (pid ${entry.pid}; ${entry.sig ? `signing as ${entry.sig.fingerprint}` : 'entries unsigned'})`;
    case 'command': {
      const who = entry.caller ? `${entry.caller.name} (${entry.caller.role})` : 'anonymous (plaintext)';
      const result =
        'ok' in entry.result
          ? `ok${brief(entry.result.ok)}`
          : `${entry.result.error.code}: ${entry.result.error.message}`;
      return `${head} ${who}: ${entry.command}${brief(entry.args)} → ${result}`;
    }
    case 'record':
      return `${head} ${describeRecord(entry.role, entry.record)}`;
  }
}

function describeRecord(role: string, signed: SignedRecord): string {
  const r = signed.record;
  const by = r.operator ? `, asked by ${r.operator.name} (${r.operator.role})` : '';
  const route = `${r.source?.name ?? '?'} → ${r.dest?.name ?? '?'}`;
  const c = signed.countersignature;
  const proof =
    (signed.signature ? `signed by ${signed.signature.by}` : 'unsigned') +
    (c.status === 'signed' ? `, countersigned by ${c.signature.by}` : `; countersignature ${c.status}: ${c.reason}`);
  return (
    `record (${role}): ${r.mode} migration of ${r.vm.name} ${route}: ${r.outcome}${r.error ? ` (${r.error})` : ''}` +
    `${by}; ${r.pages.sent} pages, ${r.bytes.pagePayload} bytes of pages; ${proof} [${r.migrationId}]`
  );
}

/** ` key=value …` of a small object (nested values as JSON), or '' for nothing. */
function brief(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value !== 'object') return ` ${String(value)}`;
  // The VM first: it is what a reader looks for.
  const fields = Object.entries(value as Record<string, unknown>).sort(
    ([a], [b]) => Number(b === 'vm') - Number(a === 'vm'),
  );
  const parts = fields.map(
    ([key, item]) => `${key}=${typeof item === 'object' && item !== null ? JSON.stringify(item) : String(item)}`,
  );
  return parts.length ? ` ${parts.join(' ')}` : '';
}
