/**
 * Our filter policy (lib/filter-policy.ts, docs/design.md#filter-policies) as an SNS FilterPolicy on message
 * attributes, for the SNS email subscriptions of EMAIL_PROVIDER=sns (docs/design.md#email). Pure.
 *
 * Our conditions on `type` and `severity` are SNS's own syntax, so most of the work is deciding what SNS can say:
 * where the question is "does this condition hold for this value", the answer is our evaluator's
 * ({@link conditionHolds}), and the combination limit is counted as validation counts it ({@link combinationCount}).
 */
import { type Condition, combinationCount, conditionHolds, type FilterPolicy } from '../../../lib/filter-policy.ts';
import { isPlainObject } from '../../../lib/json.ts';
import { SNS_SUBSCRIPTION_ATTRIBUTE } from './client.ts';

const SEVERITIES = ['info', 'warning', 'critical'] as const;
/** SNS's limit on the combinations of one FilterPolicy. */
const SNS_MAX_COMBINATIONS = 150;

/**
 * Our filter policy → an SNS FilterPolicy on message attributes (the scope `SnsClient.subscribe` sets).
 *
 * - `type` and `severity` map directly: our conditions on them are SNS's own syntax. (`anything-but` with a suffix,
 *   or with numbers, has no SNS equivalent on a string attribute; `severity` is then listed exactly — it has three
 *   values — and `type` is widened, see below.)
 * - `eventTypes` (exact or `prefix.*`; `*`/empty/null = all) become a `type` condition list: exact strings and
 *   `{prefix: 'x.'}`. With a `type` key in the policy as well, the two are intersected; where a pair cannot be
 *   intersected in one SNS condition (a prefix pattern and a suffix or anything-but condition), the event-type prefix
 *   alone is kept — wider than ours — and `type` is reported in `unsupportedKeys`.
 * - `criticalOnly` narrows severity to `critical` (intersected with the policy's own severity conditions).
 * - `data.*` and `source` keys cannot be expressed on message attributes (we publish only type, severity and
 *   subscription): they are left out and returned in `unsupportedKeys` so the caller can explain.
 * - `subscriptionId` adds `subscription: [id]`, which the SNS provider publishes with every mail: each publish
 *   then reaches exactly the one subscription it is for, and our own matching (which does enforce `data.*`) decides
 *   who gets what. Without it a publish reaches every subscription on the handle's topic whose type/severity
 *   conditions match — see the module comment of provider.ts.
 *
 * The SNS policy is never narrower than ours: when it would exceed SNS's 150 combinations, `type` is dropped (and
 * reported). No condition left → `policy: null` (no filter: every message of the topic).
 */
export function toSnsFilterPolicy(input: {
  eventTypes: string[] | null;
  filterPolicy: FilterPolicy | null;
  criticalOnly?: boolean;
  subscriptionId?: string | null;
}): { policy: Record<string, unknown> | null; unsupportedKeys: string[] } {
  const unsupported: string[] = [];
  // SNS conditions on a String attribute are written as ours are.
  const policy: Record<string, Condition[]> = {};
  const ours = input.filterPolicy ?? {};

  for (const key of Object.keys(ours)) {
    if (key !== 'type' && key !== 'severity') unsupported.push(key);
  }

  // type: `order.*` → `{prefix: 'order.'}`, `order.paid` → `'order.paid'`
  const patterns = (input.eventTypes ?? []).filter((p) => typeof p === 'string' && p.length > 0);
  const fromEventTypes: Condition[] | null =
    patterns.length === 0 || patterns.includes('*')
      ? null
      : dedupe(patterns.map((p): Condition => (p.endsWith('.*') ? { prefix: p.slice(0, -1) } : p)));
  const typeConditions = Array.isArray(ours.type) ? ours.type : null;
  if (fromEventTypes && typeConditions) {
    const { conditions, exact } = intersectTypes(patterns, typeConditions);
    if (!exact) unsupported.push('type');
    // Nothing satisfies both: `exists: false` on an attribute every publish carries never matches, as ours wouldn't.
    policy.type = conditions.length > 0 ? conditions : [{ exists: false }];
  } else if (fromEventTypes) {
    policy.type = fromEventTypes;
  } else if (typeConditions) {
    if (typeConditions.every(isSnsStringCondition)) policy.type = typeConditions;
    else unsupported.push('type');
  }

  // severity
  const severityConditions = Array.isArray(ours.severity) ? ours.severity : null;
  if (severityConditions && !input.criticalOnly && severityConditions.every(isSnsStringCondition)) {
    policy.severity = severityConditions;
  } else if (severityConditions || input.criticalOnly) {
    // Exactly the severities both allow, listed.
    const allowed = SEVERITIES.filter(
      (s) =>
        (!input.criticalOnly || s === 'critical') &&
        (!severityConditions || severityConditions.some((c) => conditionHolds(c, s))),
    );
    policy.severity = allowed.length > 0 ? [...allowed] : [{ exists: false }];
  }

  if (input.subscriptionId) policy[SNS_SUBSCRIPTION_ATTRIBUTE] = [input.subscriptionId];

  // Every key set above holds a list: a key without one (which combinationCount counts 0) cannot occur here.
  if (combinationCount(policy) > SNS_MAX_COMBINATIONS && policy.type) {
    delete policy.type;
    if (!unsupported.includes('type')) unsupported.push('type');
  }

  return { policy: Object.keys(policy).length > 0 ? policy : null, unsupportedKeys: [...new Set(unsupported)] };
}

function dedupe(conditions: Condition[]): Condition[] {
  const seen = new Set<string>();
  return conditions.filter((c) => {
    const k = JSON.stringify(c);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/**
 * A condition SNS evaluates on a String attribute exactly as our evaluator does on a string field. (What SNS can
 * express is this module's question, not the evaluator's: `anything-but` with numbers or a suffix is ours only.)
 */
function isSnsStringCondition(c: unknown): boolean {
  if (typeof c === 'string') return true;
  if (!isPlainObject(c)) return false;
  const ops = Object.keys(c);
  if (ops.length !== 1) return false;
  const v = c[ops[0]!];
  switch (ops[0]) {
    case 'prefix':
    case 'suffix':
      return typeof v === 'string';
    case 'exists':
      return typeof v === 'boolean';
    case 'anything-but':
      if (typeof v === 'string') return true;
      if (Array.isArray(v)) return v.length > 0 && v.every((x) => typeof x === 'string');
      return isPlainObject(v) && Object.keys(v).length === 1 && typeof v.prefix === 'string';
    default:
      return false;
  }
}

/**
 * eventTypes ∧ type conditions as one SNS condition list. `exact` is false when some pair had to be widened to the
 * event-type prefix alone.
 */
function intersectTypes(
  patterns: string[],
  conditions: readonly Condition[],
): { conditions: Condition[]; exact: boolean } {
  const out: Condition[] = [];
  let exact = true;
  for (const p of patterns) {
    if (!p.endsWith('.*')) {
      // An exact type: keep it when any condition holds for it.
      if (conditions.some((c) => conditionHolds(c, p))) out.push(p);
      continue;
    }
    const prefix = p.slice(0, -1);
    // By shape (as written), not by evaluation: which conditions narrow to one prefix SNS can say.
    for (const c of conditions as readonly unknown[]) {
      if (typeof c === 'string') {
        if (c.length > prefix.length && c.startsWith(prefix)) out.push(c);
      } else if (isPlainObject(c) && typeof c.prefix === 'string' && Object.keys(c).length === 1) {
        if (c.prefix.startsWith(prefix)) out.push({ prefix: c.prefix });
        else if (prefix.startsWith(c.prefix)) out.push({ prefix });
      } else if (isPlainObject(c) && 'exists' in c) {
        if (c.exists === true) out.push({ prefix });
      } else {
        // suffix / anything-but under a prefix: SNS has no AND within a key; keep the wider prefix.
        out.push({ prefix });
        exact = false;
      }
    }
  }
  return { conditions: dedupe(out), exact };
}
