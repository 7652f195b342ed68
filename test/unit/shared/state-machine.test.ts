import { describe, expect, it } from 'vitest';
import { StateMachine, type TransitionTable } from '@livemig/shared';

type Light = 'red' | 'green' | 'yellow' | 'off';
const TABLE: TransitionTable<Light> = { red: ['green', 'off'], green: ['yellow'], yellow: ['red'], off: [] };

describe('StateMachine', () => {
  it('applies an allowed transition and tells listeners', () => {
    const machine = new StateMachine(TABLE, 'red');
    const seen: string[] = [];
    machine.onTransition((from, to) => seen.push(`${from}>${to}`));
    machine.transition('red', 'green');
    expect(machine.state).toBe('green');
    expect(seen).toEqual(['red>green']);
  });

  it('rejects a transition the table forbids, changing nothing', () => {
    const machine = new StateMachine(TABLE, 'red');
    expect(() => machine.transition('red', 'yellow')).toThrow(expect.objectContaining({ code: 'ERR_BAD_TRANSITION' }));
    expect(machine.state).toBe('red');
  });

  it('rejects when the current state is not the expected one (validate, then mutate)', () => {
    const machine = new StateMachine(TABLE, 'green');
    let called = false;
    machine.onTransition(() => (called = true));
    expect(() => machine.transition('red', 'off')).toThrow(expect.objectContaining({ code: 'ERR_BAD_TRANSITION' }));
    expect(machine.state).toBe('green');
    expect(called).toBe(false);
  });

  it('accepts any of several expected states and knows final states', () => {
    const machine = new StateMachine(TABLE, 'red');
    machine.transition(['yellow', 'red'], 'off');
    expect(machine.isFinal).toBe(true);
  });
});
