/**
 * Connections on a WebSocket API whose server keeps no state between events (API Gateway): the
 * use cases of a connection's events, over a ConnectionRegistry, a ConnectionSender and the
 * parked tries. The local runtime's server holds its connections in memory instead
 * (local/connections.ts); both admit connections and speak frames through
 * connection-protocol.ts.
 */
import {
  admitConnection,
  HEARTBEAT_SECONDS,
  helloFrame,
  parseClientFrame,
  pongFrame,
  type Refused,
} from './connection-protocol.ts';
import { hashApiKey } from './partners.ts';
import type {
  Clock,
  ConnectionRegistry,
  ConnectionSender,
  ParkedTries,
  PartnerStore,
  RegisteredConnection,
  SubscriptionStore,
} from './ports.ts';

/**
 * Parked tries queued at each ping of a connection, all its subscriptions together, until none
 * is left: with a ping every 30 s, about 17 a second per connection.
 */
export const RELEASE_PER_PING = 500;

export interface ConnectionEventDeps {
  partners: PartnerStore;
  subscriptions: SubscriptionStore;
  clock: Clock;
  registry: ConnectionRegistry;
  sender: ConnectionSender;
  parked: ParkedTries;
  /** Seconds an agent has to answer a delivery: the delivery timeout, rounded down. */
  ackTimeoutSeconds: number;
  /** @default HEARTBEAT_SECONDS */
  heartbeatSeconds?: number;
  /** @default RELEASE_PER_PING */
  releasePerPing?: number;
  log: (message: string, error?: unknown) => void;
}

/** Whether the key the connection was opened with is still one of its partner's. */
async function keyLive(deps: ConnectionEventDeps, connection: RegisteredConnection): Promise<boolean> {
  const key = await deps.partners.findApiKey(connection.keyHash);
  return key !== undefined && key.id === connection.keyId && key.partnerId === connection.partnerId;
}

/**
 * A connection opening: admitted (admitConnection: the key, the cap, the subscription) and
 * registered, not yet ready; or refused, with the status its upgrade is answered with.
 * 1. Admit it, or refuse it.
 * 2. Register it, with the hash of its key.
 * 3. Check the key again: a revocation since step 1 closed the connections it found, which
 *    this one may not have been among yet. Revoked: forget it and refuse it (401).
 */
export async function openConnection(
  deps: ConnectionEventDeps,
  request: { connectionId: string; apiKey: string | undefined; subscription: string | undefined },
): Promise<Refused | undefined> {
  const admitted = await admitConnection(deps, {
    apiKey: request.apiKey,
    subscription: request.subscription,
    openConnections: (partnerId) => deps.registry.count(partnerId),
  });
  if ('status' in admitted) return admitted;
  const connection: RegisteredConnection = {
    connectionId: request.connectionId,
    partnerId: admitted.partnerId,
    keyId: admitted.keyId,
    keyHash: hashApiKey(request.apiKey ?? ''),
    ...(admitted.subscriptionId === undefined ? {} : { subscriptionId: admitted.subscriptionId }),
    subscriptions: admitted.subscriptions,
    ready: false,
    releasing: false,
  };
  await deps.registry.open(connection, deps.clock.now());
  if (!(await keyLive(deps, connection))) {
    await deps.registry.close(request.connectionId);
    return { status: 401, detail: 'the API key was revoked' };
  }
  return undefined;
}

/**
 * A frame from a connection. Frames that are not the protocol's (binary, too large, a newer
 * client's) are ignored.
 * - An `ack` or a `nack` is kept for the dispatcher waiting on it (read only by the one that
 *   sent this connection that try).
 * - A `ping` stamps the connection and checks its key: one forgotten (silent too long) or whose
 *   key was revoked is closed, so the agent reconnects (and learns of a revoked key from
 *   connect-info's 401). Its first ping makes it ready: `hello` goes first, as only a ready
 *   connection is sent tries. Then `pong`, and a batch of its parked tries while any is left.
 */
export async function receiveFrame(
  deps: ConnectionEventDeps,
  connectionId: string,
  text: string | undefined,
): Promise<void> {
  const parsed = text === undefined ? undefined : parseClientFrame(text);
  if (parsed === undefined) return;
  if (parsed.type !== 'ping') {
    // The registry keeps what an answer says, and no more.
    await deps.registry.answer(connectionId, parsed, deps.clock.now());
    return;
  }
  const heard = await deps.registry.heard(connectionId, deps.clock.now());
  if (heard === undefined || !(await keyLive(deps, heard))) {
    await deps.sender.close(connectionId);
    if (heard !== undefined) await deps.registry.close(connectionId);
    return;
  }
  let connection = heard;
  if (!connection.ready) {
    const greeted = await deps.sender.post(connectionId, [
      helloFrame({
        connectionId,
        subscriptions: connection.subscriptions,
        heartbeatSeconds: deps.heartbeatSeconds ?? HEARTBEAT_SECONDS,
        ackTimeoutSeconds: deps.ackTimeoutSeconds,
      }),
    ]);
    if (greeted !== 'sent') return;
    await deps.registry.ready(connection);
    connection = { ...connection, ready: true, releasing: true };
  }
  await deps.sender.post(connectionId, [pongFrame(parsed.id)]);
  if (connection.releasing) await releaseParked(deps, connection);
}

/**
 * Queues a batch of the connection's subscriptions' parked tries, RELEASE_PER_PING in all, a
 * batch each ping until none is left: a partner back after a long absence gets its backlog at
 * a pace its agents keep up with, and a release that fails part way goes on at the next ping.
 */
async function releaseParked(deps: ConnectionEventDeps, connection: RegisteredConnection): Promise<void> {
  let more = false;
  let budget = deps.releasePerPing ?? RELEASE_PER_PING;
  for (const subscriptionId of connection.subscriptions) {
    if (budget <= 0) {
      more = true;
      break;
    }
    const done = await deps.parked.release(subscriptionId, budget);
    budget -= done.released;
    more ||= done.more;
    if (done.released > 0)
      deps.log(
        `connection ${connection.connectionId}: ${done.released} waiting tries of ${subscriptionId} queued`,
      );
    if (done.unreadable > 0)
      deps.log(
        `connection ${connection.connectionId}: ${done.unreadable} parked tries of ${subscriptionId} unreadable`,
        new Error('unreadable parked tries'),
      );
  }
  if (!more) await deps.registry.released(connection);
}
