/**
 * The `notify-deliveries` consumer (docs/design.md#consumer): one attempt per message, in five steps per batch.
 *
 * - load: ONE D1 round trip reads every delivery, notification and subscription the batch names (tried twice: one D1
 *   blip must not cost every message of the batch a delivery);
 * - plan: from those rows alone, what each message needs: nothing, a move without an attempt, or an attempt;
 * - act: the attempts, at most MAX_CONCURRENT_SENDS at once, each outcome turned into its statements and decision;
 * - write: ONE D1 batch writes every outcome (guarded attempt rows and delivery updates, notification counts,
 *   subscription health and disables, rejected messages), tried twice;
 * - settle: only then is each message acked or retried (a paced wait: put back on its queue as a new message, then
 *   acked), and the owner told of an endpoint a 410 disabled.
 *
 * A delivery already terminal is acked untouched (at-least-once safe), and a message whose processing throws is
 * retried alone. A message whose attempt row the write did not insert lost to another copy of itself (the guard
 * found the row moved on): it is acked with no side effect of its own — no retry chain, no health, no alert.
 */
import { getDb } from '../db/client.ts';
import { byShard } from '../db/shards.ts';
import { type RunContext, runContext } from '../env.ts';
import { newId } from '../lib/ids.ts';
import { createLimiter } from '../lib/limiter.ts';
import { raiseEndpointDisabled } from './alerts.ts';
import { type AttemptInput, type AttemptOutcome, eventOf, performAttempt, type WebhookRow } from './attempt.ts';
import { type QueuedDelivery, requeueDeliveries } from './enqueue.ts';
import { DeliveryMessage } from './messages.ts';
import { LateForGrant, notedWaitsStatement, onTime, type PaceRequest, pace } from './pacer.ts';
import { type Rejection, recordRejections } from './rejections.ts';
import { retryDelaySeconds, retryPolicyOf } from './retry-policy.ts';
import {
  type AttemptKey,
  type AttemptMoveFields,
  type AttemptMoveValues,
  type AttemptValues,
  attemptKeyOf,
  attemptMove,
  attemptMovesStatement,
  attemptsStatements,
  attemptValues,
  disableGoneStatement,
  type HealthOutcome,
  type LoadedBatch,
  loadBatch,
  moveDelivery,
  storedAttemptsStatement,
  webhookHealthStatement,
} from './store.ts';
import {
  type BatchedMove,
  batchTransitionStatement,
  type DeliveryStatus,
  type InFlightTarget,
  TERMINAL_STATUSES,
} from './summary.ts';
import { TEST_SEND_INTERRUPTED } from './test-send.ts';

/** A Worker invocation may hold 6 simultaneous outbound connections in production. */
export const MAX_CONCURRENT_SENDS = 6;
/** `max_retries = 7` in wrangler.toml: the 8th delivery of a message is its last before the DLQ. */
export const QUEUE_MAX_DELIVERIES = 8;
/** Delay before a message whose outcome could not be written is offered again. */
const WRITE_FAILURE_RETRY_SECONDS = 5;
/** Pause before the second try of a D1 round trip that failed (a blip, not an outage). */
const D1_RETRY_PAUSE_MS = 200;

export interface ConsumerReport {
  messages: number;
  attempts: number;
  acked: number;
  retried: number;
  d1RoundTrips: number;
  peakConcurrency: number;
  /** Paced sends that could not start on time for their grant: not sent, waiting again (docs/design.md#pacing). */
  pacedLate: number;
}

/**
 * Acked; retried after a delay; or — a paced wait (docs/design.md#pacing) — put back on its queue as a new message
 * with that delay and then acked, so that waiting for a turn never spends a queue retry.
 */
type Decision = { ack: true } | { ack: false; delaySeconds: number; requeue?: QueuedDelivery };

/** A message's part of the batch's write, and what the queue is told once it is written. */
interface Planned {
  message: Message<unknown>;
  decision: Decision;
  /** Its statements; an attempt's row and move are not among them but in `attempt`. */
  statements: D1PreparedStatement[];
  /**
   * The attempt it made: its row and its delivery's move, each written with the batch's others in one statement. No
   * `move` when the move is among `statements`, right after its own transition: a critical notification's status is
   * read from its deliveries' rows, so each of its transitions must see the moves before it applied.
   */
  attempt?: { row: AttemptValues; move?: AttemptMoveValues };
  /** Its notification's transition, written with the batch's others for that notification (`write`). */
  transition?: BatchedMove;
}

/** What a message needs: its part is known already (no attempt), or an attempt decides it. */
type Step =
  | { kind: 'done'; planned: Planned }
  | {
      kind: 'attempt';
      message: Message<unknown>;
      deliveryId: string;
      input: AttemptInput;
      /** A paced delivery's grant: the time (epoch ms) its request goes. */
      paced?: { at: number };
    };

/** An attempt on a webhook as it finished: the raw material of the webhook's health. */
interface Observed {
  webhook: WebhookRow;
  outcome: AttemptOutcome;
  attempt: AttemptKey;
}

interface ValidMessage {
  message: Message<unknown>;
  deliveryId: string;
  /** Absent on a message sent before sharding: its delivery is on SHARD_0. */
  handle: string | undefined;
}

const now = () => new Date().toISOString();

/** A message whose part is known without an attempt: these statements (maybe none), then acked. */
const done = (message: Message<unknown>, statements: D1PreparedStatement[] = []): Step => ({
  kind: 'done',
  planned: { message, decision: { ack: true }, statements },
});

/** A corrupt row or a bug: this message alone is retried; the rest of the batch goes on. */
function crashed(message: Message<unknown>, deliveryId: string, err: unknown): Planned {
  console.error(JSON.stringify({ level: 'error', msg: 'delivery_attempt_crashed', deliveryId, error: String(err) }));
  return { message, decision: { ack: false, delaySeconds: WRITE_FAILURE_RETRY_SECONDS }, statements: [] };
}

/** The batch's well-formed messages; the others become rejections, recorded and acked with the batch's write. */
function readMessages(batch: MessageBatch<unknown>): { valid: ValidMessage[]; rejections: Rejection[] } {
  const valid: ValidMessage[] = [];
  const rejections: Rejection[] = [];
  for (const message of batch.messages) {
    const parsed = DeliveryMessage.safeParse(message.body);
    if (parsed.success) valid.push({ message, deliveryId: parsed.data.deliveryId, handle: parsed.data.handle });
    else
      rejections.push({
        queue: batch.queue,
        message,
        handle: null,
        reason: `invalid delivery message: ${parsed.error.issues[0]?.message ?? 'schema'}`,
      });
  }
  return { valid, rejections };
}

/** One message's step, from the loaded rows: nothing left to do, a move without an attempt, or an attempt. */
function planOne(d1: D1Database, { message, deliveryId }: ValidMessage, loaded: LoadedBatch): Step {
  const d = loaded.deliveries.get(deliveryId);
  // Unknown (its handle was deleted) or already terminal (a duplicate message): nothing left to do.
  if (!d || TERMINAL_STATUSES.includes(d.status)) return done(message);
  // Deferred: not due yet; the sweeper enqueues it when its window ends (docs/design.md#peak-campaign-windows).
  if (d.status === 'deferred') return done(message);
  const t = now();
  const notAttempted = (to: 'cancelled' | 'skipped', statusReason: string) =>
    done(message, moveDelivery(d1, d, to, { statusReason, attempted: false, now: t }));
  // A test send belongs to its request, which never enqueues it: one here was orphaned (docs/design.md#test-sends).
  if (d.kind === 'test') return notAttempted('cancelled', TEST_SEND_INTERRUPTED);
  const event = eventOf(d, d.notificationId ? loaded.notifications.get(d.notificationId) : undefined);
  if (!event) return notAttempted('cancelled', 'notification_missing');
  let webhook: WebhookRow | undefined;
  if (d.channel === 'webhook') {
    webhook = d.subscriptionId ? loaded.webhooks.get(d.subscriptionId) : undefined;
    if (!webhook) return notAttempted('cancelled', 'subscription_deleted');
    if (!webhook.enabled) return notAttempted('skipped', 'subscription_disabled');
  } else if (d.recipientType !== 'platform_alert') {
    const sub = d.subscriptionId ? loaded.emails.get(d.subscriptionId) : undefined;
    if (!sub) return notAttempted('cancelled', 'subscription_deleted');
    // Nothing but its confirmation mail reaches an address that has not confirmed (or that bounced, or left).
    if (sub.status !== 'active') return notAttempted('skipped', `subscription_${sub.status}`);
  }
  return { kind: 'attempt', message, deliveryId, input: { delivery: d, event, webhook } };
}

/** plan: every message's step. The same delivery twice in one batch (a duplicate send): one attempt, both acked. */
function plan(d1: D1Database, valid: readonly ValidMessage[], loaded: LoadedBatch): Step[] {
  const seen = new Set<string>();
  return valid.map((v) => {
    try {
      if (seen.has(v.deliveryId)) return done(v.message);
      seen.add(v.deliveryId);
      return planOne(d1, v, loaded);
    } catch (err) {
      return { kind: 'done', planned: crashed(v.message, v.deliveryId, err) };
    }
  });
}

/** Why `cancelOpenDeliveries` cancels: the only change that can reach a delivery while its attempt is in flight. */
const CANCELLED_IN_FLIGHT_REASON = 'subscription_deleted';

/**
 * Where the outcome of an attempt takes its delivery if its subscription was deleted while the request was in flight:
 * the DELETE made the row `cancelled`, yet the request was made and its attempt row is written. Without this the
 * delivery said `cancelled` with no attempt although the endpoint had the event (found by `npm run soak`). An
 * endpoint that accepted it has it: `succeeded`. A failure leaves it `cancelled` (never retried) with the attempt
 * counted. The outcome's one guarded move carries it (`attemptMove`), so the normal case writes nothing more.
 */
function cancelledInFlight(o: AttemptOutcome): InFlightTarget {
  return o.classification.outcome === 'succeeded'
    ? { to: 'succeeded', statusReason: null }
    : { to: 'cancelled', statusReason: CANCELLED_IN_FLIGHT_REASON };
}

/** Where an attempt's outcome takes its delivery, and what the queue is told: done, retried, or handed to the DLQ. */
function outcomeTarget(
  { cfg }: RunContext,
  message: Message<unknown>,
  { delivery: d, webhook }: AttemptInput,
  outcome: AttemptOutcome,
  at: string,
): { to: DeliveryStatus; fields: AttemptMoveFields; decision: Decision } {
  const c = outcome.classification;
  const done: Decision = { ack: true };
  if (c.outcome === 'succeeded') {
    const fields = { statusReason: null, httpStatus: outcome.httpStatus, now: at };
    return { to: 'succeeded', fields: { ...fields, providerMessageId: outcome.providerMessageId }, decision: done };
  }
  const fields = { errorClass: c.errorClass, httpStatus: outcome.httpStatus, now: at };
  if (!c.retryable) return { to: 'dead', fields: { ...fields, statusReason: c.errorClass }, decision: done };
  const delay = retryDelaySeconds(d.attemptCount + 1 - d.retryBase, {
    retryAfterSeconds: c.retryAfterSeconds,
    // The webhook's own policy (docs/design.md#retry-policies); an email follows the default.
    schedule: retryPolicyOf(webhook, cfg.retryDelaysSeconds).delaysSeconds,
  });
  if (delay !== null) {
    const next = new Date(Date.now() + delay * 1000).toISOString();
    return {
      to: 'retrying',
      fields: { ...fields, statusReason: 'retry_scheduled', nextAttemptAt: next },
      decision: { ack: false, delaySeconds: delay },
    };
  }
  // The schedule is spent and so are the queue's retries: retrying hands the message to the DLQ, whose consumer
  // writes `dead` (docs/design.md#delivery).
  if (message.attempts >= QUEUE_MAX_DELIVERIES)
    return {
      to: 'retrying',
      fields: { ...fields, statusReason: 'retries_exhausted' },
      decision: { ack: false, delaySeconds: 0 },
    };
  // Spent schedule, but this message is a re-enqueued one the queue would retry further: stop here.
  return { to: 'dead', fields: { ...fields, statusReason: 'retries_exhausted' }, decision: done };
}

/**
 * An attempt's part of the write: its row and its delivery's move (each written with the batch's others), and what
 * the queue is told. The move also settles the row a delete cancelled while the request was in flight. A notification
 * that is not critical gets its transition with the batch's others (`write`); a critical one, its own, followed by its
 * move alone (see `Planned.attempt`).
 */
function recordOutcome(
  ctx: RunContext,
  d1: D1Database,
  message: Message<unknown>,
  input: AttemptInput,
  outcome: AttemptOutcome,
  at: string,
): Planned {
  const { to, fields, decision } = outcomeTarget(ctx, message, input, outcome, at);
  const { values, transition } = attemptMove(input.delivery, to, fields, cancelledInFlight(outcome));
  const row = attemptValues(input.delivery, outcome, at, newId('att'));
  if (input.event.severity !== 'critical' || !transition)
    return { message, decision, statements: [], attempt: { row, move: values }, ...(transition ? { transition } : {}) };
  const statements = [
    batchTransitionStatement(d1, transition.notificationId, [transition], at),
    attemptMovesStatement(d1, [values]),
  ];
  return { message, decision, statements, attempt: { row } };
}

/**
 * act: the attempts, at most MAX_CONCURRENT_SENDS at once, each outcome recorded as it finishes. Production webhook
 * attempts are observed in the order they finished, for the webhooks' health.
 */
async function act(
  ctx: RunContext,
  d1: D1Database,
  steps: readonly Step[],
  report: ConsumerReport,
): Promise<{ planned: Planned[]; observed: Observed[] }> {
  const limiter = createLimiter(MAX_CONCURRENT_SENDS);
  const observed: Observed[] = [];
  const all = await Promise.all(
    steps.map(async (step): Promise<Planned> => {
      if (step.kind === 'done') return step.planned;
      const { message, deliveryId, input } = step;
      try {
        // A paced delivery waits for its grant here, and sends only if still on time (docs/design.md#pacing).
        const { paced } = step;
        if (paced) await pause(paced.at - Date.now());
        const outcome = await limiter.run(() =>
          performAttempt(ctx, input, paced ? { beforeSend: () => onTime(paced.at) } : {}),
        );
        report.attempts++;
        const result = recordOutcome(ctx, d1, message, input, outcome, now());
        if (input.webhook && input.delivery.kind === 'event')
          observed.push({ webhook: input.webhook, outcome, attempt: attemptKeyOf(result.attempt!.row) });
        return result;
      } catch (err) {
        if (err instanceof LateForGrant) {
          report.pacedLate++;
          return latePaced(step, err);
        }
        return crashed(message, deliveryId, err);
      }
    }),
  );
  report.peakConcurrency = Math.max(report.peakConcurrency, limiter.peak);
  return { planned: all, observed };
}

/**
 * A paced send that could not start on time (a stalled invocation, a full limiter): it does not go — sent late, it
 * would crowd the next grants — and waits again, at the front of its pacer's line. No attempt, no write.
 */
function latePaced(step: Extract<Step, { kind: 'attempt' }>, err: LateForGrant): Planned {
  console.warn(
    JSON.stringify({ level: 'warn', msg: 'paced_send_late', deliveryId: step.deliveryId, lateMs: err.lateMs }),
  );
  return { message: step.message, decision: pacedWait(step, 0), statements: [] };
}

/** A paced delivery's wait on its queue (a new message, so no queue retry is spent). */
const pacedWait = (step: Extract<Step, { kind: 'attempt' }>, delaySeconds: number): Decision => ({
  ack: false,
  delaySeconds,
  requeue: { deliveryId: step.deliveryId, handle: step.input.delivery.handle },
});

/**
 * pace: each attempt on a webhook with a `rateLimit` asks its pacer for a send time (docs/design.md#pacing). One
 * granted stays an attempt (waiting for its time in the invocation); one held waits on its queue without an attempt
 * (a new message: `pacedWait`), and a long wait is noted on the row by the batch's one write (`notedWaitsStatement`).
 */
async function paceSteps(env: Env, steps: Step[]): Promise<{ steps: Step[]; noted: Map<string, string> }> {
  const requests: PaceRequest[] = steps.flatMap((s) =>
    s.kind === 'attempt' && s.input.webhook?.rateLimit
      ? [{ deliveryId: s.deliveryId, webhookId: s.input.webhook.id, rateLimit: s.input.webhook.rateLimit }]
      : [],
  );
  const noted = new Map<string, string>();
  if (!requests.length) return { steps, noted };
  const verdicts = await pace(env.PACER, requests);
  const paced = steps.map((s): Step => {
    const v = s.kind === 'attempt' ? verdicts.get(s.deliveryId) : undefined;
    if (s.kind !== 'attempt' || !v) return s;
    if (v.go) return { ...s, paced: { at: v.at } };
    if (v.slotAt) noted.set(s.deliveryId, v.slotAt);
    return { kind: 'done', planned: { message: s.message, decision: pacedWait(s, v.delaySeconds), statements: [] } };
  });
  return { steps: paced, noted };
}

/** What one batch did to each webhook: its attempts in the order they finished, and the 410s among them. */
interface WebhookEffects {
  webhook: WebhookRow;
  outcomes: HealthOutcome[];
  goneAttempts: AttemptKey[];
}

/**
 * A healthy webhook's last success is refreshed at most this often (docs/design.md#consumer): a batch of successes
 * on a webhook that is not failing and succeeded less than this ago would write nothing else, so it writes nothing.
 */
export const HEALTH_REFRESH_MS = 60_000;

/** True when writing these outcomes would only move a recent `last_success_at` forward. */
function healthUnchanged(e: WebhookEffects, at: number): boolean {
  const w = e.webhook;
  return (
    e.outcomes.every((o) => o.succeeded) &&
    w.consecutiveFailures === 0 &&
    w.failingSince === null &&
    w.lastSuccessAt !== null &&
    at - Date.parse(w.lastSuccessAt) < HEALTH_REFRESH_MS
  );
}

/** Each webhook's attempts of this batch, for its health and the disable a 410 asks for. */
function webhookEffects(observed: readonly Observed[]): WebhookEffects[] {
  const byWebhook = new Map<string, WebhookEffects>();
  for (const { webhook, outcome, attempt } of observed) {
    const c = outcome.classification;
    const e = byWebhook.get(webhook.id) ?? { webhook, outcomes: [], goneAttempts: [] };
    const gone = c.outcome === 'failed' && c.disableSubscription;
    e.outcomes.push({
      ...attempt,
      succeeded: c.outcome === 'succeeded',
      errorClass: c.outcome === 'failed' ? c.errorClass : null,
    });
    if (gone) e.goneAttempts.push(attempt);
    byWebhook.set(webhook.id, e);
  }
  return [...byWebhook.values()];
}

/** What the write settled: whether it was written, the attempt rows it inserted, the webhooks THIS write disabled. */
interface Written {
  ok: boolean;
  recorded: ReadonlySet<string>;
  disabled: readonly WebhookRow[];
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/**
 * write: every message's statements, the webhooks' health and disables in ONE batch on their shard. Which
 * attempt rows it inserted, and which webhooks it disabled, come from `meta.changes`. A failed write is tried once
 * more — unless the attempt rows show it committed and only its answer was lost (the batch is atomic); its disables
 * then reach their owners through the minute job (`disabled_alert_pending`).
 */
async function write(
  d1: D1Database,
  planned: readonly Planned[],
  effects: readonly WebhookEffects[],
  report: ConsumerReport,
  noted: D1PreparedStatement | null,
): Promise<Written> {
  const at = now();
  const writes: D1PreparedStatement[] = [];
  // One transition per notification, before the moves it counts (see batchTransitionStatement).
  const transitions = new Map<string, NonNullable<Planned['transition']>[]>();
  for (const p of planned) {
    if (p.transition)
      transitions.set(p.transition.notificationId, [
        ...(transitions.get(p.transition.notificationId) ?? []),
        p.transition,
      ]);
  }
  for (const [notificationId, moves] of transitions)
    writes.push(batchTransitionStatement(d1, notificationId, moves, at));
  // The attempt rows in one statement (two if their snippets are large), before the moves that record them: their
  // guard reads each row as it was. Then the other statements (a critical notification's transition and move, a move
  // without an attempt), and the other attempts' moves in one statement.
  const made = planned.flatMap((p) => (p.attempt ? [p.attempt] : []));
  const attempts = made.map((a) => attemptKeyOf(a.row));
  const attemptsFrom = writes.length;
  const rows = made.map((a) => a.row);
  writes.push(...attemptsStatements(d1, rows));
  const attemptsTo = writes.length;
  for (const p of planned) writes.push(...p.statements);
  const moves = made.flatMap((a) => (a.move ? [a.move] : []));
  if (moves.length) writes.push(attemptMovesStatement(d1, moves));
  const disableAt = new Map<WebhookRow, number>();
  for (const e of effects) {
    if (!healthUnchanged(e, Date.parse(at))) writes.push(webhookHealthStatement(d1, e.webhook.id, e.outcomes, at));
    if (e.goneAttempts.length) {
      disableAt.set(e.webhook, writes.length);
      writes.push(disableGoneStatement(d1, e.webhook.id, e.goneAttempts, at));
    }
  }
  if (noted) writes.push(noted);
  const settled = (results: D1Result[]): Written => ({
    ok: true,
    recorded: new Set(
      results.slice(attemptsFrom, attemptsTo).flatMap((r) => (r.results as Array<{ id: string }>).map((x) => x.id)),
    ),
    disabled: [...disableAt]
      .filter(([, i]) => results[i]!.meta.changes > 0)
      .map(([w]) => ({ ...w, disabledReason: 'endpoint_gone', disabledAt: at })),
  });
  if (!writes.length) return { ok: true, recorded: new Set(), disabled: [] };
  try {
    const results = await d1.batch(writes);
    report.d1RoundTrips++;
    return settled(results);
  } catch (err) {
    logNotWritten(planned.length, err, 'retrying');
  }
  try {
    await pause(D1_RETRY_PAUSE_MS);
    if (attempts.length) {
      const { results } = await storedAttemptsStatement(d1, attempts).all<{ id: string }>();
      report.d1RoundTrips++;
      if (results.length) return { ok: true, recorded: new Set(results.map((r) => r.id)), disabled: [] };
    }
    // Nothing of it committed (or only copies that lost, whose statements change nothing): write it again.
    const results = await d1.batch(writes);
    report.d1RoundTrips++;
    return settled(results);
  } catch (err) {
    logNotWritten(planned.length, err, 'given_up');
    return { ok: false, recorded: new Set(), disabled: [] };
  }
}

function logNotWritten(messages: number, err: unknown, then: 'retrying' | 'given_up') {
  console.error(
    JSON.stringify({ level: 'error', msg: 'delivery_outcomes_not_written', messages, then, error: String(err) }),
  );
}

/**
 * settle: each message acked or retried as decided once its outcome is written; all retried soon when it is not. A
 * copy whose attempt row was not inserted lost its move to another copy (or to a change that ended the delivery):
 * acked, so one delivery never runs two retry chains. A paced wait is acked once its new message is sent (retried
 * if that send fails: then it spends a queue retry, but nothing is lost).
 */
async function settle(env: Env, planned: readonly Planned[], written: Written, report: ConsumerReport) {
  const waits = written.ok ? planned.flatMap((p) => (!p.decision.ack && p.decision.requeue ? [p.decision] : [])) : [];
  const requeued = waits.length
    ? await requeueDeliveries(
        env,
        waits.map((w) => ({ ...w.requeue!, delaySeconds: w.delaySeconds })),
      )
    : new Set<string>();
  for (const p of planned) {
    const lost = written.ok && p.attempt !== undefined && !written.recorded.has(attemptKeyOf(p.attempt.row).attemptId);
    if (lost) {
      console.warn(JSON.stringify({ level: 'warn', msg: 'delivery_copy_lost', messageId: p.message.id }));
    }
    const moved = !p.decision.ack && p.decision.requeue !== undefined && requeued.has(p.decision.requeue.deliveryId);
    if (written.ok && (lost || p.decision.ack || moved)) {
      p.message.ack();
      report.acked++;
    } else {
      p.message.retry({
        delaySeconds: written.ok && !p.decision.ack ? p.decision.delaySeconds : WRITE_FAILURE_RETRY_SECONDS,
      });
      report.retried++;
    }
  }
}

/** Messages that named nothing: recorded on the control plane (they may name no handle), then acked. */
async function settleRejections(env: Env, rejections: readonly Rejection[]): Promise<void> {
  if (!rejections.length) return;
  let ok = true;
  await env.DB.batch(recordRejections(env.DB, rejections)).catch((err: unknown) => {
    ok = false;
    logNotWritten(rejections.length, err, 'retrying');
  });
  for (const r of rejections) {
    if (ok) r.message.ack();
    else r.message.retry({ delaySeconds: WRITE_FAILURE_RETRY_SECONDS });
  }
}

/**
 * A 410 that THIS write disabled: tell the owner (critical, so it reaches the owner default email). A failure here is
 * not the end of it: the disable carries `disabled_alert_pending`, which the minute job finishes.
 */
async function alertGone(ctx: RunContext, disabled: readonly WebhookRow[]): Promise<void> {
  for (const w of disabled) {
    await raiseEndpointDisabled(ctx, w).catch((err: unknown) =>
      console.error(JSON.stringify({ level: 'error', msg: 'system_event_failed', error: String(err) })),
    );
  }
}

/** The batch's rows, tried twice (see `write`); null when D1 could not be read. */
async function load(d1: D1Database, ids: readonly string[], report: ConsumerReport): Promise<LoadedBatch | null> {
  for (let tries = 1; ; tries++) {
    try {
      const loaded = await loadBatch(getDb(d1), ids);
      report.d1RoundTrips++;
      return loaded;
    } catch (err) {
      console.error(JSON.stringify({ level: 'error', msg: 'delivery_batch_not_loaded', tries, error: String(err) }));
      if (tries === 2) return null;
      await pause(D1_RETRY_PAUSE_MS);
    }
  }
}

/** Delay before a message of a moving handle is offered again (docs/design.md#moving-a-handle). */
const MOVING_RETRY_SECONDS = 10;

/** One shard's part of a batch: load → plan → act → write → settle, one load and one write round trip. */
async function consumeOnShard(
  ctx: RunContext,
  d1: D1Database,
  valid: readonly ValidMessage[],
  report: ConsumerReport,
): Promise<void> {
  const loaded = await load(d1, [...new Set(valid.map((v) => v.deliveryId))], report);
  // Unreadable twice: every message is offered again soon.
  const steps: Step[] = loaded
    ? plan(d1, valid, loaded)
    : valid.map(({ message }) => ({
        kind: 'done',
        planned: { message, decision: { ack: false, delaySeconds: WRITE_FAILURE_RETRY_SECONDS }, statements: [] },
      }));
  const paced = await paceSteps(ctx.env, steps);
  const { planned, observed } = await act(ctx, d1, paced.steps, report);
  const noted = notedWaitsStatement(d1, paced.noted, now());
  const written = await write(d1, planned, webhookEffects(observed), report, noted);
  await settle(ctx.env, planned, written, report);
  if (written.ok) await alertGone(ctx, written.disabled);
}

/** Consumes one batch of `notify-deliveries`: per shard present, load → plan → act → write → settle. */
export async function consumeDeliveries(batch: MessageBatch<unknown>, env: Env): Promise<ConsumerReport> {
  const ctx = runContext(env);
  const report: ConsumerReport = {
    messages: batch.messages.length,
    attempts: 0,
    acked: 0,
    retried: 0,
    d1RoundTrips: 0,
    peakConcurrency: 0,
    pacedLate: 0,
  };
  const { valid, rejections } = readMessages(batch);
  // By the shard of each delivery (docs/design.md#shards), from the cached directory. A handle gone from the directory
  // has its rows gone too, and the plan acks the message (nothing to deliver). A moving handle's messages are offered
  // again after the move, with no attempt made.
  const { groups, moving } = await byShard(env, valid, (v) => v.handle);
  for (const { message } of moving) {
    message.retry({ delaySeconds: MOVING_RETRY_SECONDS });
    report.retried++;
  }
  await Promise.all([
    ...[...groups].map(([d1, group]) => consumeOnShard(ctx, d1, group, report)),
    settleRejections(env, rejections),
  ]);
  return report;
}
