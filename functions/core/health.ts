import { SUBSCRIPTION_DISABLED, type Subscription } from './model.ts';
import type { Clock, EventLog, SubscriptionStore } from './ports.ts';

/** How long an endpoint may fail without a single success before it is disabled: 5 days. */
export const DEFAULT_DISABLE_AFTER_MS = 5 * 24 * 60 * 60 * 1000;

export interface HealthDeps {
  subscriptions: SubscriptionStore;
  events: EventLog;
  clock: Clock;
  disableAfterMs: number;
}

/** What a try told about the endpoint. */
export type TryVerdict = 'succeeded' | 'failed' | 'gone';

/**
 * Keeps a subscription's health after a try.
 * 1. A success ends a run of failures.
 * 2. A failure starts one (keeping an earlier start); once the run is older than
 *    `disableAfterMs`, the subscription is disabled.
 * 3. 410 Gone disables it at once: the receiver says the endpoint is not coming back.
 * Disabling appends `subscription.disabled` to the partner's own log, so it is pollable and
 * delivered to the partner's other subscriptions.
 */
export async function recordTry(
  deps: HealthDeps,
  subscription: Subscription,
  verdict: TryVerdict,
): Promise<void> {
  const now = deps.clock.now();
  if (verdict === 'succeeded') {
    if (subscription.failingSince !== undefined) {
      await deps.subscriptions.updateHealth(subscription.id, { kind: 'healthy' });
    }
    return;
  }
  if (verdict === 'gone') {
    await disable(deps, subscription, 'the endpoint answered 410 Gone', now);
    return;
  }
  let since = subscription.failingSince;
  if (since === undefined) {
    const update = await deps.subscriptions.updateHealth(subscription.id, {
      kind: 'failing',
      since: now.toISOString(),
    });
    since = update?.subscription.failingSince;
  }
  if (since !== undefined && now.getTime() - Date.parse(since) >= deps.disableAfterMs) {
    await disable(deps, subscription, `no successful delivery since ${since}`, now);
  }
}

async function disable(
  deps: HealthDeps,
  subscription: Subscription,
  reason: string,
  now: Date,
): Promise<void> {
  const update = await deps.subscriptions.updateHealth(subscription.id, {
    kind: 'disable',
    reason,
    at: now.toISOString(),
  });
  // Only the caller whose update disabled it tells the partner; concurrent dispatchers do not.
  // The two writes are not one transaction (different tables): a crash between them leaves
  // the subscription disabled without the event, which GET /v1/subscriptions still shows.
  if (!update?.changed) return;
  await deps.events.append({
    partnerId: subscription.partnerId,
    type: SUBSCRIPTION_DISABLED,
    payload: {
      subscriptionId: subscription.id,
      ...(subscription.url === undefined ? { transport: 'connection' } : { url: subscription.url }),
      reason,
      disabledAt: now.toISOString(),
    },
    createdAt: now.toISOString(),
  });
}
