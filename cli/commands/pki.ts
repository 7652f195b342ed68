/**
 * `livemig pki`: the fleet's certificates (issue 12).
 *   pki init  --dir DIR                                   a new fleet CA: DIR/ca.pem, DIR/ca-key.pem
 *   pki issue --dir DIR --name NAME --role ROLE [--days N] DIR/NAME.pem, DIR/NAME-key.pem
 *   pki show  FILE [--json]                               what a certificate says
 * Nothing is ever overwritten; private keys are written 0600. The work is in
 * shared/src/security/pki.ts: this file only parses flags and prints.
 */
import { Option, type Command } from 'commander';
import { initPki, issueCertificate, readIdentity, ROLES, type Identity, type Role } from '@livemig/shared/security';
import { oneOf, positiveIntFlag } from '../options.ts';

function printIdentity(identity: Identity, json: boolean | undefined): void {
  if (json) {
    process.stdout.write(JSON.stringify(identity) + '\n');
    return;
  }
  const rows: Array<[string, string]> = [
    ['name', identity.name],
    ['role', identity.role ?? (identity.ca ? '(fleet CA)' : '(none)')],
    ['subject', identity.subject],
    ['issuer', identity.issuer],
    ['altNames', identity.altNames.join(', ') || '(none)'],
    ['notBefore', identity.notBefore.toISOString()],
    ['notAfter', identity.notAfter.toISOString()],
    ['serial', identity.serialNumber],
    ['sha256', identity.fingerprint],
  ];
  for (const [label, value] of rows) process.stdout.write(`${label.padEnd(10)} ${value}\n`);
}

export function registerPkiCommand(program: Command): void {
  const pki = program
    .command('pki')
    .description("The fleet's certificates: create a CA, issue role-carrying certificates, show one.")
    .addHelpText(
      'after',
      `\nRoles: ${ROLES.join(', ')} (carried as OU=livemig-role:<role> in the subject).\n` +
        'Keys are ECDSA P-256; key files are written 0600 and nothing is ever overwritten.\n\n' +
        'Example:\n' +
        '  livemig pki init  --dir ./pki\n' +
        '  livemig pki issue --dir ./pki --name agent-a --role agent\n' +
        '  livemig pki issue --dir ./pki --name alice --role operator --days 30\n' +
        '  livemig pki show  ./pki/agent-a.pem --json',
    );

  pki
    .command('init')
    .description('Create a fleet CA in DIR: ca.pem (self-signed, 10 years) and ca-key.pem (0600).')
    .requiredOption('--dir <dir>', 'the PKI directory (created 0700 if missing)')
    .option('--json', 'print the CA as JSON')
    .action(async (flags: { dir: string; json?: boolean }) => {
      const identity = await initPki(flags.dir);
      if (!flags.json) process.stdout.write(`pki init: fleet CA written to ${flags.dir}/ca.pem (key: ca-key.pem)\n`);
      printIdentity(identity, flags.json);
    });

  pki
    .command('issue')
    .description('Issue DIR/NAME.pem and DIR/NAME-key.pem (0600), signed by the CA in DIR.')
    .requiredOption('--dir <dir>', 'the PKI directory holding ca.pem and ca-key.pem')
    .requiredOption('--name <name>', 'a host name, IPv4 address or login: the CN and subjectAltName')
    .requiredOption('--role <role>', ROLES.join(' | '), oneOf(ROLES))
    .addOption(
      new Option('--days <n>', 'validity in days (1…3650, not past the CA)')
        .argParser(positiveIntFlag)
        .default(365, '365 days'),
    )
    .option('--json', 'print the certificate as JSON')
    .action(async (flags: { dir: string; name: string; role: Role; days: number; json?: boolean }) => {
      const identity = await issueCertificate(flags.dir, { name: flags.name, role: flags.role, days: flags.days });
      if (!flags.json) {
        process.stdout.write(
          `pki issue: ${flags.dir}/${flags.name}.pem (key: ${flags.name}-key.pem), role ${identity.role}\n`,
        );
      }
      printIdentity(identity, flags.json);
    });

  pki
    .command('show')
    .description('Show what a certificate says: name, role, validity, issuer, SHA-256 fingerprint.')
    .argument('<file>', 'a PEM certificate')
    .option('--json', 'print {"name","role","fingerprint","notBefore","notAfter","issuer",…}')
    .action(async (file: string, flags: { json?: boolean }) => {
      printIdentity(await readIdentity(file), flags.json);
    });
}
