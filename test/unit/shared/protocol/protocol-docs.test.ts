/**
 * docs/protocol.md against the code: its generated message table equals what MESSAGE_SPEC
 * renders, and its sequence diagrams are readable as a specification — every arrow names a real
 * message travelling the right way — by the reader the message-order integration test uses.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { generatedPart, PROTOCOL_DOC, renderMessageTable } from '../../../../scripts/protocol-docs.ts';
import {
  connectionsOf,
  describeStream,
  followsDiagram,
  normalizeStream,
  parseSequenceDiagram,
  sequenceDiagrams,
  type SequenceDiagram,
} from '../../../../scripts/protocol-diagrams.ts';

const doc = readFileSync(PROTOCOL_DOC, 'utf8');

describe('docs/protocol.md', () => {
  it('has the message table exactly as MESSAGE_SPEC renders it (run `npm run docs:protocol`)', async () => {
    expect(generatedPart(doc)).toBe(await renderMessageTable());
  });

  it('draws pre-copy, post-copy and recovery, on the connections each uses, in diagrams the reader accepts', () => {
    const diagrams = new Map(sequenceDiagrams(doc).map((d) => [d.title, d]));
    expect([...diagrams.keys()]).toEqual(['Pre-copy', 'Post-copy and hybrid', 'Recovery (post-copy)']);
    expect(connectionsOf(diagrams.get('Pre-copy')!)).toEqual(['main']);
    expect(connectionsOf(diagrams.get('Post-copy and hybrid')!).sort()).toEqual(['fault', 'main']);
    expect(connectionsOf(diagrams.get('Recovery (post-copy)')!).sort()).toEqual(['fault', 'main', 'resume']);
  });
});

describe('reading a sequence diagram', () => {
  const diagram = parseSequenceDiagram(
    [
      'sequenceDiagram',
      '  participant S as source',
      '  participant D as destination',
      '  participant Sf as source (fault connection)',
      '  participant Df as destination (fault connection)',
      '  S->>D: Hello {versions}',
      '  Note over S,D: ignored',
      '  loop rounds',
      '    S->>D: Pages + raw pages',
      '    S->>D: RoundEnd',
      '    D-->>S: RoundAck',
      '  end',
      '  opt maybe',
      '    S->>D: Pages',
      '  end',
      '  alt pre-copy',
      '    S->>D: StopCopyEnd',
      '  else post-copy',
      '    S->>D: PostcopyStart',
      '  end',
      '  par',
      '    S->>D: Pages',
      '  and',
      '    Df->>Sf: PageRequest',
      '    Sf->>Df: Pages',
      '  end',
    ].join('\n'),
    'test',
  );
  const source = { connection: 'main', from: 'source' } as const;
  const follows = (names: string[], options?: { prefix?: boolean }): boolean =>
    followsDiagram(diagram, source, normalizeStream(names), options);

  it('projects each connection and direction to a pattern over message names', () => {
    expect(describeStream(diagram, source)).toBe(
      'Hello (Pages RoundEnd)* (Pages)? (StopCopyEnd | PostcopyStart) Pages',
    );
    expect(describeStream(diagram, { connection: 'main', from: 'dest' })).toBe('(RoundAck)*');
    expect(describeStream(diagram, { connection: 'fault', from: 'dest' })).toBe('PageRequest');
    expect(describeStream(diagram, { connection: 'resume', from: 'source' })).toBe('(nothing)');
  });

  it('accepts what the diagram allows: loops zero or more times, runs of one message, heartbeats anywhere', () => {
    expect(follows(['Hello', 'StopCopyEnd', 'Pages'])).toBe(true);
    expect(
      follows(['Hello', 'Pages', 'Pages', 'RoundEnd', 'Heartbeat', 'Pages', 'RoundEnd', 'PostcopyStart', 'Pages']),
    ).toBe(true);
    // The opt's Pages after the rounds, and two Pages frames in a row where the par draws one arrow.
    expect(follows(['Hello', 'Pages', 'RoundEnd', 'Pages', 'StopCopyEnd', 'Pages', 'Pages'])).toBe(true);
  });

  it('refuses another order, a missing message, or an extra one', () => {
    expect(follows(['Hello', 'RoundEnd', 'Pages', 'StopCopyEnd', 'Pages'])).toBe(false);
    expect(follows(['Hello', 'StopCopyEnd'])).toBe(false);
    expect(follows(['Hello', 'StopCopyEnd', 'PostcopyStart', 'Pages'])).toBe(false);
    expect(follows(['Setup', 'Hello', 'StopCopyEnd', 'Pages'])).toBe(false);
  });

  it('with prefix, accepts any beginning of an allowed order (a connection that broke), and nothing else', () => {
    expect(follows(['Hello', 'Pages'], { prefix: true })).toBe(true);
    expect(follows([], { prefix: true })).toBe(true);
    expect(follows(['Hello', 'Pages'])).toBe(false);
    expect(follows(['Pages'], { prefix: true })).toBe(false);
  });

  const bad = (lines: string[]): (() => SequenceDiagram) => {
    const text = ['sequenceDiagram', '  participant S as source', '  participant D as destination', ...lines];
    return () => parseSequenceDiagram(text.join('\n'), 'bad');
  };

  it('refuses a diagram that names no real message, or sends one the wrong way', () => {
    expect(bad(['  S->>D: Helo'])).toThrow(/"Helo" is not a message/);
    expect(bad(['  S->>D: Welcome'])).toThrow(/Welcome travels dest→source/);
    expect(bad(['  S->>X: Hello'])).toThrow(/unknown participant "X"/);
    expect(bad(['  loop', '  S->>D: Hello'])).toThrow(/"loop" has no end/);
    expect(bad(['  critical x', '  end'])).toThrow(/cannot read "critical x"/);
  });

  it('refuses a par whose branches interleave on one stream (it cannot be checked)', () => {
    const interleaved = bad(['  par', '  S->>D: Pages', '  and', '  S->>D: RoundEnd', '  end'])();
    expect(() => followsDiagram(interleaved, source, ['Pages'])).toThrow(/interleaves two branches/);
  });
});
