/**
 * The outline of `respond`: a list of objects, each naming its `action`. `report` needs a
 * `name`; every other action is passed through as written (its own validator lives elsewhere).
 */
import { isRecord } from './rule-path';
import { describe, join, type Action } from './rule-types';

export function parseRespond(input: unknown, at: string, fail: (path: string, problem: string) => void): Action[] | undefined {
  if (!Array.isArray(input)) {
    fail(at, input === undefined ? 'required: a list of response actions' : `must be a list of response actions, got ${describe(input)}`);
    return undefined;
  }
  let ok = true;
  const actions: Action[] = [];
  input.forEach((raw, i) => {
    const where = `${at}[${i}]`;
    if (!isRecord(raw)) {
      fail(where, `a response action must be an object, got ${describe(raw)}`);
      ok = false;
    } else if (typeof raw.action !== 'string' || raw.action.trim() === '') {
      fail(join(where, 'action'), raw.action === undefined ? 'required' : `must be a non-empty string, got ${describe(raw.action)}`);
      ok = false;
    } else if (raw.action === 'report' && (typeof raw.name !== 'string' || raw.name.trim() === '')) {
      fail(join(where, 'name'), `"report" needs a non-empty string name${raw.name === undefined ? '' : `, got ${describe(raw.name)}`}`);
      ok = false;
    } else {
      actions.push({ ...raw } as Action);
    }
  });
  return ok ? actions : undefined;
}
