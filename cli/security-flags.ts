/**
 * The identity flags every command shares: `--pki DIR --name NAME` (or LIVEMIG_PKI /
 * LIVEMIG_NAME from the environment) load this side's certificate from the fleet PKI; with
 * them, control connections are wss with that client certificate, checked against the fleet CA.
 * Both or neither: half an identity is a usage error, not a silent plaintext fallback.
 */
import { Option, type Command } from 'commander';
import { MigrationError } from '@livemig/shared';
import { ControlClient } from '@livemig/shared/control';
import { loadPki, type LoadedPki } from '@livemig/shared/security';

export interface SecurityFlags {
  pki?: string;
  name?: string;
  /** Client commands: the name the agent's certificate must carry (default: the --control URL's host). */
  agentName?: string;
}

/** Add --pki and --name (environment LIVEMIG_PKI, LIVEMIG_NAME). */
export function addSecurityOptions(command: Command): Command {
  return command
    .addOption(
      new Option('--pki <dir>', 'the fleet PKI directory (livemig pki init): speak mutual TLS with this identity').env(
        'LIVEMIG_PKI',
      ),
    )
    .addOption(new Option('--name <name>', 'this identity: DIR/NAME.pem and DIR/NAME-key.pem').env('LIVEMIG_NAME'));
}

/**
 * The client commands' identity flags: --pki and --name, and --agent-name for an agent reached by
 * an address its certificate does not carry (127.0.0.1 for an agent named `dest`, a published port).
 */
export function addClientSecurityOptions(command: Command): Command {
  return addSecurityOptions(command).option(
    '--agent-name <name>',
    "with --pki: the name the agent's certificate must carry (default: the host of --control)",
  );
}

/** This side's credentials, or undefined without --pki/--name. */
export async function credentialsFromFlags(flags: SecurityFlags): Promise<LoadedPki | undefined> {
  if (flags.pki === undefined && flags.name === undefined) return undefined;
  if (flags.pki === undefined || flags.name === undefined) {
    throw new MigrationError('ERR_INVALID_ARGUMENT', 'give both --pki DIR and --name NAME (or neither)');
  }
  return loadPki(flags.pki, flags.name);
}

/**
 * Connect to an agent's control URL: wss with our certificate when we have one, else as given.
 * The agent's certificate must carry `expectName` (default --agent-name; null: the URL's host).
 */
export async function connectControl(
  url: string,
  flags: SecurityFlags,
  expectName: string | null = flags.agentName ?? null,
): Promise<ControlClient> {
  const pki = await credentialsFromFlags(flags);
  if (!pki) return ControlClient.connect(url);
  const { ca, cert, key } = pki;
  return ControlClient.connect(url.replace(/^ws:\/\//, 'wss://'), {
    tls: { ca, cert, key },
    ...(expectName === null ? {} : { expectName }),
  });
}
