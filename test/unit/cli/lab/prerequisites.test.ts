/**
 * The lab's prerequisite check (cli/lab/prerequisites.ts) as a pure function: a profile and what
 * the host has in, everything missing out — all at once, with the Debian packages to install
 * (only those needed), nftables only for a profile with loss on a kernel without netem, arping
 * only for a VM with its own address.
 */
import { describe, expect, it } from 'vitest';
import {
  capabilitiesFromStatus,
  installCommand,
  labNeeds,
  missingPrerequisites,
  prerequisiteMessage,
  requirePrerequisites,
  uncheckedKernelFeatures,
  type HostFacts,
} from '../../../../cli/lab/prerequisites.ts';
import { PROFILES } from '../../../../cli/lab/profiles.ts';

const { lan, wan } = PROFILES as { lan: (typeof PROFILES)[string]; wan: (typeof PROFILES)[string] };

/** A host with everything, netem included; `change` takes things away. */
function host(change: (facts: HostFacts) => void = () => {}): HostFacts {
  const facts: HostFacts = {
    capabilities: { netAdmin: true, sysAdmin: true },
    commands: { ip: true, tc: true, nft: true, arping: true },
    kernel: { veth: true, bridge: true, macvlan: true, tbf: true, netem: true, nftables: true },
  };
  change(facts);
  return facts;
}

const ids = (facts: HostFacts, needs = labNeeds('run', [wan])): string[] =>
  missingPrerequisites(needs, facts).map((p) => p.id);

describe('labNeeds', () => {
  it('lan has no loss; wan has; down only removes; shape builds nothing', () => {
    expect(labNeeds('run', [lan])).toEqual({ build: true, remove: false, shape: true, loss: false, vmAddress: false });
    expect(labNeeds('up', [wan])).toMatchObject({ build: true, shape: true, loss: true });
    expect(labNeeds('down', [])).toEqual({ build: false, remove: true, shape: false, loss: false, vmAddress: false });
    expect(labNeeds('shape', [wan])).toMatchObject({ build: false, remove: false, shape: true, loss: true });
    expect(labNeeds('shape', [])).toMatchObject({ shape: false, loss: false });
    expect(labNeeds('run', [lan], { vmAddress: true }).vmAddress).toBe(true);
  });
});

describe('missingPrerequisites', () => {
  it('nothing is missing on a host that has everything', () => {
    expect(ids(host(), labNeeds('run', [wan], { vmAddress: true }))).toEqual([]);
  });

  it('lan needs no nftables, with or without netem', () => {
    const noNft = host((h) => {
      h.commands.nft = false;
      h.kernel.netem = false;
      delete h.kernel.nftables;
    });
    expect(ids(noNft, labNeeds('run', [lan]))).toEqual([]);
    expect(ids(noNft, labNeeds('up', [lan]))).toEqual([]);
    expect(ids(noNft, labNeeds('shape', [lan]))).toEqual([]);
  });

  it('loss needs nft where the kernel has no netem (or netem could not be tried), not where it has', () => {
    const noNft = (netem: boolean | undefined): HostFacts =>
      host((h) => {
        h.commands.nft = false;
        h.kernel.netem = netem;
      });
    expect(ids(noNft(true))).toEqual([]);
    expect(ids(noNft(false))).toEqual(['nft']);
    expect(ids(noNft(undefined))).toEqual(['nft']);
    // nft is there, but the kernel has no nf_tables.
    expect(ids(host((h) => ((h.kernel.netem = false), (h.kernel.nftables = false))))).toEqual(['kernel-nftables']);
  });

  it('arping and macvlan only for a VM with its own address', () => {
    const noArping = host((h) => ((h.commands.arping = false), (h.kernel.macvlan = false)));
    expect(ids(noArping, labNeeds('run', [wan]))).toEqual([]);
    expect(ids(noArping, labNeeds('run', [wan], { vmAddress: true }))).toEqual(['arping', 'kernel-macvlan']);
  });

  it('names everything missing at once: privileges, tools, then kernel features', () => {
    const bare: HostFacts = {
      capabilities: { netAdmin: false, sysAdmin: false },
      commands: { ip: false, tc: false, nft: false, arping: false },
      kernel: {},
    };
    expect(ids(bare, labNeeds('run', [wan], { vmAddress: true }))).toEqual([
      'cap-net-admin',
      'cap-sys-admin',
      'ip',
      'tc',
      'nft',
      'arping',
    ]);
    const noKernel = host((h) => {
      h.kernel = { veth: false, bridge: false, tbf: false, netem: false, nftables: false, macvlan: false };
    });
    expect(ids(noKernel, labNeeds('run', [wan], { vmAddress: true }))).toEqual([
      'kernel-veth',
      'kernel-bridge',
      'kernel-tbf',
      'kernel-nftables',
      'kernel-macvlan',
    ]);
  });

  it('down needs ip and CAP_SYS_ADMIN only; shape needs CAP_NET_ADMIN and tc, never namespaces or ip', () => {
    const bare: HostFacts = {
      capabilities: { netAdmin: false, sysAdmin: false },
      commands: { ip: false, tc: false, nft: false, arping: false },
      kernel: {},
    };
    expect(ids(bare, labNeeds('down', []))).toEqual(['cap-sys-admin', 'ip']);
    expect(ids(bare, labNeeds('shape', [lan]))).toEqual(['cap-net-admin', 'tc']);
    expect(ids(bare, labNeeds('shape', []))).toEqual([]);
  });
});

describe('the message', () => {
  it('installs only the packages needed, each once, in a fixed order', () => {
    const needs = labNeeds('run', [wan], { vmAddress: true });
    const all = missingPrerequisites(
      needs,
      host((h) => (h.commands = { ip: false, tc: false, nft: false, arping: false })),
    );
    // netem is there: wan's loss needs no nftables.
    expect(installCommand(all)).toBe('apt-get install -y iproute2 iputils-arping');
    const noNetem = host(
      (h) => ((h.commands = { ip: false, tc: false, nft: false, arping: false }), (h.kernel.netem = false)),
    );
    expect(installCommand(missingPrerequisites(needs, noNetem))).toBe(
      'apt-get install -y iproute2 nftables iputils-arping',
    );
    expect(installCommand(missingPrerequisites(labNeeds('run', [lan]), noNetem))).toBe('apt-get install -y iproute2');
    expect(installCommand([])).toBeUndefined();
  });

  it('one sentence names every missing one, the install command, the privilege and what is unchecked', () => {
    const bare: HostFacts = {
      capabilities: { netAdmin: false, sysAdmin: true },
      commands: { ip: false, tc: true, nft: false, arping: true },
      kernel: {},
    };
    const needs = labNeeds('up', [wan]);
    expect(uncheckedKernelFeatures(needs, bare)).toEqual(['veth', 'bridge', 'tbf']);
    const message = prerequisiteMessage('build a lab shaped to wan', needs, bare)!;
    expect(message).toMatch(/^cannot build a lab shaped to wan here; missing: CAP_NET_ADMIN .*, `ip` .*, `nft` /);
    expect(message).toContain('Install with: apt-get install -y iproute2 nftables.');
    expect(message).toContain('Run as root (or with CAP_NET_ADMIN)');
    expect(message).toContain('Not checked until those are there: kernel veth, bridge, tbf');
    expect(prerequisiteMessage('run', needs, host())).toBeUndefined();
  });

  it('requirePrerequisites throws one coded error, or nothing', () => {
    const noTc = host((h) => ((h.commands.tc = false), (h.commands.nft = false), (h.kernel.netem = false)));
    expect(() => requirePrerequisites('run', labNeeds('run', [wan]), noTc)).toThrow(
      expect.objectContaining({
        code: 'ERR_PREREQUISITE',
        message: expect.stringContaining('apt-get install -y iproute2 nftables') as string,
      }),
    );
    expect(() => requirePrerequisites('run', labNeeds('run', [lan]), host())).not.toThrow();
  });
});

describe('capabilitiesFromStatus', () => {
  it.each([
    ['000001fffeffffff', true, true],
    ['0000000000000000', false, false],
    ['0000000000001000', true, false],
    ['0000000000200000', false, true],
  ])('CapEff %s → CAP_NET_ADMIN %s, CAP_SYS_ADMIN %s', (hex, netAdmin, sysAdmin) => {
    expect(capabilitiesFromStatus(`Name:\tnode\nCapInh:\t0000000000000000\nCapEff:\t${hex}\n`)).toEqual({
      netAdmin,
      sysAdmin,
    });
  });

  it('no CapEff line: undefined', () => {
    expect(capabilitiesFromStatus('Name:\tnode\n')).toBeUndefined();
  });
});
