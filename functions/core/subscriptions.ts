import {
  ForbiddenTargetError,
  ServiceUnavailableError,
  StaleWriteError,
  SubscriptionNotFoundError,
  TransformationFailedError,
  ValidationError,
} from './errors.ts';
import type { EventView } from './events.ts';
import { type EventFilter, filterTakes } from './filters.ts';
import { newId } from './ids.ts';
import {
  type JsonValue,
  type Page,
  type SignatureScheme,
  type SigningSecret,
  type Subscription,
  type SubscriptionOrdering,
  type SubscriptionRecord,
  type SubscriptionStatus,
  type SubscriptionTransport,
  WEBHOOK_TEST,
} from './model.ts';
import type { AddressResolver, Clock, ListQuery, SubscriptionStore, Transformer } from './ports.ts';
import { generateSecret, generateSigningKey, isSigningKey, publicKeyOf } from './signing.ts';
import { checkResolvedAddress, checkTargetUrl } from './target-policy.ts';
import { callbackBody, checkedTransformation, type TransformationInput } from './transformations.ts';

/** How long a rotated-out secret keeps signing, so receivers can switch without dropping calls. */
export const SECRET_ROTATION_OVERLAP_MS = 24 * 60 * 60 * 1000;

/**
 * Subscriptions one partner may have, active or disabled. Fan-out reads every active one of
 * the partner for each of its events, so this bounds that read and the deliveries per event.
 */
export const MAX_SUBSCRIPTIONS_PER_PARTNER = 100;

export interface TargetPolicyDeps {
  resolver: AddressResolver;
  allowPrivateTargets: boolean;
}

/** What a partner sees of a subscription: never its secrets, which are shown once. */
export interface SubscriptionView {
  id: string;
  transport: SubscriptionTransport;
  /** A URL subscription's. */
  url?: string;
  eventTypes: string[];
  filter?: EventFilter;
  signature: SignatureScheme;
  /** `key`: each ordering key's events arrive one at a time, in publish order. */
  ordering: 'key' | 'none';
  /** What the callback body is made by: a JSONata expression over the event. */
  transformation?: { jsonata: string };
  /** An `ed25519` subscription's public key (`whpk_`), of its newest signing key. */
  publicKey?: string;
  description?: string;
  status: SubscriptionStatus;
  disabledReason?: string;
  createdAt: string;
  updatedAt: string;
}

/** The public key of an `ed25519` subscription's newest signing key (none in a listing that could not open it). */
function publicKeyView(sub: Subscription): { publicKey?: string } {
  const newest = sub.secrets[0]?.secret;
  return sub.signature === 'ed25519' && newest !== undefined && isSigningKey(newest)
    ? { publicKey: publicKeyOf(newest) }
    : {};
}

/** A new secret of the subscription's scheme: a shared secret, or a signing key. */
function newSecret(scheme: SignatureScheme | undefined): string {
  return scheme === 'ed25519' ? generateSigningKey() : generateSecret();
}

export function toSubscriptionView(sub: Subscription): SubscriptionView {
  return {
    id: sub.id,
    transport: sub.transport ?? 'url',
    ...(sub.url === undefined ? {} : { url: sub.url }),
    eventTypes: sub.eventTypes,
    ...(sub.filter === undefined ? {} : { filter: sub.filter }),
    signature: sub.signature ?? 'hmac',
    ordering: sub.ordering ?? 'none',
    ...(sub.transformation === undefined ? {} : { transformation: sub.transformation }),
    ...publicKeyView(sub),
    ...(sub.description === undefined ? {} : { description: sub.description }),
    status: sub.status,
    ...(sub.disabledReason === undefined ? {} : { disabledReason: sub.disabledReason }),
    createdAt: sub.createdAt,
    updatedAt: sub.updatedAt,
  };
}

/**
 * True when fan-out should deliver this event type to the subscription: its filter takes it
 * (`*`, exact, or `family.*`), and it is not a test event.
 */
export function subscriptionWants(sub: Pick<Subscription, 'eventTypes'>, type: string): boolean {
  // A test event goes only to the subscription it was asked for (see sendTestEvent).
  if (type === WEBHOOK_TEST) return false;
  if (sub.eventTypes.length === 0) return true;
  return sub.eventTypes.some(
    (filter) =>
      filter === '*' || filter === type || (filter.endsWith('.*') && type.startsWith(filter.slice(0, -1))),
  );
}

/**
 * True when the subscription should get this event: its types take it (subscriptionWants) and
 * its payload filter, if it has one, matches.
 */
export function subscriptionTakes(
  sub: Pick<Subscription, 'eventTypes' | 'filter'>,
  event: { type: string; payload: unknown },
): boolean {
  return subscriptionWants(sub, event.type) && filterTakes(sub.filter, event);
}

/** The secrets still live at `now`: the current one and any still overlapping it. */
function liveSecrets(sub: Subscription, now: Date): SigningSecret[] {
  return sub.secrets.filter((s) => s.expiresAt === undefined || Date.parse(s.expiresAt) > now.getTime());
}

/** The secrets that sign a callback sent at `now`. */
export function signingSecrets(sub: Subscription, now: Date): string[] {
  return liveSecrets(sub, now).map((s) => s.secret);
}

/**
 * Checks a callback URL against the target policy.
 * 1. Scheme, credentials and literal addresses by the pure policy.
 * 2. Unless private targets are allowed, resolve the host and check every address; the
 *    dispatcher checks again at delivery time, since DNS can change.
 * @throws ForbiddenTargetError
 */
export async function assertTargetAllowed(deps: TargetPolicyDeps, url: string): Promise<URL> {
  const checked = checkTargetUrl(url, { allowPrivate: deps.allowPrivateTargets });
  if (!checked.ok) throw new ForbiddenTargetError(checked.reason);
  if (deps.allowPrivateTargets) return checked.url;
  const host = checked.url.hostname.replace(/^\[|\]$/g, '');
  let addresses: string[];
  try {
    addresses = await deps.resolver.resolve(host);
  } catch {
    throw new ForbiddenTargetError(`host ${host} does not resolve`);
  }
  if (addresses.length === 0) throw new ForbiddenTargetError(`host ${host} does not resolve`);
  for (const address of addresses) {
    const reason = checkResolvedAddress(address, { allowPrivate: false });
    if (reason) throw new ForbiddenTargetError(reason);
  }
  return checked.url;
}

type SubscriptionDeps = {
  subscriptions: SubscriptionStore;
  clock: Clock;
  /** Checks a transformation's expression where it comes in; without one, none is accepted. */
  transformer?: Pick<Transformer, 'check'>;
};

/** A callback URL, or (`transport: 'connection'`) deliveries pushed down the partner's connections. */
export type CreateSubscriptionInput = (
  | { transport?: 'url'; url: string }
  | { transport: 'connection'; url?: undefined }
) & {
  eventTypes?: string[];
  /** Only events this pattern matches are delivered (filters.ts). */
  filter?: EventFilter;
  /** @default 'hmac' */
  signature?: SignatureScheme;
  /** `key`: ordering per key (ordering.ts). @default no order */
  ordering?: SubscriptionOrdering;
  /** The callback body is what this JSONata expression makes of the event. */
  transformation?: TransformationInput;
  description?: string;
};

/** A deployment without a connection endpoint refuses connection subscriptions. */
export interface ConnectionSupport {
  /** @default false */
  connectionsEnabled?: boolean;
}

/**
 * Registers a callback URL, or a connection subscription, for a partner.
 * 1. Check the URL against the target policy; a connection subscription needs a deployment
 *    that serves connections.
 * 2. Generate the subscription id and its first signing secret.
 * 3. Store it active, unless the partner already has MAX_SUBSCRIPTIONS_PER_PARTNER
 *    (SubscriptionLimitError, 409); return it with the secret, which is shown only here.
 */
export async function createSubscription(
  deps: SubscriptionDeps & TargetPolicyDeps & ConnectionSupport,
  partnerId: string,
  input: CreateSubscriptionInput,
): Promise<{ subscription: Subscription; secret?: string }> {
  if (input.transport === 'connection') {
    if (!deps.connectionsEnabled) {
      throw new ValidationError('this deployment does not serve connections: subscribe a url', [
        { field: 'transport', message: 'connection is not available here' },
      ]);
    }
  } else {
    await assertTargetAllowed(deps, input.url);
  }
  const transformation =
    input.transformation === undefined ? undefined : await checkedTransformation(deps, input.transformation);
  const now = deps.clock.now().toISOString();
  const secret = newSecret(input.signature);
  const subscription: Subscription = {
    id: newId('sub'),
    partnerId,
    ...(input.transport === 'connection' ? { transport: 'connection' as const } : { url: input.url }),
    eventTypes: input.eventTypes ?? [],
    ...(input.filter === undefined ? {} : { filter: input.filter }),
    ...(input.signature === 'ed25519' ? { signature: 'ed25519' as const } : {}),
    ...(input.ordering === 'key' ? { ordering: 'key' as const } : {}),
    ...(transformation === undefined ? {} : { transformation }),
    ...(input.description === undefined ? {} : { description: input.description }),
    status: 'active',
    secrets: [{ secret, createdAt: now }],
    createdAt: now,
    updatedAt: now,
  };
  await deps.subscriptions.create(subscription, { maxPerPartner: MAX_SUBSCRIPTIONS_PER_PARTNER });
  // A signing key is ours alone: the partner gets its public key, in the view.
  return isSigningKey(secret) ? { subscription } : { subscription, secret };
}

/**
 * One of the partner's subscriptions.
 * @throws SubscriptionNotFoundError, also for another partner's subscription.
 */
export async function getSubscription(
  deps: { subscriptions: SubscriptionStore },
  partnerId: string,
  subscriptionId: string,
): Promise<Subscription> {
  const sub = await deps.subscriptions.get(subscriptionId);
  if (!sub || sub.partnerId !== partnerId) throw new SubscriptionNotFoundError(subscriptionId);
  return sub;
}

export interface PreviewInput {
  /** The event as it could be published. */
  event: { type: string; payload: JsonValue; orderingKey?: string };
  /** An expression to try instead of the subscription's own (checked as it would be when set). */
  transformation?: TransformationInput;
}

/**
 * What a receiver of the subscription would get for an event: the callback body, after the
 * subscription's transformation (or the one given, to try it before setting it), as the
 * dispatcher makes it (an id and time of now).
 * @throws SubscriptionNotFoundError; ValidationError for an expression given that is refused;
 *   TransformationFailedError (422) when the transformation gives no body
 */
export async function previewCallback(
  deps: { subscriptions: SubscriptionStore; clock: Clock; transformer?: Transformer },
  partnerId: string,
  subscriptionId: string,
  input: PreviewInput,
): Promise<{ body: JsonValue }> {
  const sub = await getSubscription(deps, partnerId, subscriptionId);
  const transformation =
    input.transformation === undefined
      ? sub.transformation
      : await checkedTransformation(deps, input.transformation);
  const now = deps.clock.now();
  const view: EventView = {
    id: newId('evt', now.getTime()),
    type: input.event.type,
    payload: input.event.payload,
    createdAt: now.toISOString(),
    ...(input.event.orderingKey === undefined ? {} : { orderingKey: input.event.orderingKey }),
  };
  const shaped = await callbackBody(
    deps,
    { ...(transformation === undefined ? {} : { transformation }) },
    view,
  );
  if ('error' in shaped) throw new TransformationFailedError(shaped.error);
  const body: JsonValue = JSON.parse(shaped.body);
  return { body };
}

export function listSubscriptions(
  deps: { subscriptions: SubscriptionStore },
  partnerId: string,
  query: ListQuery,
): Promise<Page<Subscription>> {
  return deps.subscriptions.list(partnerId, query);
}

export interface UpdateSubscriptionInput {
  url?: string;
  eventTypes?: string[];
  /** A new payload filter; null removes it. */
  filter?: EventFilter | null;
  /** A new transformation; null removes it. */
  transformation?: TransformationInput | null;
  description?: string;
  status?: SubscriptionStatus;
}

/**
 * Tries of a read-change-write. Each round of concurrent writers has a winner, so this many
 * writers at once on one subscription all get through; more than that is a 503 to try again,
 * never a 409: the partner did nothing wrong.
 */
export const MODIFY_TRIES = 32;
/** The longest pause between two tries; each pause is drawn below a bound that doubles. */
const MODIFY_MAX_PAUSE_MS = 50;

/** Thrown when a subscription's writers kept colliding through every try. */
export class SubscriptionContentionError extends ServiceUnavailableError {
  constructor(subscriptionId: string) {
    super(`subscription ${subscriptionId} is being changed by many requests at once; try again`);
  }
}

/**
 * Reads a subscription, changes it and writes it back on the condition that nobody wrote in
 * between; when somebody did (a concurrent PATCH or rotation, the dispatcher disabling it),
 * starts over from the fresh copy after a short random pause, so writers that collided do not
 * collide again. `updatedAt` moves strictly forward, so each write is a new version even
 * within one millisecond.
 * @throws SubscriptionContentionError after MODIFY_TRIES collisions
 */
async function modifySubscription(
  deps: SubscriptionDeps,
  partnerId: string,
  subscriptionId: string,
  change: (sub: Subscription, now: Date) => Subscription,
): Promise<Subscription> {
  for (let attempt = 1; attempt <= MODIFY_TRIES; attempt++) {
    const sub = await getSubscription(deps, partnerId, subscriptionId);
    const now = deps.clock.now();
    const updatedAt = new Date(Math.max(now.getTime(), Date.parse(sub.updatedAt) + 1)).toISOString();
    const updated: Subscription = { ...change(sub, now), updatedAt };
    try {
      await deps.subscriptions.put(updated, { expectedUpdatedAt: sub.updatedAt });
      return updated;
    } catch (error) {
      if (!(error instanceof StaleWriteError)) throw error;
    }
    const bound = Math.min(MODIFY_MAX_PAUSE_MS, 2 ** attempt);
    await new Promise((resolve) => setTimeout(resolve, Math.random() * bound));
  }
  throw new SubscriptionContentionError(subscriptionId);
}

/**
 * Changes a subscription.
 * 1. Check a new URL against the target policy.
 * 2. Apply the changes to the stored subscription (partner-scoped), retrying over concurrent
 *    writes. Re-enabling clears the reason it was disabled and its run of failures; a new
 *    URL starts a fresh run too, since it is a different endpoint. Re-enabling does not
 *    resend the deliveries skipped while it was disabled: the partner replays them.
 */
export async function updateSubscription(
  deps: SubscriptionDeps & TargetPolicyDeps,
  partnerId: string,
  subscriptionId: string,
  input: UpdateSubscriptionInput,
): Promise<Subscription> {
  if (input.url !== undefined) await assertTargetAllowed(deps, input.url);
  const transformation =
    input.transformation === undefined || input.transformation === null
      ? input.transformation
      : await checkedTransformation(deps, input.transformation);
  return modifySubscription(deps, partnerId, subscriptionId, (sub) => {
    if (input.url !== undefined && sub.transport === 'connection') {
      throw new ValidationError('a connection subscription has no url: create a url subscription instead', [
        { field: 'url', message: 'not for a connection subscription' },
      ]);
    }
    const {
      disabledReason: previousReason,
      failingSince,
      filter: previousFilter,
      transformation: previousTransformation,
      ...rest
    } = sub;
    const filter = input.filter === undefined ? previousFilter : (input.filter ?? undefined);
    const shaping = transformation === undefined ? previousTransformation : (transformation ?? undefined);
    const status = input.status ?? sub.status;
    const freshStart =
      (sub.status === 'disabled' && status === 'active') || (input.url ?? sub.url) !== sub.url;
    // A subscription disabled by the dispatcher keeps its reason until it is re-enabled.
    const disabledReason =
      status === 'active'
        ? undefined
        : sub.status === 'disabled'
          ? previousReason
          : 'disabled by the partner';
    return {
      ...rest,
      ...(disabledReason === undefined ? {} : { disabledReason }),
      ...(failingSince === undefined || freshStart ? {} : { failingSince }),
      ...(sub.transport === 'connection' ? {} : { url: input.url ?? sub.url }),
      eventTypes: input.eventTypes ?? sub.eventTypes,
      ...(filter === undefined ? {} : { filter }),
      ...(shaping === undefined ? {} : { transformation: shaping }),
      ...(input.description === undefined ? {} : { description: input.description }),
      status,
    };
  });
}

/**
 * One of the partner's connection subscriptions, read without its secrets: what a connection
 * for it may be opened for.
 * @throws SubscriptionNotFoundError unless it is the partner's, and a connection subscription
 */
export async function connectionSubscriptionOf(
  deps: { subscriptions: SubscriptionStore },
  partnerId: string,
  subscriptionId: string,
): Promise<SubscriptionRecord> {
  const sub = await deps.subscriptions.describe(subscriptionId);
  if (sub === undefined || sub.partnerId !== partnerId || sub.transport !== 'connection') {
    throw new SubscriptionNotFoundError(subscriptionId);
  }
  return sub;
}

/** Deletes one of the partner's subscriptions. @throws SubscriptionNotFoundError */
export async function deleteSubscription(
  deps: { subscriptions: SubscriptionStore },
  partnerId: string,
  subscriptionId: string,
): Promise<void> {
  await getSubscription(deps, partnerId, subscriptionId);
  await deps.subscriptions.delete(subscriptionId);
}

/**
 * Replaces the signing secret.
 * 1. Generate a new secret; it signs from now on.
 * 2. Older secrets that have not expired keep signing for SECRET_ROTATION_OVERLAP_MS, so the
 *    receiver can switch over without rejecting a callback; expired ones are dropped.
 * 3. Write it over concurrent writes (two rotations both keep their secret), and return the
 *    new secret, shown only here.
 */
export async function rotateSecret(
  deps: SubscriptionDeps,
  partnerId: string,
  subscriptionId: string,
): Promise<{ subscription: Subscription; secret?: string }> {
  let secret = '';
  const subscription = await modifySubscription(deps, partnerId, subscriptionId, (sub, now) => {
    // Of the subscription's scheme, made once: a write retried over a concurrent one keeps it.
    if (secret === '') secret = newSecret(sub.signature);
    const overlapUntil = new Date(now.getTime() + SECRET_ROTATION_OVERLAP_MS).toISOString();
    const kept: SigningSecret[] = liveSecrets(sub, now).map((s) => ({
      ...s,
      expiresAt:
        s.expiresAt !== undefined && Date.parse(s.expiresAt) < Date.parse(overlapUntil)
          ? s.expiresAt
          : overlapUntil,
    }));
    return { ...sub, secrets: [{ secret, createdAt: now.toISOString() }, ...kept] };
  });
  return isSigningKey(secret) ? { subscription } : { subscription, secret };
}
