/**
 * The sequence diagrams of docs/protocol.md, read as a specification: each mermaid
 * `sequenceDiagram` becomes, per connection and direction, a pattern of message names that a
 * real migration's frames can be matched against (test/integration/message-order.integration.test.ts).
 * The diagram stays the one statement of the order; this file only reads it.
 *
 * How a diagram is read (docs/protocol.md "Message order" says the same for people):
 *
 * - a participant is one end (source or destination, from its label) of one connection: the
 *   main one, unless its label says "fault connection" or "resumed connection";
 * - an arrow's message is the first word of its text, which must be a MESSAGE_SPEC name
 *   travelling that way; one arrow stands for one or more frames of that message in a row;
 * - `loop` is zero or more times, `opt` zero or one, `alt … else …` one of, `par … and …` its
 *   branches side by side (each on its own connection and direction: interleaving two branches
 *   in one stream is not something this reader can check, so it refuses); `rect` and `box`
 *   only group; notes, `autonumber` and (de)activations are ignored.
 *
 * A recorded stream is compared after dropping Heartbeats and collapsing runs of the same
 * message into one (so `Pages Pages Pages` is `Pages`).
 */
import { MESSAGE_SPEC, type MessageSpec } from '@livemig/shared/protocol';

export type Side = 'source' | 'dest';
export type ConnectionKind = 'main' | 'fault' | 'resume';

/** One arrow of a diagram. */
export interface Arrow {
  from: Side;
  connection: ConnectionKind;
  message: string;
  /** 1-based line within the diagram, for error messages. */
  line: number;
}

/** A diagram's body: arrows arranged by mermaid's blocks. */
export type Pattern =
  | { kind: 'arrow'; arrow: Arrow }
  | { kind: 'seq'; items: Pattern[] }
  | { kind: 'loop'; body: Pattern }
  | { kind: 'opt'; body: Pattern }
  | { kind: 'alt'; branches: Pattern[] }
  | { kind: 'par'; branches: Pattern[] };

export interface SequenceDiagram {
  /** The nearest Markdown heading above the diagram. */
  title: string;
  body: Pattern;
  arrows: Arrow[];
}

/** One direction of one connection. */
export interface Stream {
  connection: ConnectionKind;
  from: Side;
}

const BY_NAME = new Map<string, MessageSpec>(Object.values(MESSAGE_SPEC).map((spec) => [spec.name, spec]));

const ARROW = /^([A-Za-z_][\w]*)\s*(--?(?:>>|>|x|\)))[+-]?\s*([A-Za-z_][\w]*)\s*:\s*(.*)$/;
const PARTICIPANT = /^(?:participant|actor)\s+([A-Za-z_][\w]*)(?:\s+as\s+(.+))?$/;
const IGNORED = /^(?:%%|Note\s|note\s|autonumber\b|activate\s|deactivate\s|title\b)/;

/** Every mermaid sequence diagram in a Markdown document, titled by the heading above it. */
export function sequenceDiagrams(markdown: string): SequenceDiagram[] {
  const out: SequenceDiagram[] = [];
  let title = '';
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const heading = /^#+\s+(.*)$/.exec(lines[i]!);
    if (heading) title = heading[1]!.trim();
    if (lines[i]!.trim() !== '```mermaid') continue;
    const end = lines.findIndex((line, j) => j > i && line.trim() === '```');
    if (end < 0) throw new Error(`unterminated mermaid block after "${title}"`);
    const text = lines.slice(i + 1, end).join('\n');
    if (/^\s*sequenceDiagram\b/.test(text)) out.push(parseSequenceDiagram(text, title));
    i = end;
  }
  return out;
}

interface Frame {
  keyword: string;
  branches: Pattern[][];
  line: number;
}

/** Parse one diagram's text (starting with `sequenceDiagram`); throws naming the line on anything it cannot read. */
export function parseSequenceDiagram(text: string, title = ''): SequenceDiagram {
  const participants = new Map<string, { side: Side; connection: ConnectionKind }>();
  const arrows: Arrow[] = [];
  const root: Frame = { keyword: 'root', branches: [[]], line: 0 };
  const stack: Frame[] = [root];
  const fail = (line: number, why: string): never => {
    throw new Error(`docs/protocol.md, diagram "${title}", line ${line}: ${why}`);
  };
  const lines = text.split('\n');
  lines.forEach((raw, index) => {
    const line = index + 1;
    const source = raw.trim();
    const frame = stack[stack.length - 1]!;
    const current = frame.branches[frame.branches.length - 1]!;
    if (source === '' || IGNORED.test(source) || (index === 0 && source === 'sequenceDiagram')) return;
    const participant = PARTICIPANT.exec(source);
    if (participant) {
      const label = (participant[2] ?? participant[1]!).toLowerCase();
      const side: Side | undefined = label.includes('destination')
        ? 'dest'
        : label.includes('source')
          ? 'source'
          : undefined;
      if (side === undefined) fail(line, `participant "${participant[1]}" is neither source nor destination`);
      const connection = label.includes('fault') ? 'fault' : label.includes('resumed') ? 'resume' : 'main';
      participants.set(participant[1]!, { side: side!, connection });
      return;
    }
    const arrow = ARROW.exec(source);
    if (arrow) {
      const [, fromAlias, , toAlias, body] = arrow;
      const from = participants.get(fromAlias!) ?? fail(line, `unknown participant "${fromAlias}"`);
      const to = participants.get(toAlias!) ?? fail(line, `unknown participant "${toAlias}"`);
      if (from.connection !== to.connection) fail(line, `an arrow between two connections (${fromAlias} → ${toAlias})`);
      if (from.side === to.side) fail(line, `an arrow from the ${from.side} to itself`);
      const message = /^[A-Za-z]+/.exec(body!)?.[0] ?? '';
      const spec = BY_NAME.get(message) ?? fail(line, `"${message}" is not a message (MESSAGE_SPEC has no such name)`);
      const way = from.side === 'source' ? 'source→dest' : 'dest→source';
      if (spec.direction !== 'both' && spec.direction !== way) fail(line, `${message} travels ${spec.direction}`);
      const a: Arrow = { from: from.side, connection: from.connection, message, line };
      arrows.push(a);
      current.push({ kind: 'arrow', arrow: a });
      return;
    }
    const [keyword] = source.split(/\s+/, 1) as [string];
    if (['loop', 'opt', 'alt', 'par', 'rect', 'box'].includes(keyword)) {
      stack.push({ keyword, branches: [[]], line });
    } else if ((keyword === 'else' && frame.keyword === 'alt') || (keyword === 'and' && frame.keyword === 'par')) {
      frame.branches.push([]);
    } else if (keyword === 'end' && stack.length > 1) {
      stack.pop();
      stack[stack.length - 1]!.branches.at(-1)!.push(block(frame));
    } else {
      fail(line, `cannot read "${source}"`);
    }
  });
  if (stack.length > 1) fail(stack[stack.length - 1]!.line, `"${stack[stack.length - 1]!.keyword}" has no end`);
  return { title, body: { kind: 'seq', items: root.branches[0]! }, arrows };
}

function block(frame: Frame): Pattern {
  const seqs: Pattern[] = frame.branches.map((items) => ({ kind: 'seq', items }));
  if (frame.keyword === 'loop') return { kind: 'loop', body: seqs[0]! };
  if (frame.keyword === 'opt') return { kind: 'opt', body: seqs[0]! };
  if (frame.keyword === 'alt') return { kind: 'alt', branches: seqs };
  if (frame.keyword === 'par') return { kind: 'par', branches: seqs };
  return seqs[0]!; // rect, box: grouping only
}

/** The connections a diagram draws arrows on. */
export function connectionsOf(diagram: SequenceDiagram): ConnectionKind[] {
  return [...new Set(diagram.arrows.map((a) => a.connection))];
}

/** The diagram's pattern for one stream, or undefined where it draws nothing on it. */
function project(pattern: Pattern, stream: Stream): Pattern | undefined {
  switch (pattern.kind) {
    case 'arrow': {
      const { connection, from } = pattern.arrow;
      return connection === stream.connection && from === stream.from ? pattern : undefined;
    }
    case 'seq': {
      const items = pattern.items.map((p) => project(p, stream)).filter((p) => p !== undefined);
      return items.length ? { kind: 'seq', items } : undefined;
    }
    case 'loop':
    case 'opt': {
      const body = project(pattern.body, stream);
      return body && { kind: pattern.kind, body };
    }
    case 'alt': {
      const branches = pattern.branches.map((p) => project(p, stream));
      if (branches.every((b) => b === undefined)) return undefined;
      return { kind: 'alt', branches: branches.map((b) => b ?? { kind: 'seq', items: [] }) };
    }
    case 'par': {
      const branches = pattern.branches.map((p) => project(p, stream)).filter((p) => p !== undefined);
      if (branches.length > 1) {
        throw new Error(
          `a par block interleaves two branches on the ${stream.connection} connection's ${stream.from} side`,
        );
      }
      return branches[0];
    }
  }
}

/** The pattern a stream must follow, as a regular expression over message names ("Hello Setup (Pages RoundEnd)* …"). */
export function describeStream(diagram: SequenceDiagram, stream: Stream): string {
  const show = (p: Pattern | undefined): string => {
    if (p === undefined) return '';
    switch (p.kind) {
      case 'arrow':
        return p.arrow.message;
      case 'seq':
        return p.items.map(show).join(' ');
      case 'loop':
        return `(${show(p.body)})*`;
      case 'opt':
        return `(${show(p.body)})?`;
      case 'alt':
        return `(${p.branches.map(show).join(' | ')})`;
      case 'par':
        return p.branches.map(show).join(' ');
    }
  };
  return show(project(diagram.body, stream)) || '(nothing)';
}

/** The names of a recorded stream as they are compared: Heartbeats dropped, runs of one message collapsed. */
export function normalizeStream(names: readonly string[]): string[] {
  const out: string[] = [];
  for (const name of names) if (name !== 'Heartbeat' && out.at(-1) !== name) out.push(name);
  return out;
}

/**
 * Whether `names` (already normalized) follow the diagram on `stream` — all of it, or with
 * `prefix`, a beginning of it (a connection that broke).
 */
export function followsDiagram(
  diagram: SequenceDiagram,
  stream: Stream,
  names: readonly string[],
  options: { prefix?: boolean } = {},
): boolean {
  const nfa = new Nfa(project(diagram.body, stream));
  let states = nfa.closure([nfa.start]);
  for (const name of names) {
    // One name of the collapsed stream stands for a run of that message in the diagram's word.
    let next = nfa.closure(nfa.step(states, name));
    for (let frontier = next; frontier.size > 0;) {
      const more = [...nfa.closure(nfa.step(frontier, name))].filter((s) => !next.has(s));
      frontier = new Set(more);
      next = new Set([...next, ...more]);
    }
    states = next;
    if (states.size === 0) return false;
  }
  return options.prefix ? true : states.has(nfa.accept);
}

/** A Thompson NFA over message names: every state lies on a path from start to accept. */
class Nfa {
  readonly #epsilon: number[][] = [];
  readonly #edges: Array<Array<[string, number]>> = [];
  readonly start: number;
  readonly accept: number;

  constructor(pattern: Pattern | undefined) {
    [this.start, this.accept] = this.#build(pattern ?? { kind: 'seq', items: [] });
  }

  #state(): number {
    this.#epsilon.push([]);
    this.#edges.push([]);
    return this.#epsilon.length - 1;
  }

  #link(from: number, to: number): void {
    this.#epsilon[from]!.push(to);
  }

  #build(p: Pattern): [number, number] {
    const s = this.#state();
    const e = this.#state();
    switch (p.kind) {
      case 'arrow':
        this.#edges[s]!.push([p.arrow.message, e]);
        break;
      case 'seq': {
        let at = s;
        for (const item of p.items) {
          const [is, ie] = this.#build(item);
          this.#link(at, is);
          at = ie;
        }
        this.#link(at, e);
        break;
      }
      case 'alt':
        for (const branch of p.branches) {
          const [bs, be] = this.#build(branch);
          this.#link(s, bs);
          this.#link(be, e);
        }
        break;
      case 'loop':
      case 'opt': {
        const [bs, be] = this.#build(p.body);
        this.#link(s, bs);
        this.#link(be, e);
        this.#link(s, e);
        if (p.kind === 'loop') this.#link(be, bs);
        break;
      }
      case 'par':
        throw new Error('a par block is matched per stream: project the pattern first');
    }
    return [s, e];
  }

  closure(states: Iterable<number>): Set<number> {
    const out = new Set<number>(states);
    const todo = [...out];
    while (todo.length) {
      for (const next of this.#epsilon[todo.pop()!]!) {
        if (!out.has(next)) {
          out.add(next);
          todo.push(next);
        }
      }
    }
    return out;
  }

  step(states: Iterable<number>, name: string): number[] {
    const out: number[] = [];
    for (const s of states) for (const [label, next] of this.#edges[s]!) if (label === name) out.push(next);
    return out;
  }
}
